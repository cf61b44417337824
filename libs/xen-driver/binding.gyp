{
  "targets": [
    {
      "target_name": "ferry_xen",
      "sources": [
        "src/native/addon.c",
        "src/native/args.c",
        "src/native/async_op.c",
        "src/native/capture_logger.c",
        "src/native/context_ops.c",
        "src/native/domain_ops.c",
        "src/native/errors.c",
        "src/native/host_ops.c",
        "src/native/logdirty_ops.c",
        "src/native/page_ops.c",
        "src/native/xen_handle.c",
        "src/native/xenstore_ops.c"
      ],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2"],
      "libraries": ["-lxenctrl", "-lxenguest", "-lxenforeignmemory", "-lxenstore", "-lxentoollog"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
