// Pre-flight refuses PV domUs, which the xen driver reports as guestType 'pv' (the check itself
// lives in libs/agent/src/preflight.ts; the emulated driver reports no guest type).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sourceReasons } from '@ferry/agent';
import type { DomainInfo } from '@ferry/hypervisor';
import { PreflightCode } from '@ferry/proto';

const domain = (over: Partial<DomainInfo>): DomainInfo => ({
  domid: 5,
  name: 'pv-guest',
  uuid: '00000000-0000-4000-8000-000000000005',
  state: 'running',
  shutdownReason: null,
  nrPages: 32768,
  maxPages: 32768,
  vcpus: 1,
  logDirty: false,
  ...over,
});

const facts = (d: DomainInfo) => ({ host: 'dom0-a', migrationId: 'm-1', domainName: d.name, domain: d, featureSuspend: '1', holder: undefined });

test('a PV domain is not migratable, with the reason', () => {
  const reasons = sourceReasons(facts(domain({ guestType: 'pv' })));
  assert.deepEqual(reasons.map((r) => r.code), [PreflightCode.PREFLIGHT_CODE_DOMAIN_NOT_MIGRATABLE]);
  assert.match(reasons[0].message, /domain pv-guest \(domid 5\) is a PV guest; the xen driver migrates PVH and HVM guests only/);
});

test('PVH, HVM and untyped (emulated) domains pass', () => {
  for (const guestType of ['pvh', 'hvm', undefined] as const) {
    assert.deepEqual(sourceReasons(facts(domain({ guestType }))), [], String(guestType));
  }
});
