{
  "targets": [
    {
      "target_name": "ferry_shm",
      "sources": ["src/native/shm.c"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2"],
      "libraries": ["-lrt", "-lpthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
