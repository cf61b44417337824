// The state a restore needs besides memory (xen.md §2.2, HVM order: CPU policy, TSC_INFO,
// HVM_PARAMS, HVM_CONTEXT): the HVM context blob (all vCPUs, LAPICs, timers...), HVM params, TSC
// info and the CPUID/MSR policy, read from a paused or suspended domain and written into a paused one.

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xenctrl.h>  // before xenguest.h, which needs its types
#include <xenguest.h>

#include "args.h"
#include "async_op.h"
#include "errors.h"
#include "ops.h"
#include "result.h"

// ---------------------------------------------------------------------------------------------
// hvmContext(domid) → Buffer; setHvmContext(domid, context: Uint8Array)

typedef struct {
  xen_op base;
  uint32_t domid;
  uint8_t *context;  // get: malloc'd; set: copied
  uint32_t length;
} hvm_context_op;

static void execute_hvm_context(xen_op *base) {
  hvm_context_op *op = (hvm_context_op *)base;
  xc_interface *xch = base->xen->xch;
  int size = xc_domain_hvm_getcontext(xch, op->domid, NULL, 0);  // NULL buffer: the size
  if (size < 0) {
    op_fail(base, errno, "xc_domain_hvm_getcontext(domain %u, size)", op->domid);
    return;
  }
  op->context = malloc(size > 0 ? (size_t)size : 1);
  if (op->context == NULL) {
    op_fail(base, ENOMEM, "xc_domain_hvm_getcontext(domain %u): allocating %d bytes", op->domid, size);
    return;
  }
  int length = xc_domain_hvm_getcontext(xch, op->domid, op->context, (uint32_t)size);
  if (length < 0) {
    op_fail(base, errno, "xc_domain_hvm_getcontext(domain %u)", op->domid);
    return;
  }
  op->length = (uint32_t)length;
}

static napi_status complete_hvm_context(napi_env env, xen_op *base, napi_value *result) {
  hvm_context_op *op = (hvm_context_op *)base;
  return napi_create_buffer_copy(env, op->length, op->context, NULL, result);
}

static void execute_set_hvm_context(xen_op *base) {
  hvm_context_op *op = (hvm_context_op *)base;
  if (xc_domain_hvm_setcontext(base->xen->xch, op->domid, op->context, op->length) != 0)
    op_fail(base, errno, "xc_domain_hvm_setcontext(domain %u, %u bytes)", op->domid, op->length);
}

static void release_hvm_context(xen_op *base) { free(((hvm_context_op *)base)->context); }

napi_value method_hvm_context(napi_env env, napi_callback_info info) {
  napi_value self, argv[1];
  xen_handle *h = xen_method(env, info, 1, argv, &self);
  uint32_t domid;
  if (h == NULL || !arg_domid(env, argv[0], &domid)) return NULL;
  hvm_context_op *op = op_new(env, sizeof *op, h, execute_hvm_context, complete_hvm_context, release_hvm_context);
  if (op == NULL) return NULL;
  op->domid = domid;
  return op_queue(env, self, &op->base, "xc_domain_hvm_getcontext");
}

napi_value method_set_hvm_context(napi_env env, napi_callback_info info) {
  napi_value self, argv[2];
  xen_handle *h = xen_method(env, info, 2, argv, &self);
  uint32_t domid;
  void *context;
  size_t length;
  if (h == NULL || !arg_domid(env, argv[0], &domid) ||
      !arg_typed_array(env, argv[1], "context", napi_uint8_array, &context, &length))
    return NULL;
  if (length > UINT32_MAX) return throw_invalid(env, "context is larger than 4 GiB");
  hvm_context_op *op = op_new(env, sizeof *op, h, execute_set_hvm_context, complete_undefined, release_hvm_context);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->length = (uint32_t)length;
  op->context = malloc(length > 0 ? length : 1);
  if (op->context == NULL) {
    op_discard(env, &op->base);
    return throw_errno(env, "allocating an HVM context", ENOMEM, NULL);
  }
  memcpy(op->context, context, length);
  return op_queue(env, self, &op->base, "xc_domain_hvm_setcontext");
}

// ---------------------------------------------------------------------------------------------
// hvmParams(domid, indices: Uint32Array) → BigUint64Array; setHvmParams(domid, indices, values)

