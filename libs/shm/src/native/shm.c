// POSIX shared memory for Node, the way xenforeignmemory_map hands guest frames to dom0: named
// objects (shm_open + ftruncate, sparse: only touched pages cost memory), mapped MAP_SHARED as
// external ArrayBuffers, holes punched to give pages back, unlink, close.
//
// Every system call's status is checked; failures throw an Error whose `code` is the errno name
// (ENOENT, EEXIST, ...) and whose message names the call, the object and the reason.
//
// A mapping can end two ways: explicitly (unmap: detach the ArrayBuffer so JS can no longer touch
// the memory, then munmap) or when the ArrayBuffer is garbage-collected (the finalizer). A registry
// of live mappings, shared by all threads of the process, makes sure exactly one of them munmaps.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// Node 20 cannot create an ArrayBuffer larger than 4 GiB (buffer.constants.MAX_LENGTH).
#define MAX_MAPPING_BYTES (((int64_t)1) << 32)

// ---------------------------------------------------------------------------------------------
// Errors

static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#endif
  switch (err) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case ENOSPC: return "ENOSPC";
    case EBADF: return "EBADF";
    case EMFILE: return "EMFILE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return "EUNKNOWN";
  }
}

// Throws `<what>: <strerror> (<ERRNAME>)` with error.code = ERRNAME. Returns NULL for the caller.
static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[512];
  snprintf(message, sizeof message, "%s: %s (%s)", what, strerror(err), errno_name(err));
  napi_throw_error(env, errno_name(err), message);
  return NULL;
}

static napi_value throw_invalid(napi_env env, const char *message) {
  napi_throw_type_error(env, "EINVAL", message);
  return NULL;
}

// A failed napi_* call leaves an exception pending or not; make sure the caller sees one.
static napi_value throw_napi(napi_env env, napi_status status, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char message[512];
    snprintf(message, sizeof message, "%s failed: %s (napi_status %d)", what,
             info && info->error_message ? info->error_message : "unknown error", (int)status);
    napi_throw_error(env, "ENAPI", message);
  }
  return NULL;
}

#define NAPI_CALL(env, call, what)                                   \
  do {                                                               \
    napi_status status_ = (call);                                    \
    if (status_ != napi_ok) return throw_napi((env), status_, what); \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Argument helpers

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_napi(env, napi_generic_failure, "napi_get_cb_info");
    return false;
  }
  if (argc < want) {
    char message[128];
    snprintf(message, sizeof message, "expected %zu arguments, got %zu", want, argc);
    throw_invalid(env, message);
    return false;
  }
  return true;
}

// A non-negative integer that a double holds exactly (offsets and sizes up to 2^53).
static bool get_size(napi_env env, napi_value value, const char *what, int64_t *out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok || !isfinite(d) || d < 0 ||
      d != floor(d) || d > 9007199254740991.0) {
    char message[160];
    snprintf(message, sizeof message, "%s must be a non-negative integer", what);
    throw_invalid(env, message);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool get_fd(napi_env env, napi_value value, int *out) {
  int64_t fd;
  if (!get_size(env, value, "fd", &fd)) return false;
  if (fd > INT_MAX) {
    throw_invalid(env, "fd out of range");
    return false;
  }
  *out = (int)fd;
  return true;
}

static bool get_bool(napi_env env, napi_value value, const char *what, bool *out) {
  if (napi_get_value_bool(env, value, out) != napi_ok) {
    char message[160];
    snprintf(message, sizeof message, "%s must be a boolean", what);
    throw_invalid(env, message);
    return false;
  }
  return true;
}

// POSIX shm names are "/name": one leading slash, no other, at most NAME_MAX bytes after it.
static bool get_shm_name(napi_env env, napi_value value, char *buf, size_t bufsize) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, buf, bufsize, &len) != napi_ok) {
    throw_invalid(env, "name must be a string");
    return false;
  }
  if (len + 1 >= bufsize || len < 2 || buf[0] != '/' || strchr(buf + 1, '/') != NULL) {
    char message[400];
    snprintf(message, sizeof message,
             "invalid shared memory name \"%.255s\": it must be \"/\" followed by 1..%d bytes "
             "without another \"/\"",
             buf, NAME_MAX);
    throw_invalid(env, message);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Registry of live mappings (process-wide: worker threads share the address space)
//
// Each mapping has a record that is the finalizer's hint. unmap() munmaps and marks the record dead
// (the address may then be reused by a new mapping); the finalizer only munmaps a record that is
// still live and always frees it. Lookups by address consider live records only, which are unique.

typedef struct mapping {
  void *addr;
  size_t length;
  bool live;
  struct mapping *next;
} mapping;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mapping *registry = NULL;

static void registry_add(mapping *m) {
  pthread_mutex_lock(&registry_lock);
  m->next = registry;
  registry = m;
  pthread_mutex_unlock(&registry_lock);
}

// Unlinks m from the registry if it is there.
static void registry_remove(mapping *m) {
  pthread_mutex_lock(&registry_lock);
  for (mapping **link = &registry; *link != NULL; link = &(*link)->next) {
    if (*link == m) {
      *link = m->next;
      break;
    }
  }
  pthread_mutex_unlock(&registry_lock);
}

// The live mapping at addr, unlinked from the registry, or NULL.
static mapping *registry_take(void *addr) {
  pthread_mutex_lock(&registry_lock);
  mapping *found = NULL;
  for (mapping **link = &registry; *link != NULL; link = &(*link)->next) {
    if ((*link)->addr == addr) {
      found = *link;
      *link = found->next;
      break;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  return found;
}

// Runs on the thread that owns the ArrayBuffer, as does unmap() for it: no race on `live`.
static void finalize_mapping(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping *m = hint;
  if (m->live) {
    registry_remove(m);
    munmap(m->addr, m->length);
  }
  free(m);
}

// ---------------------------------------------------------------------------------------------
// Exports

// create(name, sizeBytes) -> fd. Fails with EEXIST if the object exists.
static napi_value Create(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[NAME_MAX + 2];
  int64_t size;
  if (!get_args(env, info, 2, argv) || !get_shm_name(env, argv[0], name, sizeof name) ||
      !get_size(env, argv[1], "size", &size))
    return NULL;
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    char what[400];
    snprintf(what, sizeof what, "shm_open(\"%s\", create) failed", name);
    return throw_errno(env, what, errno);
  }
  if (ftruncate(fd, (off_t)size) != 0) {
    int err = errno;
    close(fd);
    shm_unlink(name);
    char what[400];
    snprintf(what, sizeof what, "ftruncate(\"%s\", %lld bytes) failed", name, (long long)size);
    return throw_errno(env, what, err);
  }
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, fd, &result), "napi_create_int32");
  return result;
}

