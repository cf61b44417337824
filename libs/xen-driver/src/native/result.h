// Building result objects on the main thread: each setter returns napi_ok or the first failure.
#pragma once

#include <node_api.h>
#include <stdint.h>

static inline napi_status set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value v;
  napi_status status = napi_create_double(env, value, &v);
  return status == napi_ok ? napi_set_named_property(env, object, name, v) : status;
}

static inline napi_status set_bigint(napi_env env, napi_value object, const char *name, uint64_t value) {
  napi_value v;
  napi_status status = napi_create_bigint_uint64(env, value, &v);
  return status == napi_ok ? napi_set_named_property(env, object, name, v) : status;
}

static inline napi_status set_string(napi_env env, napi_value object, const char *name, const char *value) {
  napi_value v;
  napi_status status = napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v);
  return status == napi_ok ? napi_set_named_property(env, object, name, v) : status;
}

static inline napi_status set_bytes(napi_env env, napi_value object, const char *name, const void *data, size_t length) {
  napi_value v;
  napi_status status = napi_create_buffer_copy(env, length, data, NULL, &v);
  return status == napi_ok ? napi_set_named_property(env, object, name, v) : status;
}
