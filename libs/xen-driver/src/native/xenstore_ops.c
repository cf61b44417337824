// Xenstore: read, write, remove, resume, and watches. Watch events are not waited for on a
// thread: the xenstore connection's event descriptor (xs_fileno) is polled by the libuv loop while
// at least one watch is registered, and each pending event is handed to the JavaScript callback
// given to the constructor as (path, token); a broken connection is reported once as
// (null, null, error) and stops the polling.

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "async_op.h"
#include "errors.h"
#include "ops.h"

typedef enum { XSOP_READ, XSOP_WRITE, XSOP_REMOVE, XSOP_RESUME, XSOP_WATCH, XSOP_UNWATCH } xs_kind;

typedef struct {
  xen_op base;
  xs_kind kind;
  char *path;
  char *value;  // write: the value; watch/unwatch: the token; read: the result (NULL = absent)
  unsigned int value_length;
  uint32_t domid;
} xs_op;

static void execute_xs(xen_op *base) {
  xs_op *op = (xs_op *)base;
  struct xs_handle *xsh = base->xen->xsh;
  switch (op->kind) {
    case XSOP_READ: {
      op->value = xs_read(xsh, XBT_NULL, op->path, &op->value_length);
      if (op->value == NULL && errno != ENOENT) op_fail(base, errno, "xs_read(%s)", op->path);
      break;
    }
    case XSOP_WRITE:
      if (!xs_write(xsh, XBT_NULL, op->path, op->value, (unsigned int)strlen(op->value)))
        op_fail(base, errno, "xs_write(%s)", op->path);
      break;
    case XSOP_REMOVE:
      if (!xs_rm(xsh, XBT_NULL, op->path) && errno != ENOENT) op_fail(base, errno, "xs_rm(%s)", op->path);
      break;
    case XSOP_RESUME:
      // Tells xenstored the domain runs again after a cancelled suspend (as libxl does after
      // xc_domain_resume), so @releaseDomain watchers see its next shutdown.
      if (!xs_resume_domain(xsh, op->domid)) op_fail(base, errno, "xs_resume_domain(domain %u)", op->domid);
      break;
    case XSOP_WATCH:
      if (!xs_watch(xsh, op->path, op->value)) op_fail(base, errno, "xs_watch(%s)", op->path);
      break;
    case XSOP_UNWATCH:
      if (!xs_unwatch(xsh, op->path, op->value)) op_fail(base, errno, "xs_unwatch(%s)", op->path);
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Watch event polling (main thread)

static void deliver(xen_handle *h, napi_value path, napi_value token, napi_value error) {
  napi_env env = h->env;
  napi_value callback, recv, result;
  if (napi_get_reference_value(env, h->on_watch_event, &callback) != napi_ok || callback == NULL) return;
  // napi_make_callback converts the receiver to an object: undefined would throw a TypeError.
  napi_get_global(env, &recv);
  napi_value argv[3] = {path, token, error};
  if (napi_make_callback(env, h->watch_async, recv, callback, error != NULL ? 3 : 2, argv, &result) ==
      napi_pending_exception) {
    // A throwing watch callback is the program's bug: surface it as an uncaught exception.
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
}

static void on_watch_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  xen_handle *h = poll->data;
  if (h->closing) {
    // The handle is about to be released: stop polling rather than spin on an undrained descriptor.
    uv_poll_stop(poll);
    return;
  }
  napi_env env = h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  int err = status < 0 ? -status : 0;
  while (err == 0 && !h->closing) {
    char **event = xs_check_watch(h->xsh);
    if (event == NULL) {
      if (errno != EAGAIN) err = errno;
      break;
    }
    napi_value path, token, null_value;
    napi_get_null(env, &null_value);
    if (napi_create_string_utf8(env, event[XS_WATCH_PATH], NAPI_AUTO_LENGTH, &path) != napi_ok) path = null_value;
    if (napi_create_string_utf8(env, event[XS_WATCH_TOKEN], NAPI_AUTO_LENGTH, &token) != napi_ok) token = null_value;
    free(event);
    deliver(h, path, token, NULL);
  }
  if (err != 0 && !h->closing) {
    uv_poll_stop(poll);
    napi_value null_value;
    napi_get_null(env, &null_value);
    deliver(h, null_value, null_value, make_errno_error(env, "reading xenstore watch events", err, NULL));
  }
  napi_close_handle_scope(env, scope);
}

static napi_status start_polling(napi_env env, xen_handle *h) {
  if (h->poll == NULL) {
    int fd = xs_fileno(h->xsh);
    if (fd < 0) {
      throw_errno(env, "xs_fileno", errno, NULL);
      return napi_pending_exception;
    }
    uv_loop_t *loop;
    napi_status s = napi_get_uv_event_loop(env, &loop);
    if (s != napi_ok) return s;
    uv_poll_t *poll = calloc(1, sizeof *poll);
    if (poll == NULL) {
      throw_errno(env, "allocating the watch poller", ENOMEM, NULL);
      return napi_pending_exception;
    }
    int rc = uv_poll_init(loop, poll, fd);
    if (rc != 0) {
      free(poll);
      throw_errno(env, "uv_poll_init(xenstore watch descriptor)", -rc, NULL);
      return napi_pending_exception;
    }
    poll->data = h;
    h->poll = poll;
  }
  int rc = uv_poll_start(h->poll, UV_READABLE, on_watch_readable);
  if (rc != 0) {
    throw_errno(env, "uv_poll_start(xenstore watch descriptor)", -rc, NULL);
    return napi_pending_exception;
  }
  return napi_ok;
}

// ---------------------------------------------------------------------------------------------
// Completions

static napi_status complete_xs(napi_env env, xen_op *base, napi_value *result) {
  xs_op *op = (xs_op *)base;
  xen_handle *h = base->xen;
  switch (op->kind) {
    case XSOP_READ:
      if (op->value == NULL) return napi_get_null(env, result);
      return napi_create_string_utf8(env, op->value, op->value_length, result);
    case XSOP_WATCH:
      // Polling runs while any watch is registered, so an idle process can exit.
      if (++h->watch_count == 1) {
        napi_status s = start_polling(env, h);
        if (s != napi_ok) {
          h->watch_count--;
          return s;
        }
      }
      break;
    case XSOP_UNWATCH:
      if (h->watch_count > 0 && --h->watch_count == 0 && h->poll != NULL) uv_poll_stop(h->poll);
      break;
    default:
      break;
  }
  return napi_get_undefined(env, result);
}

static void release_xs(xen_op *base) {
  xs_op *op = (xs_op *)base;
  free(op->path);
  free(op->value);
}

static napi_value queue_xs(napi_env env, napi_callback_info info, xs_kind kind, const char *name) {
  napi_value self, argv[2];
  xen_handle *h = xen_method(env, info, 2, argv, &self);
  if (h == NULL) return NULL;
  xs_op *op = op_new(env, sizeof *op, h, execute_xs, complete_xs, release_xs);
  if (op == NULL) return NULL;
  op->kind = kind;
  bool ok;
  switch (kind) {
    case XSOP_RESUME:
      ok = arg_domid(env, argv[0], &op->domid);
      break;
    case XSOP_READ:
    case XSOP_REMOVE:
      ok = arg_string(env, argv[0], "path", &op->path);
      break;
    default:
      ok = arg_string(env, argv[0], "path", &op->path) &&
           arg_string(env, argv[1], kind == XSOP_WRITE ? "value" : "token", &op->value);
      break;
  }
  if (!ok) {
    op_discard(env, &op->base);
    return NULL;
  }
  return op_queue(env, self, &op->base, name);
}

napi_value method_xs_read(napi_env env, napi_callback_info info) { return queue_xs(env, info, XSOP_READ, "xs_read"); }

napi_value method_xs_write(napi_env env, napi_callback_info info) { return queue_xs(env, info, XSOP_WRITE, "xs_write"); }

napi_value method_xs_remove(napi_env env, napi_callback_info info) { return queue_xs(env, info, XSOP_REMOVE, "xs_rm"); }

napi_value method_xs_resume_domain(napi_env env, napi_callback_info info) {
  return queue_xs(env, info, XSOP_RESUME, "xs_resume_domain");
}

napi_value method_xs_watch(napi_env env, napi_callback_info info) { return queue_xs(env, info, XSOP_WATCH, "xs_watch"); }

napi_value method_xs_unwatch(napi_env env, napi_callback_info info) {
  return queue_xs(env, info, XSOP_UNWATCH, "xs_unwatch");
}