typedef struct {
  xen_op base;
  uint32_t domid;
  size_t count;
  uint32_t *indices;
  uint64_t *values;
} hvm_params_op;

static void execute_hvm_params(xen_op *base) {
  hvm_params_op *op = (hvm_params_op *)base;
  for (size_t i = 0; i < op->count; i++) {
    if (xc_hvm_param_get(base->xen->xch, op->domid, op->indices[i], &op->values[i]) != 0) {
      op_fail(base, errno, "xc_hvm_param_get(domain %u, param %u)", op->domid, op->indices[i]);
      return;
    }
  }
}

static void execute_set_hvm_params(xen_op *base) {
  hvm_params_op *op = (hvm_params_op *)base;
  for (size_t i = 0; i < op->count; i++) {
    if (xc_hvm_param_set(base->xen->xch, op->domid, op->indices[i], op->values[i]) != 0) {
      op_fail(base, errno, "xc_hvm_param_set(domain %u, param %u)", op->domid, op->indices[i]);
      return;
    }
  }
}

static napi_status complete_hvm_params(napi_env env, xen_op *base, napi_value *result) {
  hvm_params_op *op = (hvm_params_op *)base;
  void *data;
  napi_value buffer;
  napi_status s = napi_create_arraybuffer(env, op->count * sizeof(uint64_t), &data, &buffer);
  if (s != napi_ok) return s;
  memcpy(data, op->values, op->count * sizeof(uint64_t));
  return napi_create_typedarray(env, napi_biguint64_array, op->count, buffer, 0, result);
}

static void release_hvm_params(xen_op *base) {
  hvm_params_op *op = (hvm_params_op *)base;
  free(op->indices);
  free(op->values);
}

static napi_value queue_hvm_params(napi_env env, napi_callback_info info, bool set) {
  napi_value self, argv[3];
  xen_handle *h = xen_method(env, info, 3, argv, &self);
  uint32_t domid;
  void *indices, *values = NULL;
  size_t count, value_count = 0;
  if (h == NULL || !arg_domid(env, argv[0], &domid) ||
      !arg_typed_array(env, argv[1], "indices", napi_uint32_array, &indices, &count))
    return NULL;
  if (set) {
    if (!arg_typed_array(env, argv[2], "values", napi_biguint64_array, &values, &value_count)) return NULL;
    if (value_count != count) return throw_invalid(env, "values must have one entry per index");
  }
  hvm_params_op *op = set ? op_new(env, sizeof *op, h, execute_set_hvm_params, complete_undefined, release_hvm_params)
                          : op_new(env, sizeof *op, h, execute_hvm_params, complete_hvm_params, release_hvm_params);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->count = count;
  op->indices = malloc((count > 0 ? count : 1) * sizeof *op->indices);
  op->values = calloc(count > 0 ? count : 1, sizeof *op->values);
  if (op->indices == NULL || op->values == NULL) {
    op_discard(env, &op->base);
    return throw_errno(env, "allocating HVM params", ENOMEM, NULL);
  }
  memcpy(op->indices, indices, count * sizeof *op->indices);
  if (set) memcpy(op->values, values, count * sizeof *op->values);
  return op_queue(env, self, &op->base, set ? "xc_hvm_param_set" : "xc_hvm_param_get");
}

napi_value method_hvm_params(napi_env env, napi_callback_info info) { return queue_hvm_params(env, info, false); }

napi_value method_set_hvm_params(napi_env env, napi_callback_info info) { return queue_hvm_params(env, info, true); }

// ---------------------------------------------------------------------------------------------
// tscInfo(domid) → { mode, elapsedNsec: bigint, khz, incarnation }
// setTscInfo(domid, mode, elapsedNsec: bigint, khz, incarnation)

typedef struct {
  xen_op base;
  uint32_t domid;
  uint32_t mode;
  uint64_t elapsed_nsec;
  uint32_t khz;
  uint32_t incarnation;
} tsc_op;

static void execute_tsc_info(xen_op *base) {
  tsc_op *op = (tsc_op *)base;
  if (xc_domain_get_tsc_info(base->xen->xch, op->domid, &op->mode, &op->elapsed_nsec, &op->khz, &op->incarnation) != 0)
    op_fail(base, errno, "xc_domain_get_tsc_info(domain %u)", op->domid);
}

