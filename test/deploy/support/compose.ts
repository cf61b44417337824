// docker-compose.yml as data: anchors and merge keys (<<) resolved, as Compose resolves them.

import { parse } from 'yaml';
import { readRepoFile } from './repo';

export interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  network_mode?: string;
  ipc?: string;
  shm_size?: string;
  hostname?: string;
  profiles?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number; start_period?: string };
  restart?: string;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export function loadCompose(text = readRepoFile('docker-compose.yml')): ComposeFile {
  return parse(text, { merge: true }) as ComposeFile;
}

/** Services built from this repository's Dockerfile. */
export function ferryServices(compose: ComposeFile): [string, ComposeService][] {
  return Object.entries(compose.services).filter(([, s]) => s.build !== undefined);
}

/** The service whose network namespace `name` runs in (itself unless network_mode: service:X). */
export function networkOwner(compose: ComposeFile, name: string): string {
  const mode = compose.services[name].network_mode;
  return mode?.startsWith('service:') ? mode.slice('service:'.length) : name;
}

/** "SIZE" of an emulated host command / shm_size ("2GiB", "2gb", "512m") in bytes. */
export function sizeBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * 1024 ** ' kmgt'.indexOf(m[2].toLowerCase() || ' ');
}

export function argAfter(command: string[], flag: string): string {
  const i = command.indexOf(flag);
  if (i < 0 || i + 1 >= command.length) throw new Error(`${command.join(' ')} has no ${flag}`);
  return command[i + 1];
}
