// ferry_xen.node: the native half of @ferry/xen-driver. One class, XenInterface, holding a
// libxenctrl interface, a libxenforeignmemory handle and a libxenstore connection; its methods
// are thin wrappers of libxen calls (see ops.h), and all policy lives in TypeScript.
//
//   new XenInterface(onWatchEvent: (path, token, error?) => void)   throws outside a Xen dom0
//   close()                                                           synchronous; idempotent
//
// Module constants: domctlInterfaceVersion (XEN_DOMCTL_INTERFACE_VERSION of the headers it was
// built with; the running hypervisor must speak the same one).

#include <errno.h>
#include <stdlib.h>

#include "args.h"
#include "errors.h"
#include "ops.h"
#include "xen_handle.h"

static napi_value construct(napi_env env, napi_callback_info info) {
  napi_value new_target, this_arg, argv[1];
  size_t argc = 1;
  if (napi_get_new_target(env, info, &new_target) != napi_ok || new_target == NULL)
    return throw_invalid(env, "XenInterface must be called with new");
  if (napi_get_cb_info(env, info, &argc, argv, &this_arg, NULL) != napi_ok)
    return throw_napi(env, napi_generic_failure, "napi_get_cb_info");
  napi_valuetype type = napi_undefined;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function)
    return throw_invalid(env, "onWatchEvent must be a function");

  xen_handle *h = xen_handle_open(env);
  if (h == NULL) return NULL;
  napi_value resource_name;
  napi_status s = napi_create_reference(env, argv[0], 1, &h->on_watch_event);
  if (s == napi_ok) s = napi_create_string_utf8(env, "XenstoreWatchEvent", NAPI_AUTO_LENGTH, &resource_name);
  if (s == napi_ok) s = napi_async_init(env, NULL, resource_name, &h->watch_async);
  if (s == napi_ok) s = napi_wrap(env, this_arg, h, xen_handle_finalize, NULL, NULL);
  if (s != napi_ok) {
    h->closing = true;
    xen_handle_maybe_release(h);
    free(h);  // never wrapped: no finalizer will run
    return throw_napi(env, s, "XenInterface");
  }
  return this_arg;
}

static napi_value method_close(napi_env env, napi_callback_info info) {
  napi_value this_arg;
  size_t argc = 0;
  if (napi_get_cb_info(env, info, &argc, NULL, &this_arg, NULL) != napi_ok)
    return throw_napi(env, napi_generic_failure, "napi_get_cb_info");
  xen_handle *h = NULL;
  if (napi_unwrap(env, this_arg, (void **)&h) != napi_ok || h == NULL) return throw_invalid(env, "not a XenInterface");
  if (!h->closing) {
    h->closing = true;
    xen_handle_maybe_release(h);
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

#define METHOD(js_name, fn) {js_name, NULL, fn, NULL, NULL, NULL, napi_default_method, NULL}

static napi_value init(napi_env env, napi_value exports) {
  static const napi_property_descriptor methods[] = {
      METHOD("close", method_close),
      METHOD("hostInfo", method_host_info),
      METHOD("domainList", method_domain_list),
      METHOD("domainInfo", method_domain_info),
      METHOD("nrGpfns", method_nr_gpfns),
      METHOD("pause", method_pause),
      METHOD("unpause", method_unpause),
      METHOD("shutdownSuspend", method_shutdown_suspend),
      METHOD("destroy", method_destroy),
      METHOD("resume", method_resume),
      METHOD("shadowControl", method_shadow_control),
      METHOD("logDirtyControl", method_logdirty_control),
      METHOD("pageTypes", method_page_types),
      METHOD("readPages", method_read_pages),
      METHOD("writePages", method_write_pages),
      METHOD("hvmContext", method_hvm_context),
      METHOD("setHvmContext", method_set_hvm_context),
      METHOD("hvmParams", method_hvm_params),
      METHOD("setHvmParams", method_set_hvm_params),
      METHOD("tscInfo", method_tsc_info),
      METHOD("setTscInfo", method_set_tsc_info),
      METHOD("cpuPolicy", method_cpu_policy),
      METHOD("setCpuPolicy", method_set_cpu_policy),
      METHOD("xsRead", method_xs_read),
      METHOD("xsWrite", method_xs_write),
      METHOD("xsRemove", method_xs_remove),
      METHOD("xsResumeDomain", method_xs_resume_domain),
      METHOD("xsWatch", method_xs_watch),
      METHOD("xsUnwatch", method_xs_unwatch),
  };
  napi_value cls, version;
  napi_status s = napi_define_class(env, "XenInterface", NAPI_AUTO_LENGTH, construct, NULL,
                                    sizeof methods / sizeof methods[0], methods, &cls);
  if (s == napi_ok) s = napi_set_named_property(env, exports, "XenInterface", cls);
  if (s == napi_ok) s = napi_create_uint32(env, XEN_DOMCTL_INTERFACE_VERSION, &version);
  if (s == napi_ok) s = napi_set_named_property(env, exports, "domctlInterfaceVersion", version);
  if (s != napi_ok) return throw_napi(env, s, "initialising ferry_xen");
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
