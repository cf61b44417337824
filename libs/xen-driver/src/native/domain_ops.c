// Domains: the raw getdomaininfo records (decoded into DomainInfo in TypeScript), the p2m size,
// and the one-call lifecycle operations (pause, unpause, destroy, resume after a cancelled suspend).

#include <errno.h>
#include <stdlib.h>
#include <xenctrl.h>  // before xenguest.h, which needs its types
#include <xenguest.h>

#include "args.h"
#include "async_op.h"
#include "ops.h"
#include "result.h"

// ---------------------------------------------------------------------------------------------
// Domain records

/** Domains fetched per getdomaininfo call while listing. */
#define LIST_CHUNK 64

typedef struct {
  xen_op base;
  uint32_t domid;  // domainInfo: the one domain; domainList: unused
  bool single;
  xc_domaininfo_t *infos;
  size_t count;
} domain_info_op;

static void execute_domain_info(xen_op *base) {
  domain_info_op *op = (domain_info_op *)base;
  xc_interface *xch = base->xen->xch;
  if (op->single) {
    op->infos = malloc(sizeof *op->infos);
    if (op->infos == NULL) {
      op_fail(base, ENOMEM, "xc_domain_getinfolist");
      return;
    }
    int n = xc_domain_getinfolist(xch, op->domid, 1, op->infos);
    if (n < 0) {
      op_fail(base, errno, "xc_domain_getinfolist(domain %u)", op->domid);
      return;
    }
    // getinfolist answers from the first domain >= domid: another domain means this one is gone.
    if (n == 0 || op->infos[0].domain != op->domid) {
      op_fail(base, ESRCH, "domain %u does not exist", op->domid);
      return;
    }
    op->count = 1;
    return;
  }
  size_t capacity = 0;
  uint32_t next = 0;
  for (;;) {
    if (op->count + LIST_CHUNK > capacity) {
      capacity = capacity * 2 + LIST_CHUNK;
      xc_domaininfo_t *grown = realloc(op->infos, capacity * sizeof *grown);
      if (grown == NULL) {
        op_fail(base, ENOMEM, "xc_domain_getinfolist");
        return;
      }
      op->infos = grown;
    }
    int n = xc_domain_getinfolist(xch, next, LIST_CHUNK, op->infos + op->count);
    if (n < 0) {
      op_fail(base, errno, "xc_domain_getinfolist(from domain %u)", next);
      return;
    }
    op->count += (size_t)n;
    if (n < LIST_CHUNK) return;
    next = op->infos[op->count - 1].domain + 1u;
    if (next >= DOMID_FIRST_RESERVED) return;
  }
}

static napi_status domain_record(napi_env env, const xc_domaininfo_t *d, napi_value *result) {
  napi_value o;
  napi_status s = napi_create_object(env, &o);
  if (s == napi_ok) s = set_number(env, o, "domid", d->domain);
  if (s == napi_ok) s = set_number(env, o, "flags", d->flags);
  if (s == napi_ok) s = set_number(env, o, "totPages", (double)d->tot_pages);
  if (s == napi_ok) s = set_number(env, o, "maxPages", (double)d->max_pages);
  if (s == napi_ok) s = set_number(env, o, "outstandingPages", (double)d->outstanding_pages);
  if (s == napi_ok) s = set_number(env, o, "sharedPages", (double)d->shr_pages);
  if (s == napi_ok) s = set_number(env, o, "pagedPages", (double)d->paged_pages);
  if (s == napi_ok) s = set_number(env, o, "sharedInfoFrame", (double)d->shared_info_frame);
  if (s == napi_ok) s = set_bigint(env, o, "cpuTimeNs", d->cpu_time);
  if (s == napi_ok) s = set_number(env, o, "nrOnlineVcpus", d->nr_online_vcpus);
  if (s == napi_ok) s = set_number(env, o, "maxVcpuId", d->max_vcpu_id);
  if (s == napi_ok) s = set_number(env, o, "cpupool", d->cpupool);
  if (s == napi_ok) s = set_number(env, o, "gpaddrBits", d->gpaddr_bits);
  if (s == napi_ok) s = set_number(env, o, "emulationFlags", d->arch_config.emulation_flags);
  if (s == napi_ok) s = set_bytes(env, o, "handle", d->handle, sizeof d->handle);
  *result = o;
  return s;
}

static napi_status complete_domain_info(napi_env env, xen_op *base, napi_value *result) {
  domain_info_op *op = (domain_info_op *)base;
  if (op->single) return domain_record(env, &op->infos[0], result);
  napi_value list;
  napi_status s = napi_create_array_with_length(env, op->count, &list);
  for (size_t i = 0; s == napi_ok && i < op->count; i++) {
    napi_value record;
    s = domain_record(env, &op->infos[i], &record);
    if (s == napi_ok) s = napi_set_element(env, list, (uint32_t)i, record);
  }
  *result = list;
  return s;
}

static void release_domain_info(xen_op *base) { free(((domain_info_op *)base)->infos); }

napi_value method_domain_list(napi_env env, napi_callback_info info) {
  napi_value self;
  xen_handle *h = xen_method(env, info, 0, NULL, &self);
  if (h == NULL) return NULL;
  domain_info_op *op = op_new(env, sizeof *op, h, execute_domain_info, complete_domain_info, release_domain_info);
  if (op == NULL) return NULL;
  return op_queue(env, self, &op->base, "xc_domain_getinfolist");
}

