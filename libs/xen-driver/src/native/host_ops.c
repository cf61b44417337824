// hostInfo(): the hypervisor's version and the host's memory (xc_version, xc_physinfo).

#include <errno.h>
#include <string.h>

#include "async_op.h"
#include "ops.h"
#include "result.h"

typedef struct {
  xen_op base;
  int version;
  xen_extraversion_t extra;
  xc_physinfo_t physinfo;
} host_info_op;

static void execute_host_info(xen_op *base) {
  host_info_op *op = (host_info_op *)base;
  xc_interface *xch = base->xen->xch;
  op->version = xc_version(xch, XENVER_version, NULL);
  if (op->version < 0) {
    op_fail(base, errno, "xc_version(XENVER_version)");
    return;
  }
  memset(op->extra, 0, sizeof op->extra);
  if (xc_version(xch, XENVER_extraversion, &op->extra) < 0) {
    op_fail(base, errno, "xc_version(XENVER_extraversion)");
    return;
  }
  op->extra[sizeof op->extra - 1] = '\0';
  if (xc_physinfo(xch, &op->physinfo) != 0) {
    op_fail(base, errno, "xc_physinfo");
    return;
  }
}

static napi_status complete_host_info(napi_env env, xen_op *base, napi_value *result) {
  host_info_op *op = (host_info_op *)base;
  const xc_physinfo_t *p = &op->physinfo;
  napi_value o;
  napi_status s = napi_create_object(env, &o);
  if (s == napi_ok) s = set_number(env, o, "xenMajor", (unsigned)op->version >> 16);
  if (s == napi_ok) s = set_number(env, o, "xenMinor", (unsigned)op->version & 0xffff);
  if (s == napi_ok) s = set_string(env, o, "xenExtra", op->extra);
  if (s == napi_ok) s = set_number(env, o, "totalPages", (double)p->total_pages);
  if (s == napi_ok) s = set_number(env, o, "freePages", (double)p->free_pages);
  if (s == napi_ok) s = set_number(env, o, "scrubPages", (double)p->scrub_pages);
  if (s == napi_ok) s = set_number(env, o, "outstandingPages", (double)p->outstanding_pages);
  if (s == napi_ok) s = set_number(env, o, "nrCpus", p->nr_cpus);
  if (s == napi_ok) s = set_number(env, o, "cpuKhz", p->cpu_khz);
  *result = o;
  return s;
}

napi_value method_host_info(napi_env env, napi_callback_info info) {
  napi_value self;
  xen_handle *h = xen_method(env, info, 0, NULL, &self);
  if (h == NULL) return NULL;
  host_info_op *op = op_new(env, sizeof *op, h, execute_host_info, complete_host_info, NULL);
  if (op == NULL) return NULL;
  return op_queue(env, self, &op->base, "xc_physinfo");
}
