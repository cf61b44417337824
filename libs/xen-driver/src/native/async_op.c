// See async_op.h.

#include "async_op.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture_logger.h"
#include "errors.h"

void *op_new(napi_env env, size_t size, xen_handle *h, void (*execute)(xen_op *),
             napi_status (*complete)(napi_env, xen_op *, napi_value *), void (*release)(xen_op *)) {
  xen_op *op = calloc(1, size);
  if (op == NULL) return throw_errno(env, "allocating an operation", ENOMEM, NULL);
  op->xen = h;
  op->execute = execute;
  op->complete = complete;
  op->release = release;
  return op;
}

napi_status op_keep(napi_env env, xen_op *op, napi_value value) {
  if (op->kept_count >= OP_MAX_KEPT) return napi_generic_failure;
  napi_status status = napi_create_reference(env, value, 1, &op->kept[op->kept_count]);
  if (status == napi_ok) op->kept_count++;
  return status;
}

void op_fail(xen_op *op, int err, const char *format, ...) {
  op->err = err != 0 ? err : EIO;
  va_list args;
  va_start(args, format);
  vsnprintf(op->what, sizeof op->what, format, args);
  va_end(args);
  snprintf(op->detail, sizeof op->detail, "%s", capture_logger_last());
}

napi_status complete_undefined(napi_env env, xen_op *op, napi_value *result) {
  (void)op;
  return napi_get_undefined(env, result);
}

static void free_op(napi_env env, xen_op *op) {
  for (int i = 0; i < op->kept_count; i++) napi_delete_reference(env, op->kept[i]);
  if (op->work != NULL) napi_delete_async_work(env, op->work);
  if (op->release != NULL) op->release(op);
  napi_ref self = op->self;
  free(op);
  // Last: dropping `self` may let the XenInterface object (and then the handle) be collected.
  if (self != NULL) napi_delete_reference(env, self);
}

void op_discard(napi_env env, xen_op *op) { free_op(env, op); }

static void execute_on_worker(napi_env env, void *data) {
  (void)env;
  xen_op *op = data;
  capture_logger_clear();
  op->execute(op);
}

static void complete_on_main(napi_env env, napi_status status, void *data) {
  xen_op *op = data;
  xen_handle *h = op->xen;
  napi_value outcome = NULL;
  bool resolved = false;
  if (status == napi_cancelled) {
    outcome = make_errno_error(env, "the operation was cancelled", ECANCELED, NULL);
  } else if (op->err != 0) {
    outcome = make_errno_error(env, op->what, op->err, op->detail);
  } else if (op->complete(env, op, &outcome) == napi_ok) {
    resolved = true;
  } else {
    // Building the result threw (or ran out of memory): reject with that exception.
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, &outcome);
    else outcome = make_errno_error(env, "building the result", ENOMEM, NULL);
  }
  if (resolved) napi_resolve_deferred(env, op->deferred, outcome);
  else napi_reject_deferred(env, op->deferred, outcome);
  h->inflight--;
  xen_handle_maybe_release(h);
  free_op(env, op);
}

napi_value op_queue(napi_env env, napi_value self, xen_op *op, const char *name) {
  napi_value promise, resource_name;
  napi_status status = napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  if (status == napi_ok) status = napi_create_reference(env, self, 1, &op->self);
  if (status == napi_ok)
    status = napi_create_async_work(env, NULL, resource_name, execute_on_worker, complete_on_main, op, &op->work);
  if (status == napi_ok) status = napi_create_promise(env, &op->deferred, &promise);
  if (status == napi_ok) status = napi_queue_async_work(env, op->work);
  if (status != napi_ok) {
    // A created deferred that is never settled only leaks a pending promise nobody holds.
    free_op(env, op);
    return throw_napi(env, status, name);
  }
  op->xen->inflight++;
  return promise;
}
