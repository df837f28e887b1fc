// hvcbt_native: sparse-file primitives on an open file descriptor, for the raw and VHDX layers and the backup
// restore path; page-aligned memory for direct I/O; batched SHA-256. Every function but sha256Batch is synchronous
// (one or a few syscalls that do not move file data) and throws a JS Error with `code` (errno name, e.g.
// "ENOTSUP"), `errno` (the number) and `syscall` on failure.
//
//   extents(fd, offset, length[, maxExtents]) -> Array<[offset, length, isData]>
//       Data/hole map of [offset, offset+length) from lseek(SEEK_DATA/SEEK_HOLE). ENXIO from SEEK_DATA means no
//       data after that point: the rest of the range is a hole (also past end of file). With maxExtents the map
//       may stop early; the caller continues from the end of the last extent.
//   punchHole(fd, offset, length)    fallocate(PUNCH_HOLE | KEEP_SIZE): range reads as zeros, space freed.
//   zeroRange(fd, offset, length)    fallocate(ZERO_RANGE | KEEP_SIZE), else punch-hole when the file system does
//                                    not support ZERO_RANGE. Returns "zero-range" or "punch-hole" ("none" if
//                                    length is 0).
//   allocate(fd, offset, length)     fallocate(0): reserve blocks; extends the file when the range passes its end.
//   sha256Batch(buffers)             Promise of a Buffer holding the SHA-256 of each buffer (32 bytes each, in
//                                    order), computed on the thread pool with Node's own OpenSSL: one job for many
//                                    chunks, reading the caller's memory in place (no copy, unlike webcrypto).
//                                    The caller must not change the buffers until the promise settles.
//   alignedBuffer(size)              a zero-filled Buffer of `size` bytes (1 .. 1 GiB) whose memory starts on a
//                                    4096-byte boundary, as O_DIRECT transfers need; freed when collected.
//   unpackChunks, lz4Decode          restore's chunk unpacking: native/src/unpack.cc.
//
// Offsets and lengths arrive as JS numbers and must be non-negative safe integers (<= 2^53 - 1) whose sum is too.
#include "hvcbt.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/falloc.h>
#include <openssl/evp.h>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

namespace hvcbt {

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

}  // namespace

// Errno names for the errors these syscalls can return (and a few neighbours). Unknown numbers map to "E<n>".
std::string ErrnoName(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ENXIO: return "ENXIO";
    case EOVERFLOW: return "EOVERFLOW";
    case ESPIPE: return "ESPIPE";
    case EFBIG: return "EFBIG";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENODEV: return "ENODEV";
    case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM";
    case EOPNOTSUPP: return "ENOTSUP";  // same value as ENOTSUP on Linux; Node reports it as ENOTSUP
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ETXTBSY: return "ETXTBSY";
    case EROFS: return "EROFS";
    case EISDIR: return "EISDIR";
    case ENOSYS: return "ENOSYS";
    case EAGAIN: return "EAGAIN";
    case EDQUOT: return "EDQUOT";
    default: return "E" + std::to_string(err);
  }
}

// Throw (as a pending JS exception) an Error shaped like Node's system errors.
void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  std::string code = ErrnoName(err);
  Napi::Error e = Napi::Error::New(env, code + ": " + std::strerror(err) + ", " + syscall);
  e.Value().Set("code", Napi::String::New(env, code));
  e.Value().Set("errno", Napi::Number::New(env, -err));
  e.Value().Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

void ThrowType(Napi::Env env, const std::string& message) {
  Napi::TypeError e = Napi::TypeError::New(env, message);
  e.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
  e.ThrowAsJavaScriptException();
}

namespace {

// A file descriptor: an integer in [0, 2^31).
bool ReadFd(const Napi::CallbackInfo& info, size_t index, int* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsNumber()) {
    ThrowType(env, "fd must be a number");
    return false;
  }
  double d = info[index].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 2147483647.0 || std::floor(d) != d) {
    ThrowType(env, "fd must be a non-negative integer");
    return false;
  }
  *out = static_cast<int>(d);
  return true;
}

