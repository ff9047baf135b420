{
  "targets": [
    {
      "target_name": "qga_native",
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/addon.cc",
            "native/common.cc",
            "native/base64.cc",
            "native/base64_avx2.cc",
            "native/file_io.cc",
            "native/io_lane.cc",
            "native/fs_ioctl.cc",
            "native/clock.cc",
            "native/crypt.cc",
            "native/power.cc",
            "native/vsock.cc",
            "native/fd_watch.cc",
            "native/netif.cc",
            "native/json_scan.cc"
          ],
          "libraries": ["-lcrypt"]
        }]
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
      "ldflags": ["-Wl,-z,now", "-Wl,-z,relro", "-Wl,--version-script=<(module_root_dir)/native/exports.map"]
    }
  ]
}