static void execute_set_tsc_info(xen_op *base) {
  tsc_op *op = (tsc_op *)base;
  if (xc_domain_set_tsc_info(base->xen->xch, op->domid, op->mode, op->elapsed_nsec, op->khz, op->incarnation) != 0)
    op_fail(base, errno, "xc_domain_set_tsc_info(domain %u)", op->domid);
}

static napi_status complete_tsc_info(napi_env env, xen_op *base, napi_value *result) {
  tsc_op *op = (tsc_op *)base;
  napi_value o;
  napi_status s = napi_create_object(env, &o);
  if (s == napi_ok) s = set_number(env, o, "mode", op->mode);
  if (s == napi_ok) s = set_bigint(env, o, "elapsedNsec", op->elapsed_nsec);
  if (s == napi_ok) s = set_number(env, o, "khz", op->khz);
  if (s == napi_ok) s = set_number(env, o, "incarnation", op->incarnation);
  *result = o;
  return s;
}

napi_value method_tsc_info(napi_env env, napi_callback_info info) {
  napi_value self, argv[1];
  xen_handle *h = xen_method(env, info, 1, argv, &self);
  uint32_t domid;
  if (h == NULL || !arg_domid(env, argv[0], &domid)) return NULL;
  tsc_op *op = op_new(env, sizeof *op, h, execute_tsc_info, complete_tsc_info, NULL);
  if (op == NULL) return NULL;
  op->domid = domid;
  return op_queue(env, self, &op->base, "xc_domain_get_tsc_info");
}

napi_value method_set_tsc_info(napi_env env, napi_callback_info info) {
  napi_value self, argv[5];
  xen_handle *h = xen_method(env, info, 5, argv, &self);
  uint32_t domid, mode, khz, incarnation;
  uint64_t elapsed;
  if (h == NULL || !arg_domid(env, argv[0], &domid) || !arg_u32(env, argv[1], "mode", &mode) ||
      !arg_u64(env, argv[2], "elapsedNsec", &elapsed) || !arg_u32(env, argv[3], "khz", &khz) ||
      !arg_u32(env, argv[4], "incarnation", &incarnation))
    return NULL;
  tsc_op *op = op_new(env, sizeof *op, h, execute_set_tsc_info, complete_undefined, NULL);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->mode = mode;
  op->elapsed_nsec = elapsed;
  op->khz = khz;
  op->incarnation = incarnation;
  return op_queue(env, self, &op->base, "xc_domain_set_tsc_info");
}

// ---------------------------------------------------------------------------------------------
// cpuPolicy(domid) → { leaves: Buffer of xen_cpuid_leaf_t, msrs: Buffer of xen_msr_entry_t }
// setCpuPolicy(domid, leaves, msrs). The serialised arrays are the bodies of the stream's
// X86_CPUID_POLICY and X86_MSR_POLICY records.

typedef struct {
  xen_op base;
  uint32_t domid;
  xen_cpuid_leaf_t *leaves;
  uint32_t nr_leaves;
  xen_msr_entry_t *msrs;
  uint32_t nr_msrs;
} cpu_policy_op;

static void execute_cpu_policy(xen_op *base) {
  cpu_policy_op *op = (cpu_policy_op *)base;
  xc_interface *xch = base->xen->xch;
  if (xc_cpu_policy_get_size(xch, &op->nr_leaves, &op->nr_msrs) != 0) {
    op_fail(base, errno, "xc_cpu_policy_get_size");
    return;
  }
  op->leaves = calloc(op->nr_leaves > 0 ? op->nr_leaves : 1, sizeof *op->leaves);
  op->msrs = calloc(op->nr_msrs > 0 ? op->nr_msrs : 1, sizeof *op->msrs);
  xc_cpu_policy_t *policy = xc_cpu_policy_init();
  if (op->leaves == NULL || op->msrs == NULL || policy == NULL) {
    xc_cpu_policy_destroy(policy);
    op_fail(base, ENOMEM, "reading the CPU policy of domain %u", op->domid);
    return;
  }
  if (xc_cpu_policy_get_domain(xch, op->domid, policy) != 0)
    op_fail(base, errno, "xc_cpu_policy_get_domain(domain %u)", op->domid);
  else if (xc_cpu_policy_serialise(xch, policy, op->leaves, &op->nr_leaves, op->msrs, &op->nr_msrs) != 0)
    op_fail(base, errno, "xc_cpu_policy_serialise(domain %u)", op->domid);
  xc_cpu_policy_destroy(policy);
}

