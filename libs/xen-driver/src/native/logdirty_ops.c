// Log-dirty mode (XEN_DOMCTL_shadow_op): switching it on and off, and reading the dirty bitmap with
// CLEAN (read and reset) or PEEK (read only), optionally with LOGDIRTY_FINAL (xen.md §1.7).

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "async_op.h"
#include "errors.h"
#include "ops.h"
#include "result.h"

#define PAGE_BYTES 4096u

// ---------------------------------------------------------------------------------------------
// shadowControl(domid, op): op is XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY or XEN_DOMCTL_SHADOW_OP_OFF.

typedef struct {
  xen_op base;
  uint32_t domid;
  uint32_t sop;
} shadow_op;

static void execute_shadow_control(xen_op *base) {
  shadow_op *op = (shadow_op *)base;
  if (xc_shadow_control(base->xen->xch, op->domid, op->sop, NULL, 0) != 0)
    op_fail(base, errno, "xc_shadow_control(domain %u, %s)", op->domid,
            op->sop == XEN_DOMCTL_SHADOW_OP_OFF ? "OFF" : "ENABLE_LOGDIRTY");
}

napi_value method_shadow_control(napi_env env, napi_callback_info info) {
  napi_value self, argv[2];
  xen_handle *h = xen_method(env, info, 2, argv, &self);
  uint32_t domid, sop;
  if (h == NULL || !arg_domid(env, argv[0], &domid) || !arg_u32(env, argv[1], "op", &sop)) return NULL;
  if (sop != XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY && sop != XEN_DOMCTL_SHADOW_OP_OFF)
    return throw_invalid(env, "op must be XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY (2) or XEN_DOMCTL_SHADOW_OP_OFF (0)");
  shadow_op *op = op_new(env, sizeof *op, h, execute_shadow_control, complete_undefined, NULL);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->sop = sop;
  return op_queue(env, self, &op->base, "xc_shadow_control");
}

// ---------------------------------------------------------------------------------------------
// logDirtyControl(domid, op, final) → { bitmap, pages, dirtyCount, faultCount }
// op is XEN_DOMCTL_SHADOW_OP_CLEAN or _PEEK. The bitmap covers the whole p2m (xc_domain_nr_gpfns,
// read in the same operation): one bit per pfn, in Xen's order (an array of little-endian
// unsigned longs, i.e. pfn p is bit p&7 of byte p>>3 on x86).

typedef struct {
  xen_op base;
  uint32_t domid;
  uint32_t sop;
  bool final;
  xen_pfn_t pages;
  uint8_t *bitmap;
  size_t bitmap_bytes;
  xc_shadow_op_stats_t stats;
} logdirty_op;

static void execute_logdirty_control(xen_op *base) {
  logdirty_op *op = (logdirty_op *)base;
  xc_interface *xch = base->xen->xch;
  const char *name = op->sop == XEN_DOMCTL_SHADOW_OP_CLEAN ? "CLEAN" : "PEEK";
  if (xc_domain_nr_gpfns(xch, op->domid, &op->pages) < 0) {
    op_fail(base, errno, "xc_domain_nr_gpfns(domain %u)", op->domid);
    return;
  }
  op->bitmap_bytes = (size_t)((op->pages + 7) / 8);
  int hypercall_pages = (int)((op->bitmap_bytes + PAGE_BYTES - 1) / PAGE_BYTES);
  if (hypercall_pages == 0) hypercall_pages = 1;
  op->bitmap = malloc(op->bitmap_bytes > 0 ? op->bitmap_bytes : 1);
  if (op->bitmap == NULL) {
    op_fail(base, ENOMEM, "log-dirty %s of domain %u: allocating %zu bytes", name, op->domid, op->bitmap_bytes);
    return;
  }
  // The hypervisor writes the bitmap into hypercall-safe (locked) memory only.
  DECLARE_HYPERCALL_BUFFER(uint8_t, xen_bitmap);
  xen_bitmap = xc_hypercall_buffer_alloc_pages(xch, xen_bitmap, hypercall_pages);
  if (xen_bitmap == NULL) {
    op_fail(base, ENOMEM, "log-dirty %s of domain %u: allocating %d hypercall pages", name, op->domid, hypercall_pages);
    return;
  }
  memset(xen_bitmap, 0, (size_t)hypercall_pages * PAGE_BYTES);
  long long rc = xc_logdirty_control(xch, op->domid, op->sop, HYPERCALL_BUFFER(xen_bitmap), op->pages,
                                     op->final ? XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL : 0, &op->stats);
  int err = errno;
  if (rc >= 0) memcpy(op->bitmap, xen_bitmap, op->bitmap_bytes);
  xc_hypercall_buffer_free_pages(xch, xen_bitmap, hypercall_pages);
  if (rc < 0) op_fail(base, err, "xc_logdirty_control(domain %u, %s%s)", op->domid, name, op->final ? ", FINAL" : "");
}

static napi_status complete_logdirty_control(napi_env env, xen_op *base, napi_value *result) {
  logdirty_op *op = (logdirty_op *)base;
  napi_value o;
  napi_status s = napi_create_object(env, &o);
  if (s == napi_ok) s = set_bytes(env, o, "bitmap", op->bitmap, op->bitmap_bytes);
  if (s == napi_ok) s = set_number(env, o, "pages", (double)op->pages);
  if (s == napi_ok) s = set_number(env, o, "dirtyCount", op->stats.dirty_count);
  if (s == napi_ok) s = set_number(env, o, "faultCount", op->stats.fault_count);
  *result = o;
  return s;
}

static void release_logdirty(xen_op *base) { free(((logdirty_op *)base)->bitmap); }

napi_value method_logdirty_control(napi_env env, napi_callback_info info) {
  napi_value self, argv[3];
  xen_handle *h = xen_method(env, info, 3, argv, &self);
  uint32_t domid, sop;
  bool final;
  if (h == NULL || !arg_domid(env, argv[0], &domid) || !arg_u32(env, argv[1], "op", &sop) ||
      !arg_bool(env, argv[2], "final", &final))
    return NULL;
  if (sop != XEN_DOMCTL_SHADOW_OP_CLEAN && sop != XEN_DOMCTL_SHADOW_OP_PEEK)
    return throw_invalid(env, "op must be XEN_DOMCTL_SHADOW_OP_CLEAN (11) or XEN_DOMCTL_SHADOW_OP_PEEK (12)");
  logdirty_op *op = op_new(env, sizeof *op, h, execute_logdirty_control, complete_logdirty_control, release_logdirty);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->sop = sop;
  op->final = final;
  return op_queue(env, self, &op->base, "xc_logdirty_control");
}
