# node-gyp build of the optional sparse-file addon (target hvcbt_native).
# Built by build/build-native.mjs during `npm install`; the output lands in native/build/Release/hvcbt_native.node.
# Linux only: the addon uses fallocate(2) modes and lseek(2) SEEK_DATA/SEEK_HOLE. Elsewhere nothing is built and
# src/platform/sparse.ts falls back to portable (slower, non-thin) behaviour.
{
  "targets": [
    {
      "target_name": "hvcbt_native",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["src/sparse.cc", "src/unpack.cc"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
          "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fno-exceptions"]
        }]
      ]
    }
  ]
}