static void execute_set_cpu_policy(xen_op *base) {
  cpu_policy_op *op = (cpu_policy_op *)base;
  uint32_t bad_leaf = ~0u, bad_subleaf = ~0u, bad_msr = ~0u;
  if (xc_set_domain_cpu_policy(base->xen->xch, op->domid, op->nr_leaves, op->leaves, op->nr_msrs, op->msrs, &bad_leaf,
                               &bad_subleaf, &bad_msr) != 0)
    op_fail(base, errno, "xc_set_domain_cpu_policy(domain %u; refused leaf %#x subleaf %#x, msr %#x)", op->domid,
            bad_leaf, bad_subleaf, bad_msr);
}

static napi_status complete_cpu_policy(napi_env env, xen_op *base, napi_value *result) {
  cpu_policy_op *op = (cpu_policy_op *)base;
  napi_value o;
  napi_status s = napi_create_object(env, &o);
  if (s == napi_ok) s = set_bytes(env, o, "leaves", op->leaves, op->nr_leaves * sizeof *op->leaves);
  if (s == napi_ok) s = set_bytes(env, o, "msrs", op->msrs, op->nr_msrs * sizeof *op->msrs);
  *result = o;
  return s;
}

static void release_cpu_policy(xen_op *base) {
  cpu_policy_op *op = (cpu_policy_op *)base;
  free(op->leaves);
  free(op->msrs);
}

napi_value method_cpu_policy(napi_env env, napi_callback_info info) {
  napi_value self, argv[1];
  xen_handle *h = xen_method(env, info, 1, argv, &self);
  uint32_t domid;
  if (h == NULL || !arg_domid(env, argv[0], &domid)) return NULL;
  cpu_policy_op *op = op_new(env, sizeof *op, h, execute_cpu_policy, complete_cpu_policy, release_cpu_policy);
  if (op == NULL) return NULL;
  op->domid = domid;
  return op_queue(env, self, &op->base, "xc_cpu_policy_get_domain");
}

napi_value method_set_cpu_policy(napi_env env, napi_callback_info info) {
  napi_value self, argv[3];
  xen_handle *h = xen_method(env, info, 3, argv, &self);
  uint32_t domid;
  void *leaves, *msrs;
  size_t leaf_bytes, msr_bytes;
  if (h == NULL || !arg_domid(env, argv[0], &domid) ||
      !arg_typed_array(env, argv[1], "leaves", napi_uint8_array, &leaves, &leaf_bytes) ||
      !arg_typed_array(env, argv[2], "msrs", napi_uint8_array, &msrs, &msr_bytes))
    return NULL;
  if (leaf_bytes % sizeof(xen_cpuid_leaf_t) != 0 || msr_bytes % sizeof(xen_msr_entry_t) != 0)
    return throw_invalid(env, "leaves must be whole 24-byte xen_cpuid_leaf_t entries, msrs whole 16-byte xen_msr_entry_t entries");
  cpu_policy_op *op = op_new(env, sizeof *op, h, execute_set_cpu_policy, complete_undefined, release_cpu_policy);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->nr_leaves = (uint32_t)(leaf_bytes / sizeof(xen_cpuid_leaf_t));
  op->nr_msrs = (uint32_t)(msr_bytes / sizeof(xen_msr_entry_t));
  op->leaves = malloc(leaf_bytes > 0 ? leaf_bytes : 1);
  op->msrs = malloc(msr_bytes > 0 ? msr_bytes : 1);
  if (op->leaves == NULL || op->msrs == NULL) {
    op_discard(env, &op->base);
    return throw_errno(env, "allocating a CPU policy", ENOMEM, NULL);
  }
  memcpy(op->leaves, leaves, leaf_bytes);
  memcpy(op->msrs, msrs, msr_bytes);
  return op_queue(env, self, &op->base, "xc_set_domain_cpu_policy");
}
