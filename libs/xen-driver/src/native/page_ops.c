// Guest pages: their types (getpageframeinfo3, which tells populated frames from holes), reading
// a batch through a foreign mapping, and populating + writing a batch (xen.md §1.6, §2.1).

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "args.h"
#include "async_op.h"
#include "errors.h"
#include "ops.h"

#define PAGE_BYTES 4096u
/** Xen's MAX_BATCH_SIZE: getpageframeinfo3 refuses more than 1024 frames with E2BIG. */
#define MAX_BATCH 1024u

// Exported by libxenctrl.so but declared only in the private xc_private.h (xen.md §6.2). Writes
// each frame's XEN_DOMCTL_PFINFO_* type over its pfn.
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

/** Copies a Uint32Array of pfns into xen_pfn_t (64-bit) entries; NULL with ENOMEM thrown on failure. */
static xen_pfn_t *copy_pfns(napi_env env, const uint32_t *pfns, size_t count) {
  xen_pfn_t *out = malloc((count > 0 ? count : 1) * sizeof *out);
  if (out == NULL) {
    throw_errno(env, "allocating a pfn array", ENOMEM, NULL);
    return NULL;
  }
  for (size_t i = 0; i < count; i++) out[i] = pfns[i];
  return out;
}

// ---------------------------------------------------------------------------------------------
// pageTypes(domid, pfns: Uint32Array) → Buffer: one byte per pfn, the type's top nibble
// (XEN_DOMCTL_PFINFO_* >> 28: 0 NOTAB ... 0xd BROKEN, 0xe XALLOC, 0xf XTAB). Any length; asked
// 1024 at a time.

typedef struct {
  xen_op base;
  uint32_t domid;
  xen_pfn_t *frames;
  size_t count;
  uint8_t *types;
} page_types_op;

static void execute_page_types(xen_op *base) {
  page_types_op *op = (page_types_op *)base;
  for (size_t done = 0; done < op->count; done += MAX_BATCH) {
    unsigned int n = (unsigned int)(op->count - done < MAX_BATCH ? op->count - done : MAX_BATCH);
    if (xc_get_pfn_type_batch(base->xen->xch, op->domid, n, op->frames + done) != 0) {
      op_fail(base, errno, "xc_get_pfn_type_batch(domain %u, %u frames from pfn %#lx)", op->domid, n,
              (unsigned long)op->frames[done]);
      return;
    }
  }
  for (size_t i = 0; i < op->count; i++)
    op->types[i] = (uint8_t)((op->frames[i] & XEN_DOMCTL_PFINFO_LTAB_MASK) >> XEN_DOMCTL_PFINFO_LTAB_SHIFT);
}

static napi_status complete_page_types(napi_env env, xen_op *base, napi_value *result) {
  page_types_op *op = (page_types_op *)base;
  return napi_create_buffer_copy(env, op->count, op->types, NULL, result);
}

static void release_page_types(xen_op *base) {
  page_types_op *op = (page_types_op *)base;
  free(op->frames);
  free(op->types);
}

napi_value method_page_types(napi_env env, napi_callback_info info) {
  napi_value self, argv[2];
  xen_handle *h = xen_method(env, info, 2, argv, &self);
  uint32_t domid;
  void *pfns;
  size_t count;
  if (h == NULL || !arg_domid(env, argv[0], &domid) ||
      !arg_typed_array(env, argv[1], "pfns", napi_uint32_array, &pfns, &count))
    return NULL;
  page_types_op *op = op_new(env, sizeof *op, h, execute_page_types, complete_page_types, release_page_types);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->count = count;
  op->frames = copy_pfns(env, pfns, count);
  op->types = malloc(count > 0 ? count : 1);
  if (op->frames == NULL || op->types == NULL) {
    bool thrown = op->frames == NULL;
    op_discard(env, &op->base);
    return thrown ? NULL : throw_errno(env, "allocating page types", ENOMEM, NULL);
  }
  return op_queue(env, self, &op->base, "xc_get_pfn_type_batch");
}

// ---------------------------------------------------------------------------------------------
// readPages(domid, pfns: Uint32Array, skip: Uint8Array, out: Buffer) → Int32Array errors
// Maps the pfns not marked in `skip` read-only in one xenforeignmemory_map call and copies page i
// to out[i*4096, (i+1)*4096). Skipped and unmappable pages are zero-filled; their error is
// -ENOENT (skipped) or the mapping's own negative errno.

