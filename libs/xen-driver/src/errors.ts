// The addon's errors (error.code = errno name, see src/native/errors.c) as HypervisorErrors, so
// the gRPC layer maps them the same way as the emulated driver's.

import { HypervisorError, type HypervisorErrorCode } from '@ferry/hypervisor';

const BY_ERRNO: Readonly<Record<string, HypervisorErrorCode>> = {
  ESRCH: 'ESRCH',
  EEXIST: 'EEXIST',
  ENOMEM: 'ENOMEM',
  ENOSPC: 'ENOMEM',
  E2BIG: 'E2BIG',
  EINVAL: 'EINVAL',
  ERANGE: 'EINVAL',
  EFAULT: 'EINVAL',
  EOVERFLOW: 'EINVAL',
  EOPNOTSUPP: 'EINVAL',
  ENOSYS: 'EINVAL',
  EBUSY: 'EBUSY',
  EAGAIN: 'EBUSY',
  ETIMEDOUT: 'ETIMEDOUT',
  // EPERM, EACCES, ENOENT (a missing /dev/xen node), EIO, EBADF (closed) and the rest: the
  // connection to the hypervisor is not usable.
};

/** The HypervisorError code for an errno name. */
export function hypervisorCode(errnoName: string | undefined): HypervisorErrorCode {
  return (errnoName !== undefined && BY_ERRNO[errnoName]) || 'EIO';
}

/** Any thrown value as a HypervisorError (kept as is when it already is one). */
export function toHypervisorError(err: unknown): HypervisorError {
  if (err instanceof HypervisorError) return err;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    // A TypeError from the addon is a malformed argument (code EINVAL), not a hypervisor failure.
    return new HypervisorError(hypervisorCode(typeof code === 'string' ? code : undefined), err.message);
  }
  return new HypervisorError('EIO', String(err));
}
