// A domain as the HostAgentService API shows it: the driver's domain info, plus what lives in
// xenstore (the guest's published service address, the VM uuid libxl records under `vm`) and the
// migration that holds it.

import { xsPaths, type DomainInfo, type HypervisorDriver } from '@ferry/hypervisor';
import { DomainState, ShutdownReason, type Domain } from '@ferry/proto';

const STATES: Record<DomainInfo['state'], DomainState> = {
  running: DomainState.DOMAIN_STATE_RUNNING,
  paused: DomainState.DOMAIN_STATE_PAUSED,
  shutdown: DomainState.DOMAIN_STATE_SHUTDOWN,
};

const SHUTDOWN_REASONS: Record<NonNullable<DomainInfo['shutdownReason']>, ShutdownReason> = {
  poweroff: ShutdownReason.SHUTDOWN_REASON_POWEROFF,
  reboot: ShutdownReason.SHUTDOWN_REASON_REBOOT,
  suspend: ShutdownReason.SHUTDOWN_REASON_SUSPEND,
  crash: ShutdownReason.SHUTDOWN_REASON_CRASH,
  watchdog: ShutdownReason.SHUTDOWN_REASON_WATCHDOG,
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID.test(text);
}

/** The xenstore `vm` entry of a domain: "/vm/<uuid>" (libxl's record of the VM it runs). */
export function vmPath(domid: number): string {
  return `${xsPaths.domain(domid)}/vm`;
}

export async function describeDomain(
  driver: HypervisorDriver,
  info: DomainInfo,
  context: { host: string; migrationId: string | undefined },
): Promise<Domain> {
  return domainOf(info, await readDomainKeys(driver, info.domid), context);
}

/** What a Domain shows from xenstore. */
export interface DomainKeys {
  serviceAddress: string | null;
  vm: string | null;
}

export async function readDomainKeys(driver: HypervisorDriver, domid: number): Promise<DomainKeys> {
  // A domain can vanish between the listing and these reads: absent keys read as null.
  const [serviceAddress, vm] = await Promise.all([
    driver.xenstoreRead(xsPaths.serviceAddress(domid)).catch(() => null),
    driver.xenstoreRead(vmPath(domid)).catch(() => null),
  ]);
  return { serviceAddress, vm };
}

export function domainOf(info: DomainInfo, keys: DomainKeys, context: { host: string; migrationId: string | undefined }): Domain {
  const { serviceAddress, vm } = keys;
  const recordedUuid = vm?.startsWith('/vm/') ? vm.slice('/vm/'.length) : '';
  return {
    domid: info.domid,
    name: info.name,
    uuid: isUuid(recordedUuid) ? recordedUuid.toLowerCase() : info.uuid,
    state: STATES[info.state],
    shutdownReason: info.shutdownReason ? SHUTDOWN_REASONS[info.shutdownReason] : ShutdownReason.SHUTDOWN_REASON_UNSPECIFIED,
    nrPages: BigInt(info.nrPages),
    maxPages: BigInt(info.maxPages),
    vcpus: info.vcpus,
    logDirty: info.logDirty,
    serviceAddress: serviceAddress ?? '',
    host: context.host,
    migrationId: context.migrationId ?? '',
    memoryPages: BigInt(info.memoryPages ?? info.maxPages),
    xlConfig: '',
  };
}
