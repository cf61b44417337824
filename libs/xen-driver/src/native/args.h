// Reading JavaScript arguments. Each reader throws a TypeError naming the argument and returns
// false when the value does not fit.
#pragma once

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** An integer in [0, 2^32). */
bool arg_u32(napi_env env, napi_value value, const char *name, uint32_t *out);
/** A domain id below DOMID_FIRST_RESERVED. */
bool arg_domid(napi_env env, napi_value value, uint32_t *out);
bool arg_bool(napi_env env, napi_value value, const char *name, bool *out);
/** A bigint in [0, 2^64). */
bool arg_u64(napi_env env, napi_value value, const char *name, uint64_t *out);
/** A string, copied into malloc'd memory the caller frees. */
bool arg_string(napi_env env, napi_value value, const char *name, char **out);
/** A view of a typed array of the given type (no copy: valid while the array is referenced). */
bool arg_typed_array(napi_env env, napi_value value, const char *name, napi_typedarray_type type, void **data,
                     size_t *length);