// open(name, writable) -> fd of an existing object.
static napi_value Open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[NAME_MAX + 2];
  bool writable;
  if (!get_args(env, info, 2, argv) || !get_shm_name(env, argv[0], name, sizeof name) ||
      !get_bool(env, argv[1], "writable", &writable))
    return NULL;
  int fd = shm_open(name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
  if (fd < 0) {
    char what[400];
    snprintf(what, sizeof what, "shm_open(\"%s\", %s) failed", name, writable ? "read-write" : "read-only");
    return throw_errno(env, what, errno);
  }
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, fd, &result), "napi_create_int32");
  return result;
}

static napi_value stat_field(napi_env env, napi_callback_info info, bool allocated) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) return throw_errno(env, "fstat of a shared memory object failed", errno);
  napi_value result;
  double value = allocated ? (double)st.st_blocks * 512.0 : (double)st.st_size;
  NAPI_CALL(env, napi_create_double(env, value, &result), "napi_create_double");
  return result;
}

// size(fd) -> bytes (st_size).
static napi_value Size(napi_env env, napi_callback_info info) { return stat_field(env, info, false); }

// allocatedBytes(fd) -> bytes of memory really backing the object (st_blocks * 512).
static napi_value AllocatedBytes(napi_env env, napi_callback_info info) { return stat_field(env, info, true); }

// map(fd, offset, length, writable) -> ArrayBuffer over [offset, offset + length) of the object.
static napi_value Map(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  int64_t offset, length;
  bool writable;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &fd) ||
      !get_size(env, argv[1], "offset", &offset) || !get_size(env, argv[2], "length", &length) ||
      !get_bool(env, argv[3], "writable", &writable))
    return NULL;
  long page = sysconf(_SC_PAGESIZE);
  if (offset % page != 0) return throw_invalid(env, "map: offset must be a multiple of the page size");
  if (length == 0) return throw_invalid(env, "map: length must be at least 1 byte");
  if (length > MAX_MAPPING_BYTES)
    return throw_invalid(env, "map: length exceeds 4 GiB, the largest ArrayBuffer Node can hold");

  void *addr = mmap(NULL, (size_t)length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
                    (off_t)offset);
  if (addr == MAP_FAILED) {
    char what[200];
    snprintf(what, sizeof what, "mmap(%lld bytes at offset %lld, %s) failed", (long long)length,
             (long long)offset, writable ? "read-write" : "read-only");
    return throw_errno(env, what, errno);
  }
  mapping *m = malloc(sizeof *m);
  if (m == NULL) {
    munmap(addr, (size_t)length);
    return throw_errno(env, "map: out of memory for the mapping record", ENOMEM);
  }
  m->addr = addr;
  m->length = (size_t)length;
  m->live = true;
  registry_add(m);

  napi_value buffer;
  napi_status status =
      napi_create_external_arraybuffer(env, addr, (size_t)length, finalize_mapping, m, &buffer);
  if (status != napi_ok) {
    // Not handed to JS: undo here. (The finalizer is not called for a failed creation.)
    registry_remove(m);
    munmap(m->addr, m->length);
    free(m);
    return throw_napi(env, status, "napi_create_external_arraybuffer");
  }
  return buffer;
}

