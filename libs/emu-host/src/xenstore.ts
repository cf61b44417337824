// The host's xenstore: a tree of string values with watches, as xenstored keeps it.
//  - Writing a node creates its missing ancestors with empty values.
//  - A watch on P fires for every write or removal at P or below it, and once when registered.
//  - Special watch paths start with '@' (@releaseDomain, @introduceDomain); they fire only when
//    the host says so (a domain shut down or was destroyed).
// Node names and sizes follow xenstored: [A-Za-z0-9_@/-] characters, paths up to 3072 bytes,
// values up to 4096 bytes.

import { HypervisorError } from '@ferry/hypervisor';

const MAX_PATH_BYTES = 3072;
const MAX_VALUE_BYTES = 4096;
const VALID_PATH = /^(\/|(\/[A-Za-z0-9_@-]+)+)$/;
const VALID_SPECIAL = /^@[A-Za-z0-9_-]+$/;

export type WatchCallback = (path: string) => void;

export interface WatchHandle {
  readonly id: number;
  readonly path: string;
  close(): void;
}

interface Watch {
  id: number;
  path: string;
  callback: WatchCallback;
}

function checkPath(path: unknown, allowSpecial: boolean): string {
  if (typeof path !== 'string') throw new HypervisorError('EINVAL', 'xenstore path must be a string');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) {
    throw new HypervisorError('EINVAL', `xenstore path is longer than ${MAX_PATH_BYTES} bytes`);
  }
  if (allowSpecial && VALID_SPECIAL.test(path)) return path;
  if (!VALID_PATH.test(path)) {
    throw new HypervisorError(
      'EINVAL',
      `invalid xenstore path "${path.slice(0, 200)}": absolute, components of [A-Za-z0-9_@-], no trailing slash`,
    );
  }
  return path;
}

/** True when `path` is `base` or below it. */
function isUnder(path: string, base: string): boolean {
  if (base === '/') return path.startsWith('/');
  return path === base || (path.startsWith(base) && path.charCodeAt(base.length) === 47 /* '/' */);
}

export class Xenstore {
  /** Absolute path → value; every ancestor of a node is a node too. */
  private readonly nodes = new Map<string, string>([['/', '']]);
  private readonly watches = new Map<number, Watch>();
  private nextWatchId = 1;

  /** `onWatcherError` receives exceptions thrown by watch callbacks (they never reach the writer). */
  constructor(private readonly onWatcherError: (err: unknown, path: string) => void = () => {}) {}

  read(path: string): string | null {
    return this.nodes.get(checkPath(path, false)) ?? null;
  }

  write(path: string, value: string): void {
    checkPath(path, false);
    if (typeof value !== 'string') throw new HypervisorError('EINVAL', `xenstore value for ${path} must be a string`);
    if (Buffer.byteLength(value) > MAX_VALUE_BYTES) {
      throw new HypervisorError('EINVAL', `xenstore value for ${path} is longer than ${MAX_VALUE_BYTES} bytes`);
    }
    for (let i = path.indexOf('/', 1); i > 0; i = path.indexOf('/', i + 1)) {
      const ancestor = path.slice(0, i);
      if (!this.nodes.has(ancestor)) this.nodes.set(ancestor, '');
    }
    this.nodes.set(path, value);
    this.fire(path);
  }

  /** Removes a node and everything below it. Watches on or below it, and above it, fire. */
  remove(path: string): void {
    checkPath(path, false);
    if (path === '/') throw new HypervisorError('EINVAL', 'the xenstore root cannot be removed');
    if (!this.nodes.has(path)) return;
    for (const key of [...this.nodes.keys()]) if (isUnder(key, path)) this.nodes.delete(key);
    for (const watch of [...this.watches.values()]) {
      if (isUnder(path, watch.path)) this.notify(watch, path);
      else if (isUnder(watch.path, path)) this.notify(watch, watch.path);
    }
  }

  /** Names of the direct children of a node. */
  list(path: string): string[] {
    checkPath(path, false);
    const prefix = path === '/' ? '/' : `${path}/`;
    const out: string[] = [];
    for (const key of this.nodes.keys()) {
      if (key.length > prefix.length && key.startsWith(prefix) && key.indexOf('/', prefix.length) < 0) {
        out.push(key.slice(prefix.length));
      }
    }
    return out.sort();
  }

  /** Registers a watch; the callback runs once soon after (as Xen fires a new watch) and on every change. */
  watch(path: string, callback: WatchCallback): WatchHandle {
    checkPath(path, true);
    const watch: Watch = { id: this.nextWatchId++, path, callback };
    this.watches.set(watch.id, watch);
    queueMicrotask(() => {
      if (this.watches.has(watch.id)) this.notify(watch, path);
    });
    return { id: watch.id, path, close: () => this.watches.delete(watch.id) };
  }

  /** Fires a special watch path such as @releaseDomain. */
  fireSpecial(path: string): void {
    if (!VALID_SPECIAL.test(path)) throw new Error(`not a special xenstore path: ${path}`);
    for (const watch of [...this.watches.values()]) if (watch.path === path) this.notify(watch, path);
  }

  get watchCount(): number {
    return this.watches.size;
  }

  private fire(path: string): void {
    for (const watch of [...this.watches.values()]) {
      if (!watch.path.startsWith('@') && isUnder(path, watch.path)) this.notify(watch, path);
    }
  }

  private notify(watch: Watch, path: string): void {
    try {
      watch.callback(path);
    } catch (err) {
      // One watcher's failure must not stop the others or the writer.
      this.onWatcherError(err, watch.path);
    }
  }
}
