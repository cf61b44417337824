// Pre-flight of one side of a migration (HostAgentService.CheckMigration), as pure functions of
// facts the agent gathered: each failed check is a PreflightReason with a machine-readable code
// and the figures involved, and an empty list means "go". Modelled on XAPI's
// VM.assert_can_migrate and Nova's check_can_live_migrate_{source,destination}.

import type { DomainInfo } from '@ferry/hypervisor';
import { HostDriver, MigrationRole, PreflightCode, type Host, type PreflightReason } from '@ferry/proto';
import type { FenceBinding } from './fencing';

export interface SourceFacts {
  /** This host's name. */
  host: string;
  /** The migration asking; empty for a dry run. */
  migrationId: string;
  domainName: string;
  /** The domain of that name on this host, if any. */
  domain: DomainInfo | undefined;
  /** Its control/feature-suspend key (null when absent). */
  featureSuspend: string | null;
  /**
   * The driver's own word on whether the domain can be suspended (HypervisorDriver.suspendProblem):
   * null = it can, a string = why not, undefined = the driver has none, so the guest must
   * advertise control/feature-suspend (the emulated host's handshake).
   */
  suspendProblem?: string | null;
  /** The migration holding the domain, if any. */
  holder: FenceBinding | undefined;
}

export interface TargetFacts {
  /** This host, as GetHostInfo reports it. */
  host: Host;
  migrationId: string;
  domainName: string;
  /** A domain on this host with the name the restore domain will take, if any. */
  namesake: DomainInfo | undefined;
  /** The migration holding that domain, if any. */
  namesakeHolder: FenceBinding | undefined;
  /** Pages the target must be able to populate; 0 = not checked. */
  requiredPages: bigint;
  /** The domain's p2m size in pages; 0 = not checked. */
  maxPages: bigint;
  /** The source host's facts, when the caller gave them. */
  source: Host | undefined;
}

export function sourceReasons(f: SourceFacts): PreflightReason[] {
  const reasons: PreflightReason[] = [];
  const add = (code: PreflightCode, message: string) =>
    reasons.push({ code, message, host: f.host, role: MigrationRole.MIGRATION_ROLE_SOURCE });
  const d = f.domain;
  if (!d) {
    add(PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_FOUND, `no domain named ${f.domainName} on host ${f.host}`);
    return reasons;
  }
  const ours = f.holder !== undefined && f.holder.migrationId === f.migrationId && f.migrationId !== '';
  if (f.holder && !ours) {
    add(
      PreflightCode.PREFLIGHT_CODE_MIGRATION_IN_FLIGHT,
      `domain ${d.name} (domid ${d.domid}) is held by migration ${f.holder.migrationId}`,
    );
  }
  if (d.state !== 'running' && !(ours && d.state === 'paused')) {
    const state = d.state === 'shutdown' ? `shut down (${d.shutdownReason ?? 'unknown reason'})` : d.state;
    add(PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_MIGRATABLE, `domain ${d.name} (domid ${d.domid}) is ${state}; only a running domain can migrate`);
  }
  if (d.guestType === 'pv') {
    add(
      PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_MIGRATABLE,
      `domain ${d.name} (domid ${d.domid}) is a PV guest; the xen driver migrates PVH and HVM guests only (PV needs page-table normalisation)`,
    );
  }
  const notSuspendable = suspendableProblem(f);
  if (notSuspendable) add(PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_SUSPENDABLE, `domain ${d.name} (domid ${d.domid}) ${notSuspendable}`);
  if (d.logDirty && !f.holder) {
    add(PreflightCode.PREFLIGHT_CODE_LOG_DIRTY_IN_USE, `log-dirty mode is already enabled on domain ${d.name} (domid ${d.domid}) by something else`);
  }
  return reasons;
}

/**
 * Why the domain cannot be suspended, or null. A driver that knows how it will suspend the domain
 * decides (the xen driver follows libxl, which never looks at feature-suspend for HVM/PVH: it
 * writes control/shutdown when the guest has PV control, else suspends it with the shutdown
 * hypercall; a guest restored by xl never advertises feature-suspend again, Linux writes it at
 * boot only). Otherwise the guest must advertise control/feature-suspend.
 */
