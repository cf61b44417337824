// Xen keeps no queryable "log-dirty is on" flag for a domain, yet every Ferry process on a host
// (the memory-tracker that enables it, the host-agent whose pre-flight refuses a domain already
// being tracked) must see the same answer. The xen driver therefore records its own ENABLE and OFF
// in a dom0-only xenstore node, keyed by domid and holding the domain's UUID (so a later domain
// that reuses the domid is not mistaken for a tracked one).

/** Dom0-private: nodes under / are created by dom0 with no access for guests. */
export const LOG_DIRTY_MARKER_ROOT = '/tool/ferry/log-dirty';

export function logDirtyMarkerPath(domid: number): string {
  return `${LOG_DIRTY_MARKER_ROOT}/${domid}`;
}

/** Whether the marker read from xenstore says log-dirty is on for the domain with this UUID. */
export function markerSaysEnabled(markerValue: string | null, uuid: string): boolean {
  return markerValue !== null && markerValue === uuid;
}
