// See errors.h.
#define _GNU_SOURCE
#include "errors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#endif
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EIO: return "EIO";
    case E2BIG: return "E2BIG";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "EUNKNOWN";
  }
}

napi_value make_errno_error(napi_env env, const char *what, int err, const char *detail) {
  char message[1024];
  if (detail != NULL && detail[0] != '\0')
    snprintf(message, sizeof message, "%s: %s (%s) — %s", what, strerror(err), errno_name(err), detail);
  else
    snprintf(message, sizeof message, "%s: %s (%s)", what, strerror(err), errno_name(err));
  napi_value code, text, error, number;
  if (napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) != napi_ok ||
      napi_create_error(env, code, text, &error) != napi_ok || napi_create_int32(env, err, &number) != napi_ok ||
      napi_set_named_property(env, error, "errno", number) != napi_ok)
    return NULL;
  return error;
}

napi_value throw_errno(napi_env env, const char *what, int err, const char *detail) {
  napi_value error = make_errno_error(env, what, err, detail);
  if (error != NULL) napi_throw(env, error);
  return NULL;
}

napi_value throw_invalid(napi_env env, const char *message) {
  napi_throw_type_error(env, "EINVAL", message);
  return NULL;
}

napi_value throw_napi(napi_env env, napi_status status, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char message[512];
    snprintf(message, sizeof message, "%s failed: %s (napi_status %d)", what,
             info && info->error_message ? info->error_message : "unknown error", (int)status);
    napi_throw_error(env, "ENAPI", message);
  }
  return NULL;
}
