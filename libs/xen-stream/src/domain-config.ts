// The domain's config in an xl header: libxl's JSON form of libxl_domain_config
// (libxl_domain_config_to_json; field names from tools/libs/light/libxl_types.idl), for an x86
// PVH guest, which is what `xl migrate-receive` / `xl restore` create the receiving domain from.
//
// Ferry adds one key libxl does not know, "ferry": libxl's JSON parser looks fields up by name
// and ignores any other key, so a stock receiver skips it, while Ferry reads back from it what
// Xen's records cannot carry (the emulated driver's vCPU state, the driver it came from).

import { MalformedStream } from './errors';

export type DriverKind = 'emulated' | 'xen';

export interface FerryDomainSection {
  /** The hypervisor driver the domain was read from. */
  driver: DriverKind;
  /** The domain's p2m size (static-max) in pages. */
  maxPages: number;
  /** The driver's opaque vCPU and device state, when HVM_CONTEXT does not carry it. */
  vcpuContext?: Uint8Array;
  /** Who wrote the stream, e.g. "ferry 0.1.0". */
  writer?: string;
}

export interface DomainConfig {
  name: string;
  uuid: string;
  vcpus: number;
  /** static-max (libxl b_info.max_memkb). */
  maxMemKiB: number;
  /** The balloon target when saved (b_info.target_memkb: libxl records the current memory/target). */
  targetMemKiB: number;
  ferry?: FerryDomainSection;
}

/** Key of Ferry's own section in the JSON. */
export const FERRY_CONFIG_KEY = 'ferry';
const FERRY_SECTION_VERSION = 1;

/** libxl's domain config JSON of a PVH domain, pretty-printed as libxl prints it. */
export function encodeDomainConfig(config: DomainConfig): string {
  if (!Number.isInteger(config.vcpus) || config.vcpus < 1) throw new RangeError(`vcpus must be a positive integer, got ${config.vcpus}`);
  const json: Record<string, unknown> = {
    c_info: {
      type: 'pvh',
      name: config.name,
      uuid: config.uuid,
    },
    b_info: {
      max_vcpus: config.vcpus,
      avail_vcpus: Array.from({ length: config.vcpus }, (_, i) => i),
      max_memkb: config.maxMemKiB,
      target_memkb: config.targetMemKiB,
      'type.pvh': { pvshim: 'False' },
      arch_x86: { msr_relaxed: 'False' },
    },
    on_poweroff: 'destroy',
    on_reboot: 'restart',
    on_watchdog: 'destroy',
    on_crash: 'destroy',
    on_soft_reset: 'soft_reset',
  };
  if (config.ferry) {
    const f = config.ferry;
    json[FERRY_CONFIG_KEY] = {
      version: FERRY_SECTION_VERSION,
      driver: f.driver,
      max_pages: f.maxPages,
      ...(f.vcpuContext ? { vcpu_context: Buffer.from(f.vcpuContext).toString('base64') } : {}),
      ...(f.writer ? { writer: f.writer } : {}),
    };
  }
  return JSON.stringify(json, null, 4);
}

/** The fields Ferry uses out of a libxl domain config JSON (from Ferry or from xl itself). */
export function decodeDomainConfig(text: string): DomainConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new MalformedStream(`the xl config is not JSON: ${(err as Error).message}`);
  }
  const root = object(json, 'the config');
  const cInfo = object(root.c_info, 'c_info');
  const bInfo = object(root.b_info, 'b_info');
  const config: DomainConfig = {
    name: typeof cInfo.name === 'string' ? cInfo.name : '',
    uuid: typeof cInfo.uuid === 'string' ? cInfo.uuid : '',
    vcpus: typeof bInfo.max_vcpus === 'number' ? bInfo.max_vcpus : 1,
    maxMemKiB: typeof bInfo.max_memkb === 'number' ? bInfo.max_memkb : 0,
    targetMemKiB: typeof bInfo.target_memkb === 'number' ? bInfo.target_memkb : 0,
  };
  const ferry = root[FERRY_CONFIG_KEY];
  if (ferry !== undefined) {
    const f = object(ferry, `the "${FERRY_CONFIG_KEY}" section`);
    if (f.version !== FERRY_SECTION_VERSION) throw new MalformedStream(`"${FERRY_CONFIG_KEY}" section version ${String(f.version)}, expected ${FERRY_SECTION_VERSION}`);
    if (f.driver !== 'emulated' && f.driver !== 'xen') throw new MalformedStream(`"${FERRY_CONFIG_KEY}".driver is ${String(f.driver)}`);
    config.ferry = {
      driver: f.driver,
      maxPages: typeof f.max_pages === 'number' ? f.max_pages : 0,
      ...(typeof f.vcpu_context === 'string' ? { vcpuContext: new Uint8Array(Buffer.from(f.vcpu_context, 'base64')) } : {}),
      ...(typeof f.writer === 'string' ? { writer: f.writer } : {}),
    };
  }
  return config;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new MalformedStream(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}