// unmap(arrayBuffer): detach it (JS sees a zero-length buffer from now on) and munmap at once.
static napi_value Unmap(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  bool is_arraybuffer = false;
  NAPI_CALL(env, napi_is_arraybuffer(env, argv[0], &is_arraybuffer), "napi_is_arraybuffer");
  if (!is_arraybuffer) return throw_invalid(env, "unmap: argument must be an ArrayBuffer returned by map()");
  void *data = NULL;
  size_t length = 0;
  NAPI_CALL(env, napi_get_arraybuffer_info(env, argv[0], &data, &length), "napi_get_arraybuffer_info");
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined), "napi_get_undefined");
  if (length == 0) return undefined;  // already detached: unmapping twice is harmless
  mapping *m = registry_take(data);
  if (m == NULL) return throw_invalid(env, "unmap: this ArrayBuffer is not a live shared memory mapping");
  napi_status status = napi_detach_arraybuffer(env, argv[0]);
  if (status != napi_ok) {
    registry_add(m);  // still mapped and still reachable from JS: leave it to the finalizer
    return throw_napi(env, status, "napi_detach_arraybuffer");
  }
  // The record stays allocated for the finalizer, which frees it.
  m->live = false;
  int rc = munmap(m->addr, m->length);
  int err = errno;
  if (rc != 0) return throw_errno(env, "munmap failed", err);
  return undefined;
}

// punchHole(fd, offset, length): the range reads back as zeros and its memory is freed.
static napi_value PunchHole(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t offset, length;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_size(env, argv[1], "offset", &offset) || !get_size(env, argv[2], "length", &length))
    return NULL;
  if (length > 0 &&
      fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length) != 0) {
    char what[200];
    snprintf(what, sizeof what, "fallocate(PUNCH_HOLE, %lld bytes at offset %lld) failed",
             (long long)length, (long long)offset);
    return throw_errno(env, what, errno);
  }
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined), "napi_get_undefined");
  return undefined;
}

// allocate(fd, offset, length): back the range with memory now (fallocate mode 0), one call for
// what would otherwise be a page fault per page at first write.
static napi_value Allocate(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  int64_t offset, length;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_size(env, argv[1], "offset", &offset) || !get_size(env, argv[2], "length", &length))
    return NULL;
  if (length > 0 && fallocate(fd, 0, (off_t)offset, (off_t)length) != 0) {
    char what[200];
    snprintf(what, sizeof what, "fallocate(%lld bytes at offset %lld) failed", (long long)length,
             (long long)offset);
    return throw_errno(env, what, errno);
  }
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined), "napi_get_undefined");
  return undefined;
}

// close(fd). Mappings stay valid after the descriptor is closed (mmap holds its own reference).
static napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (close(fd) != 0) return throw_errno(env, "close of a shared memory object failed", errno);
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined), "napi_get_undefined");
  return undefined;
}

// unlink(name): the name goes away; memory is freed once the last mapping and descriptor are gone.
static napi_value Unlink(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[NAME_MAX + 2];
  if (!get_args(env, info, 1, argv) || !get_shm_name(env, argv[0], name, sizeof name)) return NULL;
  if (shm_unlink(name) != 0) {
    char what[400];
    snprintf(what, sizeof what, "shm_unlink(\"%s\") failed", name);
    return throw_errno(env, what, errno);
  }
  napi_value undefined;
  NAPI_CALL(env, napi_get_undefined(env, &undefined), "napi_get_undefined");
  return undefined;
}

// liveMappings() -> number of mappings not yet unmapped in this process (for leak checks).
static napi_value LiveMappings(napi_env env, napi_callback_info info) {
  (void)info;
  uint32_t count = 0;
  pthread_mutex_lock(&registry_lock);
  for (mapping *m = registry; m != NULL; m = m->next) count += m->live ? 1 : 0;
  pthread_mutex_unlock(&registry_lock);
  napi_value result;
  NAPI_CALL(env, napi_create_uint32(env, count, &result), "napi_create_uint32");
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"create", NULL, Create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, Open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"size", NULL, Size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"allocatedBytes", NULL, AllocatedBytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"map", NULL, Map, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmap", NULL, Unmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"punchHole", NULL, PunchHole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"allocate", NULL, Allocate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unlink", NULL, Unlink, NULL, NULL, NULL, napi_enumerable, NULL},
      {"liveMappings", NULL, LiveMappings, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
    return throw_napi(env, napi_generic_failure, "napi_define_properties");
  return exports;
}
