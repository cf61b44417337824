// The methods of XenInterface, one group per file. Each returns a Promise (see async_op.h) unless
// its comment says otherwise; argument errors throw synchronously.
#pragma once

#include <node_api.h>

// host_ops.c
napi_value method_host_info(napi_env env, napi_callback_info info);

// domain_ops.c
napi_value method_domain_list(napi_env env, napi_callback_info info);
napi_value method_domain_info(napi_env env, napi_callback_info info);
napi_value method_nr_gpfns(napi_env env, napi_callback_info info);
napi_value method_pause(napi_env env, napi_callback_info info);
napi_value method_unpause(napi_env env, napi_callback_info info);
napi_value method_shutdown_suspend(napi_env env, napi_callback_info info);
napi_value method_destroy(napi_env env, napi_callback_info info);
napi_value method_resume(napi_env env, napi_callback_info info);

// logdirty_ops.c
napi_value method_shadow_control(napi_env env, napi_callback_info info);
napi_value method_logdirty_control(napi_env env, napi_callback_info info);

// page_ops.c
napi_value method_page_types(napi_env env, napi_callback_info info);
napi_value method_read_pages(napi_env env, napi_callback_info info);
napi_value method_write_pages(napi_env env, napi_callback_info info);

// context_ops.c
napi_value method_hvm_context(napi_env env, napi_callback_info info);
napi_value method_set_hvm_context(napi_env env, napi_callback_info info);
napi_value method_hvm_params(napi_env env, napi_callback_info info);
napi_value method_set_hvm_params(napi_env env, napi_callback_info info);
napi_value method_tsc_info(napi_env env, napi_callback_info info);
napi_value method_set_tsc_info(napi_env env, napi_callback_info info);
napi_value method_cpu_policy(napi_env env, napi_callback_info info);
napi_value method_set_cpu_policy(napi_env env, napi_callback_info info);

// xenstore_ops.c
napi_value method_xs_read(napi_env env, napi_callback_info info);
napi_value method_xs_write(napi_env env, napi_callback_info info);
napi_value method_xs_remove(napi_env env, napi_callback_info info);
napi_value method_xs_resume_domain(napi_env env, napi_callback_info info);
napi_value method_xs_watch(napi_env env, napi_callback_info info);
napi_value method_xs_unwatch(napi_env env, napi_callback_info info);
