// JavaScript errors for failed libxen calls: message "<what>: <strerror> (<ERRNAME>)[ — <libxc's
// own message>]", with error.code = ERRNAME and error.errno = the number, so the TypeScript side
// maps them to HypervisorError codes without parsing text.
#pragma once

#include <node_api.h>

const char *errno_name(int err);

/** A new Error object (for rejecting a promise). `detail` may be NULL or "". */
napi_value make_errno_error(napi_env env, const char *what, int err, const char *detail);

/** Throws like make_errno_error; returns NULL for the caller to return. */
napi_value throw_errno(napi_env env, const char *what, int err, const char *detail);

/** Throws a TypeError with code EINVAL (a bad argument from JavaScript); returns NULL. */
napi_value throw_invalid(napi_env env, const char *message);

/** A failed napi_* call may or may not have left an exception pending; make sure one is. Returns NULL. */
napi_value throw_napi(napi_env env, napi_status status, const char *what);