// An offset or length: a non-negative safe integer.
bool ReadSafeInteger(const Napi::CallbackInfo& info, size_t index, const char* name, off_t* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsNumber()) {
    ThrowType(env, std::string(name) + " must be a number");
    return false;
  }
  double d = info[index].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > kMaxSafeInteger || std::floor(d) != d) {
    ThrowType(env, std::string(name) + " must be a non-negative safe integer");
    return false;
  }
  *out = static_cast<off_t>(d);
  return true;
}

// Reads (fd, offset, length) and checks that offset + length stays a safe integer.
bool ReadRange(const Napi::CallbackInfo& info, int* fd, off_t* offset, off_t* length) {
  if (!ReadFd(info, 0, fd) || !ReadSafeInteger(info, 1, "offset", offset) ||
      !ReadSafeInteger(info, 2, "length", length)) {
    return false;
  }
  if (static_cast<double>(*offset) + static_cast<double>(*length) > kMaxSafeInteger) {
    ThrowType(info.Env(), "offset + length must not exceed Number.MAX_SAFE_INTEGER");
    return false;
  }
  return true;
}

// fallocate, retried on EINTR. Returns 0 or the errno.
int Fallocate(int fd, int mode, off_t offset, off_t length) {
  for (;;) {
    if (fallocate(fd, mode, offset, length) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

void PushExtent(Napi::Env env, Napi::Array& result, off_t start, off_t length, bool data) {
  Napi::Array extent = Napi::Array::New(env, 3);
  extent.Set(0u, Napi::Number::New(env, static_cast<double>(start)));
  extent.Set(1u, Napi::Number::New(env, static_cast<double>(length)));
  extent.Set(2u, Napi::Boolean::New(env, data));
  result.Set(result.Length(), extent);
}

Napi::Value Extents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  off_t offset, length;
  if (!ReadRange(info, &fd, &offset, &length)) return env.Undefined();
  off_t maxExtents = 0;  // 0: no limit
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    if (!ReadSafeInteger(info, 3, "maxExtents", &maxExtents)) return env.Undefined();
    if (maxExtents == 0) {
      ThrowType(env, "maxExtents must be at least 1");
      return env.Undefined();
    }
  }
  Napi::Array result = Napi::Array::New(env);
  const off_t end = offset + length;
  off_t pos = offset;
  while (pos < end && (maxExtents == 0 || static_cast<off_t>(result.Length()) < maxExtents)) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno != ENXIO) {
        ThrowErrno(env, errno, "lseek");
        return env.Undefined();
      }
      PushExtent(env, result, pos, end - pos, false);  // no data at or after pos
      break;
    }
    if (data > pos) {
      off_t holeEnd = data < end ? data : end;
      PushExtent(env, result, pos, holeEnd - pos, false);
      pos = holeEnd;
      if (pos >= end || (maxExtents != 0 && static_cast<off_t>(result.Length()) >= maxExtents)) break;
    }
    off_t hole = lseek(fd, pos, SEEK_HOLE);
    if (hole < 0) {
      ThrowErrno(env, errno, "lseek");
      return env.Undefined();
    }
    // Only a file changed between the two calls makes SEEK_HOLE answer pos itself. Calling the rest data is
    // always correct (data may hold zeros) and ends the scan.
    if (hole <= pos) hole = end;
    off_t dataEnd = hole < end ? hole : end;
    PushExtent(env, result, pos, dataEnd - pos, true);
    pos = dataEnd;
  }
  return result;
}

Napi::Value PunchHole(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  off_t offset, length;
  if (!ReadRange(info, &fd, &offset, &length)) return env.Undefined();
  if (length == 0) return env.Undefined();
  int err = Fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  if (err != 0) ThrowErrno(env, err, "fallocate");
  return env.Undefined();
}

Napi::Value ZeroRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  off_t offset, length;
  if (!ReadRange(info, &fd, &offset, &length)) return env.Undefined();
  if (length == 0) return Napi::String::New(env, "none");
  int err = Fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length);
  if (err == 0) return Napi::String::New(env, "zero-range");
  if (err != EOPNOTSUPP) {
    ThrowErrno(env, err, "fallocate");
    return env.Undefined();
  }
  err = Fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  if (err != 0) {
    ThrowErrno(env, err, "fallocate");
    return env.Undefined();
  }
  return Napi::String::New(env, "punch-hole");
}