typedef struct {
  xen_op base;
  uint32_t domid;
  size_t count;
  xen_pfn_t *pfns;
  uint8_t *skip;  // copied
  uint8_t *out;   // the kept JavaScript buffer
  int *errors;
} read_pages_op;

static void execute_read_pages(xen_op *base) {
  read_pages_op *op = (read_pages_op *)base;
  xen_pfn_t mapped_pfns[MAX_BATCH];
  int mapped_errors[MAX_BATCH];
  size_t mapped_index[MAX_BATCH];
  size_t n = 0;
  for (size_t i = 0; i < op->count; i++) {
    if (op->skip[i]) {
      op->errors[i] = -ENOENT;
      memset(op->out + i * PAGE_BYTES, 0, PAGE_BYTES);
    } else {
      mapped_pfns[n] = op->pfns[i];
      mapped_index[n++] = i;
    }
  }
  if (n == 0) return;
  uint8_t *mapping = xenforeignmemory_map(base->xen->fmem, op->domid, PROT_READ, n, mapped_pfns, mapped_errors);
  if (mapping == NULL) {
    op_fail(base, errno, "xenforeignmemory_map(domain %u, %zu pages from pfn %#lx, PROT_READ)", op->domid, n,
            (unsigned long)mapped_pfns[0]);
    return;
  }
  for (size_t k = 0; k < n; k++) {
    uint8_t *dest = op->out + mapped_index[k] * PAGE_BYTES;
    op->errors[mapped_index[k]] = mapped_errors[k];
    if (mapped_errors[k] == 0) memcpy(dest, mapping + k * PAGE_BYTES, PAGE_BYTES);
    else memset(dest, 0, PAGE_BYTES);
  }
  if (xenforeignmemory_unmap(base->xen->fmem, mapping, n) != 0)
    op_fail(base, errno, "xenforeignmemory_unmap(domain %u, %zu pages)", op->domid, n);
}

static napi_status complete_read_pages(napi_env env, xen_op *base, napi_value *result) {
  read_pages_op *op = (read_pages_op *)base;
  void *data;
  napi_value buffer;
  napi_status s = napi_create_arraybuffer(env, op->count * sizeof(int32_t), &data, &buffer);
  if (s != napi_ok) return s;
  for (size_t i = 0; i < op->count; i++) ((int32_t *)data)[i] = op->errors[i];
  return napi_create_typedarray(env, napi_int32_array, op->count, buffer, 0, result);
}

static void release_read_pages(xen_op *base) {
  read_pages_op *op = (read_pages_op *)base;
  free(op->pfns);
  free(op->skip);
  free(op->errors);
}

napi_value method_read_pages(napi_env env, napi_callback_info info) {
  napi_value self, argv[4];
  xen_handle *h = xen_method(env, info, 4, argv, &self);
  uint32_t domid;
  void *pfns, *skip, *out;
  size_t count, skip_count, out_bytes;
  if (h == NULL || !arg_domid(env, argv[0], &domid) ||
      !arg_typed_array(env, argv[1], "pfns", napi_uint32_array, &pfns, &count) ||
      !arg_typed_array(env, argv[2], "skip", napi_uint8_array, &skip, &skip_count) ||
      !arg_typed_array(env, argv[3], "out", napi_uint8_array, &out, &out_bytes))
    return NULL;
  if (count > MAX_BATCH) return throw_errno(env, "readPages: more than 1024 pages in one batch", E2BIG, NULL);
  if (skip_count != count) return throw_invalid(env, "skip must have one entry per pfn");
  if (out_bytes < count * PAGE_BYTES) return throw_invalid(env, "out must hold 4096 bytes per pfn");
  read_pages_op *op = op_new(env, sizeof *op, h, execute_read_pages, complete_read_pages, release_read_pages);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->count = count;
  op->out = out;
  op->pfns = copy_pfns(env, pfns, count);
  op->skip = malloc(count > 0 ? count : 1);
  op->errors = calloc(count > 0 ? count : 1, sizeof *op->errors);
  if (op->pfns == NULL || op->skip == NULL || op->errors == NULL) {
    bool thrown = op->pfns == NULL;
    op_discard(env, &op->base);
    return thrown ? NULL : throw_errno(env, "allocating a page batch", ENOMEM, NULL);
  }
  memcpy(op->skip, skip, count);
  if (op_keep(env, &op->base, argv[3]) != napi_ok) {
    op_discard(env, &op->base);
    return throw_napi(env, napi_generic_failure, "keeping the output buffer");
  }
  return op_queue(env, self, &op->base, "xenforeignmemory_map");
}

