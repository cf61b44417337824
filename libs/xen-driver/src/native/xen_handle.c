// See xen_handle.h.

#include "xen_handle.h"

#include <errno.h>
#include <stdlib.h>

#include "capture_logger.h"
#include "errors.h"

xen_handle *xen_handle_open(napi_env env) {
  xen_handle *h = calloc(1, sizeof *h);
  if (h == NULL) {
    throw_errno(env, "opening the Xen interface", ENOMEM, NULL);
    return NULL;
  }
  h->env = env;
  capture_logger_clear();
  // Each of the three fails cleanly (NULL + errno, and a message to our logger) outside a dom0.
  h->xch = xc_interface_open(capture_logger(), capture_logger(), 0);
  if (h->xch == NULL) {
    int err = errno;
    free(h);
    throw_errno(env, "xc_interface_open (needs /dev/xen/privcmd, root in a Xen dom0)", err, capture_logger_last());
    return NULL;
  }
  h->fmem = xenforeignmemory_open(capture_logger(), 0);
  if (h->fmem == NULL) {
    int err = errno;
    xc_interface_close(h->xch);
    free(h);
    throw_errno(env, "xenforeignmemory_open (needs /dev/xen/privcmd)", err, capture_logger_last());
    return NULL;
  }
  // XS_UNWATCH_FILTER: after xs_unwatch no stale event of that watch is delivered.
  h->xsh = xs_open(XS_UNWATCH_FILTER);
  if (h->xsh == NULL) {
    int err = errno;
    xenforeignmemory_close(h->fmem);
    xc_interface_close(h->xch);
    free(h);
    throw_errno(env, "xs_open (is xenstored running? it is reached through /run/xenstored/socket or /dev/xen/xenbus)",
                err, NULL);
    return NULL;
  }
  return h;
}

static void close_libxen_handles(xen_handle *h) {
  xs_close(h->xsh);
  xenforeignmemory_close(h->fmem);
  xc_interface_close(h->xch);
  h->xsh = NULL;
  h->fmem = NULL;
  h->xch = NULL;
  if (h->on_watch_event != NULL) napi_delete_reference(h->env, h->on_watch_event);
  if (h->watch_async != NULL) napi_async_destroy(h->env, h->watch_async);
  h->on_watch_event = NULL;
  h->watch_async = NULL;
  h->released = true;
  if (h->collected) free(h);
}

static void on_poll_closed(uv_handle_t *handle) {
  xen_handle *h = handle->data;
  free(handle);
  h->poll = NULL;
  close_libxen_handles(h);
}

void xen_handle_maybe_release(xen_handle *h) {
  if (!h->closing || h->releasing || h->inflight > 0) return;
  h->releasing = true;
  // The poller watches a descriptor that xs_close closes: stop it first.
  if (h->poll != NULL) {
    uv_poll_stop(h->poll);
    uv_close((uv_handle_t *)h->poll, on_poll_closed);
  } else {
    close_libxen_handles(h);
  }
}

void xen_handle_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  xen_handle *h = data;
  h->collected = true;
  h->closing = true;
  if (h->released) {
    free(h);
    return;
  }
  xen_handle_maybe_release(h);
}

xen_handle *xen_method(napi_env env, napi_callback_info info, size_t count, napi_value *argv, napi_value *self) {
  size_t argc = count;
  napi_value this_arg;
  napi_status status = napi_get_cb_info(env, info, &argc, argv, &this_arg, NULL);
  if (status != napi_ok) {
    throw_napi(env, status, "napi_get_cb_info");
    return NULL;
  }
  xen_handle *h = NULL;
  status = napi_unwrap(env, this_arg, (void **)&h);
  if (status != napi_ok || h == NULL) {
    throw_invalid(env, "not a XenInterface");
    return NULL;
  }
  if (h->closing) {
    throw_errno(env, "the Xen interface is closed", EBADF, NULL);
    return NULL;
  }
  if (self != NULL) *self = this_arg;
  return h;
}
