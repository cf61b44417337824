// The state behind one XenInterface object: the libxen handles (a hypercall interface, a foreign
// memory handle, a xenstore connection) and the poller of xenstore watch events.
//
// Lifetime: operations run on libuv worker threads and count themselves in `inflight`; close()
// (or garbage collection of the JavaScript object) sets `closing`, after which new operations are
// refused, and the handles are closed once the last operation has completed and the watch poller
// has been closed. The struct itself is freed when both the handles are released and the
// JavaScript object is gone.
#pragma once

#include <node_api.h>
#include <stdbool.h>
#include <uv.h>
#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenstore.h>

typedef struct xen_handle {
  napi_env env;
  xc_interface *xch;
  xenforeignmemory_handle *fmem;
  struct xs_handle *xsh;

  unsigned inflight;
  bool closing;
  bool releasing;
  bool released;
  bool collected;

  // xenstore watches: xs_fileno(xsh) is polled while at least one watch is registered.
  unsigned watch_count;
  uv_poll_t *poll;
  napi_ref on_watch_event;
  napi_async_context watch_async;
} xen_handle;

/**
 * The common start of every method: reads `count` arguments (missing ones are `undefined`) and
 * the XenInterface behind `this`. Throws and returns NULL when the object is closed.
 */
xen_handle *xen_method(napi_env env, napi_callback_info info, size_t count, napi_value *argv, napi_value *self);

/** Closes the libxen handles once the handle is closing and no operation is in flight. */
void xen_handle_maybe_release(xen_handle *h);

/** The JavaScript object was collected (napi_wrap finalizer). */
void xen_handle_finalize(napi_env env, void *data, void *hint);

/** Opens the three libxen handles; on failure throws and returns NULL. */
xen_handle *xen_handle_open(napi_env env);
