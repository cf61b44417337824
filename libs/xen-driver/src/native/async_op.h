// Operations that return a Promise: the libxen calls run on a libuv worker thread (they block on
// hypercalls, on xenstored, and copy megabytes of guest memory), the result is built on the main
// thread. Every operation is a struct that starts with a xen_op:
//
//   typedef struct { xen_op base; uint32_t domid; ... } pause_op;
//   pause_op *op = op_new(sizeof *op, h, execute_pause, complete_undefined, NULL);
//   return op_queue(env, self, &op->base, "xc_domain_pause");
#pragma once

#include <node_api.h>
#include <stddef.h>

#include "xen_handle.h"

#define OP_MAX_KEPT 3

typedef struct xen_op xen_op;

struct xen_op {
  xen_handle *xen;
  /** Worker thread: the libxen calls. Reports failure with op_fail; must not touch JavaScript. */
  void (*execute)(xen_op *op);
  /** Main thread, after a successful execute: the value the promise resolves to. */
  napi_status (*complete)(napi_env env, xen_op *op, napi_value *result);
  /** Main thread, last: frees what the operation allocated (not the op itself). May be NULL. */
  void (*release)(xen_op *op);

  int err;
  char what[192];
  char detail[512];

  napi_async_work work;
  napi_deferred deferred;
  napi_ref self;
  napi_ref kept[OP_MAX_KEPT];
  int kept_count;
};

/** A zeroed operation of `size` bytes (at least sizeof(xen_op)); NULL with an exception thrown on failure. */
void *op_new(napi_env env, size_t size, xen_handle *h, void (*execute)(xen_op *),
             napi_status (*complete)(napi_env, xen_op *, napi_value *), void (*release)(xen_op *));

/** Keeps a JavaScript value (a buffer the worker reads or writes) alive until the operation ends. */
napi_status op_keep(napi_env env, xen_op *op, napi_value value);

/** Queues the operation and returns its promise; on failure frees it, throws and returns NULL. */
napi_value op_queue(napi_env env, napi_value self, xen_op *op, const char *name);

/** Worker thread: records a failure with errno `err` and libxc's last logged message. */
void op_fail(xen_op *op, int err, const char *format, ...) __attribute__((format(printf, 3, 4)));

/** Frees an operation that was never queued. */
void op_discard(napi_env env, xen_op *op);

/** A `complete` for operations that resolve to undefined. */
napi_status complete_undefined(napi_env env, xen_op *op, napi_value *result);