napi_value method_domain_info(napi_env env, napi_callback_info info) {
  napi_value self, argv[1];
  xen_handle *h = xen_method(env, info, 1, argv, &self);
  uint32_t domid;
  if (h == NULL || !arg_domid(env, argv[0], &domid)) return NULL;
  domain_info_op *op = op_new(env, sizeof *op, h, execute_domain_info, complete_domain_info, release_domain_info);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->single = true;
  return op_queue(env, self, &op->base, "xc_domain_getinfolist");
}

// ---------------------------------------------------------------------------------------------
// p2m size

typedef struct {
  xen_op base;
  uint32_t domid;
  xen_pfn_t gpfns;
} nr_gpfns_op;

static void execute_nr_gpfns(xen_op *base) {
  nr_gpfns_op *op = (nr_gpfns_op *)base;
  if (xc_domain_nr_gpfns(base->xen->xch, op->domid, &op->gpfns) < 0)
    op_fail(base, errno, "xc_domain_nr_gpfns(domain %u)", op->domid);
}

static napi_status complete_nr_gpfns(napi_env env, xen_op *base, napi_value *result) {
  return napi_create_double(env, (double)((nr_gpfns_op *)base)->gpfns, result);
}

napi_value method_nr_gpfns(napi_env env, napi_callback_info info) {
  napi_value self, argv[1];
  xen_handle *h = xen_method(env, info, 1, argv, &self);
  uint32_t domid;
  if (h == NULL || !arg_domid(env, argv[0], &domid)) return NULL;
  nr_gpfns_op *op = op_new(env, sizeof *op, h, execute_nr_gpfns, complete_nr_gpfns, NULL);
  if (op == NULL) return NULL;
  op->domid = domid;
  return op_queue(env, self, &op->base, "xc_domain_nr_gpfns");
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

typedef enum { LIFECYCLE_PAUSE, LIFECYCLE_UNPAUSE, LIFECYCLE_DESTROY, LIFECYCLE_RESUME, LIFECYCLE_SHUTDOWN_SUSPEND } lifecycle_kind;

typedef struct {
  xen_op base;
  uint32_t domid;
  lifecycle_kind kind;
  bool fast;
} lifecycle_op;

static void execute_lifecycle(xen_op *base) {
  lifecycle_op *op = (lifecycle_op *)base;
  xc_interface *xch = base->xen->xch;
  switch (op->kind) {
    case LIFECYCLE_PAUSE:
      if (xc_domain_pause(xch, op->domid) != 0) op_fail(base, errno, "xc_domain_pause(domain %u)", op->domid);
      break;
    case LIFECYCLE_UNPAUSE:
      if (xc_domain_unpause(xch, op->domid) != 0) op_fail(base, errno, "xc_domain_unpause(domain %u)", op->domid);
      break;
    case LIFECYCLE_DESTROY:
      if (xc_domain_destroy(xch, op->domid) != 0) op_fail(base, errno, "xc_domain_destroy(domain %u)", op->domid);
      break;
    case LIFECYCLE_SHUTDOWN_SUSPEND:
      // libxl's suspend of an HVM/PVH guest without PV control (no HVM_PARAM_CALLBACK_IRQ).
      if (xc_domain_shutdown(xch, op->domid, SHUTDOWN_suspend) != 0)
        op_fail(base, errno, "xc_domain_shutdown(domain %u, SHUTDOWN_suspend)", op->domid);
      break;
    case LIFECYCLE_RESUME:
      // fast=1: the guest's suspend hypercall returns 1 ("cancelled") and it carries on in place.
      if (xc_domain_resume(xch, op->domid, op->fast ? 1 : 0) != 0)
        op_fail(base, errno, "xc_domain_resume(domain %u, fast=%d)", op->domid, op->fast ? 1 : 0);
      break;
  }
}

static napi_value queue_lifecycle(napi_env env, napi_callback_info info, lifecycle_kind kind, const char *name) {
  napi_value self, argv[2];
  xen_handle *h = xen_method(env, info, 2, argv, &self);
  uint32_t domid;
  bool fast = false;
  if (h == NULL || !arg_domid(env, argv[0], &domid)) return NULL;
  if (kind == LIFECYCLE_RESUME && !arg_bool(env, argv[1], "fast", &fast)) return NULL;
  lifecycle_op *op = op_new(env, sizeof *op, h, execute_lifecycle, complete_undefined, NULL);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->kind = kind;
  op->fast = fast;
  return op_queue(env, self, &op->base, name);
}

napi_value method_pause(napi_env env, napi_callback_info info) {
  return queue_lifecycle(env, info, LIFECYCLE_PAUSE, "xc_domain_pause");
}

napi_value method_unpause(napi_env env, napi_callback_info info) {
  return queue_lifecycle(env, info, LIFECYCLE_UNPAUSE, "xc_domain_unpause");
}

napi_value method_destroy(napi_env env, napi_callback_info info) {
  return queue_lifecycle(env, info, LIFECYCLE_DESTROY, "xc_domain_destroy");
}

napi_value method_resume(napi_env env, napi_callback_info info) {
  return queue_lifecycle(env, info, LIFECYCLE_RESUME, "xc_domain_resume");
}

napi_value method_shutdown_suspend(napi_env env, napi_callback_info info) {
  return queue_lifecycle(env, info, LIFECYCLE_SHUTDOWN_SUSPEND, "xc_domain_shutdown");
}
