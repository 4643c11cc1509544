{
  "targets": [
    {
      "target_name": "meshnet_io",
      "sources": ["src/addon.c", "src/frames.c", "src/aead.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing", "-D_FORTIFY_SOURCE=2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
