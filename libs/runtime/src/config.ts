// Configuration comes from the environment (12-factor), with defaults that suit the local lab.

export function env(name: string, fallback?: string): string {
  const v = process.env[name];
  if (v !== undefined && v !== '') return v;
  if (fallback !== undefined) return fallback;
  throw new Error(`missing required environment variable ${name}`);
}

export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`environment variable ${name} must be a number, got "${v}"`);
  return n;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** "256MiB", "4g", "1.5GiB", "4096" → bytes. */
export function parseBytes(text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`not a size: "${text}" (try 256MiB, 4GiB)`);
  return Math.round(Number(m[1]) * unit);
}

const RATE_UNITS: Record<string, number> = {
  '': 1, bps: 1, bit: 1,
  kbit: 1e3, kbps: 1e3, k: 1e3,
  mbit: 1e6, mbps: 1e6, m: 1e6,
  gbit: 1e9, gbps: 1e9, g: 1e9,
};

/** "1gbit", "100mbit", "10g" → bits per second; "0" or "unlimited" → 0. */
export function parseBandwidthBits(text: string): number {
  if (/^\s*(0|unlimited|none)\s*$/i.test(text)) return 0;
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? RATE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`not a bandwidth: "${text}" (try 1gbit, 100mbit)`);
  return Math.round(Number(m[1]) * unit);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