Napi::Value Allocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  off_t offset, length;
  if (!ReadRange(info, &fd, &offset, &length)) return env.Undefined();
  if (length == 0) return env.Undefined();
  int err = Fallocate(fd, 0, offset, length);
  if (err != 0) ThrowErrno(env, err, "fallocate");
  return env.Undefined();
}

// Hashes a batch of buffers on the thread pool. A private array holding the buffers is referenced until the job
// ends, so the memory the raw pointers name stays alive whatever the caller does with its own array.
class Sha256Batch : public Napi::AsyncWorker {
 public:
  Sha256Batch(Napi::Env env, Napi::Array array, std::vector<std::pair<const uint8_t*, size_t>> spans)
      : Napi::AsyncWorker(env, "hvcbt:sha256Batch"),
        deferred_(Napi::Promise::Deferred::New(env)),
        keep_(Napi::Persistent(array.As<Napi::Object>())),
        spans_(std::move(spans)),
        out_(spans_.size() * 32) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (md == nullptr) {
      SetError("SHA-256 is not available from OpenSSL");
      return;
    }
    for (size_t i = 0; i < spans_.size(); i++) {
      unsigned int n = 0;
      if (EVP_Digest(spans_[i].first, spans_[i].second, out_.data() + 32 * i, &n, md, nullptr) != 1 || n != 32) {
        SetError("SHA-256 failed");
        break;
      }
    }
    EVP_MD_free(md);
  }

  void OnOK() override {
    deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(Env(), out_.data(), out_.size()));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keep_;
  std::vector<std::pair<const uint8_t*, size_t>> spans_;
  std::vector<uint8_t> out_;
};

Napi::Value Sha256BatchFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    ThrowType(env, "buffers must be an array of Buffers");
    return env.Undefined();
  }
  Napi::Array array = info[0].As<Napi::Array>();
  Napi::Array held = Napi::Array::New(env, array.Length());
  std::vector<std::pair<const uint8_t*, size_t>> spans;
  spans.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value v = array.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowType(env, "buffers[" + std::to_string(i) + "] is not a Buffer or Uint8Array");
      return env.Undefined();
    }
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    spans.emplace_back(a.Data(), a.ByteLength());
    held.Set(i, v);
  }
  auto* job = new Sha256Batch(env, held, std::move(spans));
  Napi::Promise promise = job->Promise();
  job->Queue();
  return promise;
}

constexpr size_t kDirectAlign = 4096;
constexpr double kMaxAlignedBuffer = 1024.0 * 1024 * 1024;

Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowType(env, "size must be a number");
    return env.Undefined();
  }
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= kMaxAlignedBuffer) || std::floor(d) != d) {
    ThrowType(env, "size must be an integer from 1 to 1 GiB");
    return env.Undefined();
  }
  size_t size = static_cast<size_t>(d);
  void* p = nullptr;
  int err = posix_memalign(&p, kDirectAlign, size);
  if (err != 0) {
    ThrowErrno(env, err, "posix_memalign");
    return env.Undefined();
  }
  std::memset(p, 0, size);
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(size));
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(p), size, [size](Napi::Env e, uint8_t* data) {
    std::free(data);
    Napi::MemoryManagement::AdjustExternalMemory(e, -static_cast<int64_t>(size));
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("extents", Napi::Function::New(env, Extents, "extents"));
  exports.Set("punchHole", Napi::Function::New(env, PunchHole, "punchHole"));
  exports.Set("zeroRange", Napi::Function::New(env, ZeroRange, "zeroRange"));
  exports.Set("allocate", Napi::Function::New(env, Allocate, "allocate"));
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer, "alignedBuffer"));
  exports.Set("sha256Batch", Napi::Function::New(env, Sha256BatchFn, "sha256Batch"));
  InitUnpack(env, exports);
  return exports;
}

}  // namespace
}  // namespace hvcbt

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return hvcbt::Init(env, exports); }

NODE_API_MODULE(hvcbt_native, InitAddon)
