// The domain config a Xen target's stock receiver creates the receiving domain from: libxl's JSON
// (libxl_domain_config), as `xl migrate` sends it in its xl header. On the source it is what
// `xl list -l <domid>` prints for the domain (both call libxl_retrieve_domain_configuration); the
// config object is cut out of that listing as text, never re-serialised, so libxl's 64-bit
// values (e.g. LIBXL_MEMKB_DEFAULT) reach the receiver exactly as libxl wrote them.
// Pure functions; the xl calls are in xen-driver.ts.

import { encodeDomainConfig } from '@ferry/xen-stream';

/**
 * The text of the first `"config"` value of `xl list -l` output
 * (`[ { "domid": N, "config": { ... } } ]`); null when there is none.
 */
export function configFromXlList(listing: string): string | null {
  const key = /"config"\s*:\s*/g;
  for (let m = key.exec(listing); m; m = key.exec(listing)) {
    if (insideString(listing, m.index)) continue;
    const start = m.index + m[0].length;
    if (listing[start] !== '{') return null;
    const end = matchingBrace(listing, start);
    return end < 0 ? null : listing.slice(start, end + 1);
  }
  return null;
}

/** A minimal PVH config when the source gave none (Ferry's own stream writer's form). */
export function synthesiseConfig(spec: { name: string; uuid?: string; vcpus: number; memoryPages: number }): string {
  const kib = spec.memoryPages * 4;
  return encodeDomainConfig({ name: spec.name, uuid: spec.uuid ?? '', vcpus: Math.max(1, spec.vcpus), maxMemKiB: kib, targetMemKiB: kib });
}

/** Index of the `}` closing the object opened at `open`, or -1. Strings (with escapes) are skipped. */
function matchingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      i = stringEnd(text, i);
      if (i < 0) return -1;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return c === '}' ? i : -1;
    }
  }
  return -1;
}

/** Index of the quote closing the string opened at `open`, or -1. */
function stringEnd(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

/** Whether position `at` lies inside a JSON string. */
function insideString(text: string, at: number): boolean {
  let inside = false;
  for (let i = 0; i < at; i++) {
    if (inside && text[i] === '\\') i++;
    else if (text[i] === '"') inside = !inside;
  }
  return inside;
}
