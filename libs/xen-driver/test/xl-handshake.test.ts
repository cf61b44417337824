// xl's migration handshake as the receiver speaks it, and the config cut out of `xl list -l`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeDomainConfig } from '@ferry/xen-stream';
import {
  XL_PERMISSION_TO_GO,
  XL_RECEIVER_BANNER,
  XL_RECEIVER_READY,
  XL_REPORT,
  XlAckParser,
  configFromXlList,
  synthesiseConfig,
  type XlAckEvent,
} from '@ferry/xen-driver';

describe('XlAckParser', () => {
  it("reads xl's messages with their NULs, however the bytes are split", () => {
    const all = Buffer.concat([XL_RECEIVER_BANNER, XL_RECEIVER_READY, XL_REPORT, Buffer.from([0])]);
    for (const step of [1, 3, 7, all.length]) {
      const p = new XlAckParser();
      const events: XlAckEvent[] = [];
      for (let i = 0; i < all.length; i += step) events.push(...p.push(all.subarray(i, i + step)));
      assert.deepEqual(events, [{ kind: 'banner' }, { kind: 'ready' }, { kind: 'report', code: 0 }]);
    }
  });

  it('a failed unpause: the code, then the permission handed back', () => {
    const p = new XlAckParser();
    const events = p.push(Buffer.concat([XL_RECEIVER_BANNER, XL_RECEIVER_READY, XL_REPORT, Buffer.from([3]), XL_PERMISSION_TO_GO]));
    assert.deepEqual(events, [{ kind: 'banner' }, { kind: 'ready' }, { kind: 'report', code: 3 }, { kind: 'permission-back' }]);
    assert.equal(p.reportCode, 3);
  });

  it('refuses bytes xl would never send', () => {
    assert.throws(() => new XlAckParser().push(Buffer.from('garbage')), /xl migrate-receive wrote "garbage"/);
    const p = new XlAckParser();
    p.push(XL_RECEIVER_BANNER);
    assert.throws(() => p.push(Buffer.from('domain received, ready to unpause\n')), /was due/);
  });

  it('the messages are the bytes of tools/xl/xl.h (the banner without NUL, the others with)', () => {
    assert.equal(XL_RECEIVER_BANNER.toString('latin1'), 'xl migration receiver ready, send binary domain data.\n');
    assert.equal(XL_RECEIVER_READY.length, 'domain received, ready to unpause'.length + 1);
    assert.equal(XL_PERMISSION_TO_GO.at(-1), 0);
    assert.equal(XL_REPORT.at(-1), 0);
  });
});

describe('configFromXlList', () => {
  it('cuts the config object out of `xl list -l`, as text', () => {
    const listing = `[
{
    "domid": 3,
    "config": {
        "c_info": {
            "type": "pvh",
            "name": "guest {odd} \\"name\\"",
            "uuid": "6a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9"
        },
        "b_info": {
            "max_vcpus": 1,
            "max_memkb": 131072,
            "target_memkb": 131072,
            "shadow_memkb": 18446744073709551615,
            "kernel": "/work/guest/vmlinuz"
        },
        "disks": [ { "vdev": "xvda" } ]
    }
}
]
`;
    const config = configFromXlList(listing)!;
    assert.ok(config.startsWith('{') && config.endsWith('}'));
    assert.match(config, /18446744073709551615/); // not re-serialised: libxl's 64-bit defaults survive
    const decoded = decodeDomainConfig(config);
    assert.equal(decoded.name, 'guest {odd} "name"');
    assert.equal(decoded.maxMemKiB, 131072);
  });

  it('null when there is no config', () => {
    assert.equal(configFromXlList('[]'), null);
    assert.equal(configFromXlList('[{"domid": 1, "note": "\\"config\\": {"}]'), null);
    assert.equal(configFromXlList('[{"config": {"a": 1'), null);
  });

  it('a synthesised config is a PVH domain of the memory asked for', () => {
    const c = decodeDomainConfig(synthesiseConfig({ name: 'g', vcpus: 2, memoryPages: 32768, uuid: '6a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9' }));
    assert.equal(c.maxMemKiB, 131072);
    assert.equal(c.vcpus, 2);
    assert.equal(c.name, 'g');
  });
});
