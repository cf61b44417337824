// Pre-flight reasons as functions of the facts (the integration test covers them over gRPC).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ferryVersionsCompatible, sourceReasons, suspendableProblem, targetReasons, type SourceFacts, type TargetFacts } from '@ferry/agent';
import type { DomainInfo } from '@ferry/hypervisor';
import { Host, HostDriver, MigrationRole, PreflightCode } from '@ferry/proto';

const domain = (over: Partial<DomainInfo> = {}): DomainInfo => ({
  domid: 3,
  name: 'vm',
  uuid: '00000000-0000-4000-8000-000000000000',
  state: 'running',
  shutdownReason: null,
  nrPages: 1000,
  maxPages: 2000,
  vcpus: 1,
  logDirty: false,
  ...over,
});

const source = (over: Partial<SourceFacts> = {}): SourceFacts => ({
  host: 'h1',
  migrationId: 'm-1',
  domainName: 'vm',
  domain: domain(),
  featureSuspend: '1',
  holder: undefined,
  ...over,
});

const here = Host.fromPartial({ name: 'h2', driver: HostDriver.HOST_DRIVER_EMULATED, xenVersion: { major: 4, minor: 17 }, totalPages: 10_000n, freePages: 5_000n, ferryVersion: '0.1.0' });

const target = (over: Partial<TargetFacts> = {}): TargetFacts => ({
  host: here,
  migrationId: 'm-1',
  domainName: 'vm',
  namesake: undefined,
  namesakeHolder: undefined,
  requiredPages: 1000n,
  maxPages: 2000n,
  source: Host.fromPartial({ name: 'h1', driver: HostDriver.HOST_DRIVER_EMULATED, xenVersion: { major: 4, minor: 17 }, ferryVersion: '0.1.3' }),
  ...over,
});

const codes = (reasons: { code: PreflightCode }[]) => reasons.map((r) => r.code);

describe('source pre-flight', () => {
  it('passes a running, suspendable, unheld domain', () => {
    assert.deepEqual(sourceReasons(source()), []);
  });
  it("follows the driver's word on suspending over control/feature-suspend (libxl's rule on Xen)", () => {
    // A guest restored by xl never advertises feature-suspend again; the xen driver can still suspend it.
    assert.deepEqual(sourceReasons(source({ featureSuspend: null, suspendProblem: null })), []);
    const r = sourceReasons(source({ featureSuspend: '1', suspendProblem: 'no way to reach it' }));
    assert.deepEqual(codes(r), [PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_SUSPENDABLE]);
    assert.match(r[0].message, /cannot be suspended: no way to reach it/);
    assert.equal(suspendableProblem({ featureSuspend: null }), 'does not advertise control/feature-suspend; it cannot take part in the suspend handshake');
    assert.equal(suspendableProblem({ featureSuspend: '1' }), null);
  });
  it('names what is wrong', () => {
    assert.deepEqual(codes(sourceReasons(source({ domain: undefined }))), [PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_FOUND]);
    assert.deepEqual(codes(sourceReasons(source({ domain: domain({ state: 'shutdown', shutdownReason: 'crash' }) }))), [
      PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_MIGRATABLE,
    ]);
    assert.deepEqual(codes(sourceReasons(source({ featureSuspend: null }))), [PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_SUSPENDABLE]);
    assert.deepEqual(codes(sourceReasons(source({ domain: domain({ logDirty: true }) }))), [PreflightCode.PREFLIGHT_CODE_LOG_DIRTY_IN_USE]);
    assert.deepEqual(codes(sourceReasons(source({ holder: { migrationId: 'm-2', epoch: 1n } }))), [PreflightCode.PREFLIGHT_CODE_MIGRATION_IN_FLIGHT]);
    const r = sourceReasons(source({ domain: undefined }))[0];
    assert.equal(r.host, 'h1');
    assert.equal(r.role, MigrationRole.MIGRATION_ROLE_SOURCE);
  });
  it('does not count the asking migration\'s own hold (a retried pre-flight)', () => {
    const own = { migrationId: 'm-1', epoch: 2n };
    assert.deepEqual(sourceReasons(source({ holder: own, domain: domain({ state: 'paused', logDirty: true }) })), []);
    assert.deepEqual(codes(sourceReasons(source({ migrationId: '', holder: own }))), [PreflightCode.PREFLIGHT_CODE_MIGRATION_IN_FLIGHT]);
  });
});

describe('target pre-flight', () => {
  it('passes a compatible host with room', () => {
    assert.deepEqual(targetReasons(target()), []);
  });
  it('checks memory against free and total pages', () => {
    const r = targetReasons(target({ requiredPages: 6000n }));
    assert.deepEqual(codes(r), [PreflightCode.PREFLIGHT_CODE_INSUFFICIENT_MEMORY]);
    assert.equal(r[0].message, 'needs 6000 pages, 5000 free on host h2');
    assert.deepEqual(codes(targetReasons(target({ maxPages: 20_000n }))), [PreflightCode.PREFLIGHT_CODE_INSUFFICIENT_MEMORY]);
    assert.deepEqual(targetReasons(target({ requiredPages: 0n, maxPages: 0n })), [], 'zero = not checked');
  });
  it('refuses a taken name unless it is this migration\'s own restore domain', () => {
    const namesake = domain({ nrPages: 800 });
    assert.deepEqual(codes(targetReasons(target({ namesake }))), [PreflightCode.PREFLIGHT_CODE_DOMAIN_NAME_IN_USE]);
    // Its populated pages count as available to the migration that owns it.
    assert.deepEqual(targetReasons(target({ namesake, namesakeHolder: { migrationId: 'm-1', epoch: 1n }, requiredPages: 5800n })), []);
  });
  it('checks the source host\'s driver, versions and identity', () => {
    const src = Host.fromPartial({ name: 'h2', driver: HostDriver.HOST_DRIVER_XEN, xenVersion: { major: 4, minor: 18 }, ferryVersion: '0.2.0' });
    assert.deepEqual(codes(targetReasons(target({ source: src }))).sort((x, y) => x - y), [
      PreflightCode.PREFLIGHT_CODE_HYPERVISOR_VERSION_INCOMPATIBLE,
      PreflightCode.PREFLIGHT_CODE_FERRY_VERSION_INCOMPATIBLE,
      PreflightCode.PREFLIGHT_CODE_DRIVER_MISMATCH,
      PreflightCode.PREFLIGHT_CODE_SAME_HOST,
    ]);
    const older = Host.fromPartial({ name: 'h1', xenVersion: { major: 4, minor: 16 } });
    assert.deepEqual(targetReasons(target({ source: older })), [], 'a newer target restores an older source; unset fields are not checked');
  });
  it('compares Ferry versions by semver', () => {
    assert.equal(ferryVersionsCompatible('0.1.0', '0.1.7'), true);
    assert.equal(ferryVersionsCompatible('0.1.0', '0.2.0'), false);
    assert.equal(ferryVersionsCompatible('1.2.0', '1.9.1'), true);
    assert.equal(ferryVersionsCompatible('1.2.0', '2.0.0'), false);
    assert.equal(ferryVersionsCompatible('garbage', '0.1.0'), false);
  });
});