// ---------------------------------------------------------------------------------------------
// writePages(domid, pfns: Uint32Array, populate: Uint32Array, data: Uint8Array)
// Populates the pfns in `populate` (xc_domain_populate_physmap_exact, order 0), then maps all
// `pfns` read-write and copies page i from data[i*4096, (i+1)*4096). Any page that cannot be
// mapped fails the whole call, naming it.

typedef struct {
  xen_op base;
  uint32_t domid;
  size_t count;
  xen_pfn_t *pfns;
  size_t populate_count;
  xen_pfn_t *populate;
  const uint8_t *data;  // the kept JavaScript buffer
} write_pages_op;

static void execute_write_pages(xen_op *base) {
  write_pages_op *op = (write_pages_op *)base;
  xen_handle *h = base->xen;
  if (op->populate_count > 0 &&
      xc_domain_populate_physmap_exact(h->xch, op->domid, op->populate_count, 0, 0, op->populate) != 0) {
    op_fail(base, errno, "xc_domain_populate_physmap_exact(domain %u, %zu pages)", op->domid, op->populate_count);
    return;
  }
  if (op->count == 0) return;
  int errors[MAX_BATCH];
  uint8_t *mapping = xenforeignmemory_map(h->fmem, op->domid, PROT_READ | PROT_WRITE, op->count, op->pfns, errors);
  if (mapping == NULL) {
    op_fail(base, errno, "xenforeignmemory_map(domain %u, %zu pages, PROT_READ|PROT_WRITE)", op->domid, op->count);
    return;
  }
  for (size_t i = 0; i < op->count; i++) {
    if (errors[i] != 0) {
      op_fail(base, -errors[i], "xenforeignmemory_map(domain %u): pfn %#lx", op->domid, (unsigned long)op->pfns[i]);
      break;
    }
    memcpy(mapping + i * PAGE_BYTES, op->data + i * PAGE_BYTES, PAGE_BYTES);
  }
  if (xenforeignmemory_unmap(h->fmem, mapping, op->count) != 0 && base->err == 0)
    op_fail(base, errno, "xenforeignmemory_unmap(domain %u, %zu pages)", op->domid, op->count);
}

static void release_write_pages(xen_op *base) {
  write_pages_op *op = (write_pages_op *)base;
  free(op->pfns);
  free(op->populate);
}

napi_value method_write_pages(napi_env env, napi_callback_info info) {
  napi_value self, argv[4];
  xen_handle *h = xen_method(env, info, 4, argv, &self);
  uint32_t domid;
  void *pfns, *populate, *data;
  size_t count, populate_count, data_bytes;
  if (h == NULL || !arg_domid(env, argv[0], &domid) ||
      !arg_typed_array(env, argv[1], "pfns", napi_uint32_array, &pfns, &count) ||
      !arg_typed_array(env, argv[2], "populate", napi_uint32_array, &populate, &populate_count) ||
      !arg_typed_array(env, argv[3], "data", napi_uint8_array, &data, &data_bytes))
    return NULL;
  if (count > MAX_BATCH || populate_count > MAX_BATCH)
    return throw_errno(env, "writePages: more than 1024 pages in one batch", E2BIG, NULL);
  if (data_bytes != count * PAGE_BYTES) return throw_invalid(env, "data must hold exactly 4096 bytes per pfn");
  write_pages_op *op = op_new(env, sizeof *op, h, execute_write_pages, complete_undefined, release_write_pages);
  if (op == NULL) return NULL;
  op->domid = domid;
  op->count = count;
  op->populate_count = populate_count;
  op->data = data;
  op->pfns = copy_pfns(env, pfns, count);
  if (op->pfns == NULL) {
    op_discard(env, &op->base);
    return NULL;
  }
  op->populate = copy_pfns(env, populate, populate_count);
  if (op->populate == NULL) {
    op_discard(env, &op->base);
    return NULL;
  }
  if (op_keep(env, &op->base, argv[3]) != napi_ok) {
    op_discard(env, &op->base);
    return throw_napi(env, napi_generic_failure, "keeping the data buffer");
  }
  return op_queue(env, self, &op->base, "xenforeignmemory_map");
}