export function suspendableProblem(f: Pick<SourceFacts, 'featureSuspend' | 'suspendProblem'>): string | null {
  if (f.suspendProblem !== undefined) return f.suspendProblem === null ? null : `cannot be suspended: ${f.suspendProblem}`;
  if (f.featureSuspend !== '1') return 'does not advertise control/feature-suspend; it cannot take part in the suspend handshake';
  return null;
}

export function targetReasons(f: TargetFacts): PreflightReason[] {
  const reasons: PreflightReason[] = [];
  const add = (code: PreflightCode, message: string) =>
    reasons.push({ code, message, host: f.host.name, role: MigrationRole.MIGRATION_ROLE_TARGET });
  const src = f.source;

  if (src && src.name !== '' && src.name === f.host.name) {
    add(PreflightCode.PREFLIGHT_CODE_SAME_HOST, `source and target are the same host (${f.host.name})`);
  }

  // A retried pre-flight after this migration created its restore domain must not trip over it.
  const ownRestoreDomain = f.namesake !== undefined && f.migrationId !== '' && f.namesakeHolder?.migrationId === f.migrationId;
  if (f.namesake && !ownRestoreDomain) {
    add(
      PreflightCode.PREFLIGHT_CODE_DOMAIN_NAME_IN_USE,
      `host ${f.host.name} already has a domain named ${f.domainName} (domid ${f.namesake.domid})`,
    );
  }

  const free = f.host.freePages + (ownRestoreDomain ? BigInt(f.namesake!.nrPages) : 0n);
  if (f.requiredPages > 0n && f.requiredPages > free) {
    add(
      PreflightCode.PREFLIGHT_CODE_INSUFFICIENT_MEMORY,
      `needs ${f.requiredPages} pages, ${free} free on host ${f.host.name}`,
    );
  }
  if (f.maxPages > 0n && f.maxPages > f.host.totalPages) {
    add(
      PreflightCode.PREFLIGHT_CODE_INSUFFICIENT_MEMORY,
      `the domain's ${f.maxPages} pages of static-max exceed host ${f.host.name}'s ${f.host.totalPages} pages`,
    );
  }

  if (src) {
    if (src.driver !== HostDriver.HOST_DRIVER_UNSPECIFIED && src.driver !== f.host.driver) {
      add(
        PreflightCode.PREFLIGHT_CODE_DRIVER_MISMATCH,
        `source host uses the ${driverName(src.driver)} driver, target ${f.host.name} the ${driverName(f.host.driver)} driver`,
      );
    }
    const sv = src.xenVersion;
    const tv = f.host.xenVersion;
    if (sv && tv && (sv.major > tv.major || (sv.major === tv.major && sv.minor > tv.minor))) {
      add(
        PreflightCode.PREFLIGHT_CODE_HYPERVISOR_VERSION_INCOMPATIBLE,
        `target runs Xen ${tv.major}.${tv.minor}, older than the source's ${sv.major}.${sv.minor}`,
      );
    }
    if (src.ferryVersion !== '' && !ferryVersionsCompatible(src.ferryVersion, f.host.ferryVersion)) {
      add(
        PreflightCode.PREFLIGHT_CODE_FERRY_VERSION_INCOMPATIBLE,
        `source runs Ferry ${src.ferryVersion}, target ${f.host.name} runs ${f.host.ferryVersion}`,
      );
    }
  }
  return reasons;
}

/**
 * Semver compatibility of two Ferry versions: the same major version, and for 0.x (where every
 * minor release may change the wire protocol between hosts) the same minor version too.
 */
export function ferryVersionsCompatible(a: string, b: string): boolean {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) return false;
  if (pa.major !== pb.major) return false;
  return pa.major !== 0 || pa.minor === pb.minor;
}

function parseVersion(v: string): { major: number; minor: number } | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$/.exec(v.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

function driverName(d: HostDriver): string {
  return d === HostDriver.HOST_DRIVER_XEN ? 'xen' : d === HostDriver.HOST_DRIVER_EMULATED ? 'emulated' : 'unknown';
}
