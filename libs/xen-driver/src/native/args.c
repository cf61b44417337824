// See args.h.

#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <xenctrl.h>

#include "errors.h"

static bool fail(napi_env env, const char *name, const char *expected) {
  char message[256];
  snprintf(message, sizeof message, "%s must be %s", name, expected);
  throw_invalid(env, message);
  return false;
}

bool arg_u32(napi_env env, napi_value value, const char *name, uint32_t *out) {
  double number;
  if (napi_get_value_double(env, value, &number) != napi_ok || number != (double)(uint32_t)number)
    return fail(env, name, "an integer in [0, 2^32)");
  *out = (uint32_t)number;
  return true;
}

bool arg_domid(napi_env env, napi_value value, uint32_t *out) {
  if (!arg_u32(env, value, "domid", out)) return false;
  if (*out >= DOMID_FIRST_RESERVED) return fail(env, "domid", "below DOMID_FIRST_RESERVED (0x7ff0)");
  return true;
}

bool arg_bool(napi_env env, napi_value value, const char *name, bool *out) {
  if (napi_get_value_bool(env, value, out) != napi_ok) return fail(env, name, "a boolean");
  return true;
}

bool arg_u64(napi_env env, napi_value value, const char *name, uint64_t *out) {
  bool lossless = false;
  if (napi_get_value_bigint_uint64(env, value, out, &lossless) != napi_ok || !lossless)
    return fail(env, name, "a bigint in [0, 2^64)");
  return true;
}

bool arg_string(napi_env env, napi_value value, const char *name, char **out) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return fail(env, name, "a string");
  char *text = malloc(length + 1);
  if (text == NULL) {
    throw_errno(env, name, ENOMEM, NULL);
    return false;
  }
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  *out = text;
  return true;
}

bool arg_typed_array(napi_env env, napi_value value, const char *name, napi_typedarray_type type, void **data,
                     size_t *length) {
  static const char *const names[] = {
      [napi_int8_array] = "an Int8Array",         [napi_uint8_array] = "a Uint8Array",
      [napi_uint8_clamped_array] = "a Uint8ClampedArray", [napi_int16_array] = "an Int16Array",
      [napi_uint16_array] = "a Uint16Array",      [napi_int32_array] = "an Int32Array",
      [napi_uint32_array] = "a Uint32Array",      [napi_float32_array] = "a Float32Array",
      [napi_float64_array] = "a Float64Array",    [napi_bigint64_array] = "a BigInt64Array",
      [napi_biguint64_array] = "a BigUint64Array",
  };
  bool is_typed = false;
  napi_typedarray_type actual;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &actual, length, data, NULL, NULL) != napi_ok || actual != type)
    return fail(env, name, names[type]);
  return true;
}
