// The addon's errno-coded errors as HypervisorErrors.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HypervisorError } from '@ferry/hypervisor';
import { hypervisorCode, toHypervisorError } from '@ferry/xen-driver';

function errnoError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('error mapping', () => {
  it('maps the errnos Xen answers with to the interface\'s codes', () => {
    const expected: Record<string, string> = {
      ESRCH: 'ESRCH', // no such domain
      EEXIST: 'EEXIST',
      ENOMEM: 'ENOMEM',
      ENOSPC: 'ENOMEM',
      E2BIG: 'E2BIG', // getpageframeinfo3 over 1024 frames
      EINVAL: 'EINVAL',
      ERANGE: 'EINVAL',
      EFAULT: 'EINVAL',
      EOPNOTSUPP: 'EINVAL', // e.g. PV log-dirty without shadow paging
      ENOSYS: 'EINVAL',
      EBUSY: 'EBUSY', // a paging op already in progress
      EAGAIN: 'EBUSY',
      ETIMEDOUT: 'ETIMEDOUT',
      EPERM: 'EIO', // not privileged
      EACCES: 'EIO',
      ENOENT: 'EIO', // /dev/xen/privcmd missing
      EBADF: 'EIO', // the driver was closed
      EUNKNOWN: 'EIO',
    };
    for (const [errno, code] of Object.entries(expected)) assert.equal(hypervisorCode(errno), code, errno);
    assert.equal(hypervisorCode(undefined), 'EIO');
  });

  it('keeps the addon\'s message and passes HypervisorErrors through', () => {
    const e = toHypervisorError(errnoError('ESRCH', 'xc_domain_pause(domain 9): No such process (ESRCH)'));
    assert.ok(e instanceof HypervisorError);
    assert.equal(e.code, 'ESRCH');
    assert.equal(e.message, 'xc_domain_pause(domain 9): No such process (ESRCH)');
    const same = new HypervisorError('EBUSY', 'busy');
    assert.equal(toHypervisorError(same), same);
    assert.equal(toHypervisorError('text').code, 'EIO');
    assert.equal(toHypervisorError(new TypeError('x')).code, 'EIO');
    assert.equal(toHypervisorError(Object.assign(new TypeError('domid must be ...'), { code: 'EINVAL' })).code, 'EINVAL');
  });
});
