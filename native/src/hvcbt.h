// Shared by the addon's source files (sparse.cc defines these, unpack.cc adds its functions to the exports).
#pragma once

#include <napi.h>

#include <string>

namespace hvcbt {

// "EINVAL" for EINVAL and so on; unknown numbers map to "E<n>".
std::string ErrnoName(int err);
// Throw (as a pending JS exception) a TypeError with code ERR_INVALID_ARG_VALUE.
void ThrowType(Napi::Env env, const std::string& message);
// unpackChunks and lz4Decode (unpack.cc).
void InitUnpack(Napi::Env env, Napi::Object exports);

}  // namespace hvcbt
