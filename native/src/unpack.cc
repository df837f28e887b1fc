// Restore's hot path in one thread-pool job: read pack records, decode them into the caller's buffer and check
// each chunk's SHA-256 there. Doing it in JS cost a Buffer per record and per decoded chunk (most of a restore's
// garbage collection), a copy on the main thread and a promise per chunk.
//
//   unpackChunks(dest, plan)  Promise of an Array with one entry per plan entry: undefined when the chunk is in
//                             `dest`, else { structure, offset, message } (the record is damaged; offset is in
//                             the pack file, or null) or { code, errno, syscall, message } (the read failed).
//                             `plan` holds 64-byte entries, little-endian:
//                               0 fd i32 | 4 record offset u32 | 8 record length u32 | 12 dest offset u32 |
//                               16 content length u32 | 20 reserved (12 bytes) | 32 SHA-256 of the content
//                             Entries of one pack file in record order, adjacent records are read together (one
//                             preadv; a stored record's content lands in `dest` directly). `dest` and the file
//                             descriptors must stay unchanged and open until the promise settles.
//   lz4Decode(src, rawBytes)  the LZ4 block decoder alone, synchronous (for tests that compare it with the JS one):
//                             a Buffer of rawBytes bytes, or throws an Error with `structure` and `offset`.
//
// A pack record is [SHA-256 32 bytes][chunk header 16 bytes][payload] (src/backup/pack-store.ts,
// src/backup/chunk-codec.ts); the checks and messages here are the ones the JS decoder makes.
#include "hvcbt.h"

#include <openssl/evp.h>
#include <sys/uio.h>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace hvcbt {
namespace {

constexpr size_t kPlanEntry = 64;
constexpr size_t kHash = 32;
constexpr size_t kChunkHeader = 16;
constexpr size_t kRecordHead = kHash + kChunkHeader;
constexpr uint32_t kMaxChunkBytes = 64u * 1024 * 1024;  // MAX_CHUNK_BYTES in chunk-codec.ts
constexpr size_t kMaxReadBytes = 8u * 1024 * 1024;      // one preadv at most
constexpr size_t kMaxIov = 1024;                        // IOV_MAX on Linux

uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; i++) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 15];
  }
  return s;
}

// Why a chunk could not be unpacked. errno_ != 0: the read failed; else the record is damaged.
struct Failure {
  bool failed = false;
  int errno_ = 0;
  std::string structure;
  int64_t offset = -1;  // in the pack file; -1: none
  std::string message;
};

Failure Damaged(const char* structure, int64_t offset, std::string message) {
  Failure f;
  f.failed = true;
  f.structure = structure;
  f.offset = offset;
  f.message = std::move(message);
  return f;
}

// LZ4 block format: sequences of [token][literal length bytes][literals][offset u16][match length bytes]; the
// last sequence has literals only. Decodes `src` into exactly `rawBytes` bytes at `dst`, never touching memory
// outside either. Returns an empty string, or what is wrong with `*at` set to the input position (as the JS
// lz4BlockDecode reports it).
std::string Lz4Decode(const uint8_t* src, size_t srcLen, uint8_t* dst, size_t rawBytes, size_t* at) {
  size_t s = 0;
  size_t d = 0;
  auto bad = [&](const char* what) -> std::string {
    *at = s;
    return what;
  };
  while (s < srcLen) {
    const unsigned token = src[s++];
    size_t lit = token >> 4;
    if (lit == 15) {
      for (;;) {
        if (s >= srcLen) return bad("literal length runs past the end");
        const unsigned b = src[s++];
        lit += b;
        if (b != 255) break;
      }
    }
    if (lit > srcLen - s || lit > rawBytes - d) return bad("literals run past the end");
    std::memcpy(dst + d, src + s, lit);
    s += lit;
    d += lit;
    if (s >= srcLen) break;  // last sequence: literals only
    if (srcLen - s < 2) return bad("match offset runs past the end");
    const size_t offset = static_cast<size_t>(src[s]) | static_cast<size_t>(src[s + 1]) << 8;
    s += 2;
    if (offset == 0 || offset > d) {
      *at = s;
      return "match offset " + std::to_string(offset) + " points before the start";
    }
    size_t len = (token & 15) + 4;
    if ((token & 15) == 15) {
      for (;;) {
        if (s >= srcLen) return bad("match length runs past the end");
        const unsigned b = src[s++];
        len += b;
        if (b != 255) break;
      }
    }
    if (len > rawBytes - d) return bad("match runs past the end of the output");
    uint8_t* out = dst + d;
    const uint8_t* from = out - offset;
    if (offset >= len) {
      std::memcpy(out, from, len);
    } else {
      for (size_t i = 0; i < len; i++) out[i] = from[i];  // overlapping: repeats the last `offset` bytes
    }
    d += len;
  }
  if (d != rawBytes) {
    *at = s;
    return "decoded " + std::to_string(d) + " bytes, expected " + std::to_string(rawBytes);
  }
  return std::string();
}

struct Entry {
  int fd;
  uint32_t offset;
  uint32_t length;
  uint32_t dest;
  uint32_t content;
  const uint8_t* hash;
  bool direct;  // a stored record: its content is read straight into dest
};

class UnpackJob : public Napi::AsyncWorker {
 public:
  UnpackJob(Napi::Env env, Napi::Object keep, uint8_t* dest, std::vector<Entry> entries)
      : Napi::AsyncWorker(env, "hvcbt:unpackChunks"),
        deferred_(Napi::Promise::Deferred::New(env)),
        keep_(Napi::Persistent(keep)),
        dest_(dest),
        entries_(std::move(entries)),
        failures_(entries_.size()) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    md_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (md_ == nullptr) {
      SetError("SHA-256 is not available from OpenSSL");
      return;
    }
    for (size_t i = 0; i < entries_.size();) {
      size_t j = i + 1;
      size_t bytes = entries_[i].length;
      size_t iovs = entries_[i].direct ? 2 : 1;
      while (j < entries_.size() && entries_[j].fd == entries_[i].fd &&
             static_cast<uint64_t>(entries_[j - 1].offset) + entries_[j - 1].length == entries_[j].offset &&
             bytes + entries_[j].length <= kMaxReadBytes && iovs + 2 <= kMaxIov) {
        bytes += entries_[j].length;
        iovs += entries_[j].direct ? 2 : 1;
        j++;
      }
      ReadRun(i, j);
      i = j;
    }
    EVP_MD_free(md_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array out = Napi::Array::New(env, failures_.size());
    for (size_t i = 0; i < failures_.size(); i++) {
      const Failure& f = failures_[i];
      if (!f.failed) continue;
      Napi::Object o = Napi::Object::New(env);
      if (f.errno_ != 0) {
        o.Set("code", ErrnoName(f.errno_));
        o.Set("errno", -f.errno_);
        o.Set("syscall", "preadv");
        o.Set("message", ErrnoName(f.errno_) + ": " + std::strerror(f.errno_) + ", preadv");
      } else {
        o.Set("structure", f.structure);
        o.Set("offset", f.offset < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(f.offset)));
        o.Set("message", f.message);
      }
      out.Set(static_cast<uint32_t>(i), o);
    }
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  // Entries [i, j): adjacent records of one file, read with one preadv, then each checked and decoded.
  void ReadRun(size_t i, size_t j) {
    std::vector<size_t> at(j - i);  // where each record (or a direct one's head) starts in scratch_
    size_t need = 0;
    for (size_t k = i; k < j; k++) {
      at[k - i] = need;
      need += entries_[k].direct ? kRecordHead : entries_[k].length;
    }
    if (scratch_.size() < need) scratch_.resize(need);
    std::vector<iovec> iov;
    iov.reserve(2 * (j - i));
    for (size_t k = i; k < j; k++) {
      const Entry& e = entries_[k];
      if (e.direct) {
        iov.push_back({scratch_.data() + at[k - i], kRecordHead});
        iov.push_back({dest_ + e.dest, e.content});
      } else {
        iov.push_back({scratch_.data() + at[k - i], e.length});
      }
    }
    size_t got = 0;
    int err = ReadFully(entries_[i].fd, iov, entries_[i].offset, &got);
    size_t start = 0;  // bytes of the run before entry k
    for (size_t k = i; k < j; k++) {
      const Entry& e = entries_[k];
      if (got < start + e.length) {
        if (err != 0) {
          failures_[k].failed = true;
          failures_[k].errno_ = err;
        } else {
          size_t have = got > start ? got - start : 0;
          failures_[k] = Damaged("pack record", e.offset, "pack ends after " + std::to_string(have) +
                                                              " of the record's " + std::to_string(e.length) + " bytes");
        }
      } else {
        failures_[k] = Check(e, scratch_.data() + at[k - i]);
      }
      start += e.length;
    }
  }

  // preadv until every iovec is full, EOF or an error; partial reads resume where they stopped.
  static int ReadFully(int fd, std::vector<iovec>& iov, off_t offset, size_t* got) {
    size_t first = 0;
    while (first < iov.size()) {
      ssize_t n = preadv(fd, iov.data() + first, static_cast<int>(iov.size() - first), offset + *got);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (n == 0) return 0;
      *got += static_cast<size_t>(n);
      size_t left = static_cast<size_t>(n);
      while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    return 0;
  }

  // The record whose first bytes are at `head` (a direct record's content is already in dest).
  Failure Check(const Entry& e, const uint8_t* head) {
    const int64_t base = e.offset;
    if (std::memcmp(head, e.hash, kHash) != 0) {
      return Damaged("pack record", base, "holds chunk " + Hex(head, kHash) + ", the index says " + Hex(e.hash, kHash));
    }
    const uint8_t* h = head + kHash;
    const int64_t hdr = base + kHash;
    if (std::memcmp(h, "HVCK", 4) != 0) return Damaged("chunk header", hdr, "magic is not 'HVCK'");
    if (h[4] != 1) return Damaged("chunk header", hdr + 4, "unsupported chunk format version " + std::to_string(h[4]));
    const unsigned codec = h[5];
    const uint32_t rawBytes = Le32(h + 8);
    const uint32_t payloadBytes = Le32(h + 12);
    if (rawBytes > kMaxChunkBytes) {
      return Damaged("chunk header", hdr + 8, "content size " + std::to_string(rawBytes) + " exceeds " + std::to_string(kMaxChunkBytes));
    }
    if (kRecordHead + static_cast<uint64_t>(payloadBytes) != e.length) {
      return Damaged("chunk header", hdr + 12, "payload size " + std::to_string(payloadBytes) +
                                                   " does not match the record size " + std::to_string(e.length - kHash));
    }
    if (rawBytes != e.content) {
      return Damaged("chunk header", hdr + 8, "content size " + std::to_string(rawBytes) + ", the disk's chunk is " +
                                                  std::to_string(e.content) + " bytes");
    }
    uint8_t* out = dest_ + e.dest;
    const int64_t payloadAt = hdr + static_cast<int64_t>(kChunkHeader);
    if (codec == 0) {
      if (payloadBytes != rawBytes) {
        return Damaged("chunk header", hdr + 8, "stored chunk: payload " + std::to_string(payloadBytes) + " != content " + std::to_string(rawBytes));
      }
      if (!e.direct) std::memcpy(out, h + kChunkHeader, rawBytes);
    } else if (codec == 1) {
      // an lz4 record exactly the size of its content was read into dest as if stored: decode from a copy
      std::vector<uint8_t> copy;
      const uint8_t* payload = h + kChunkHeader;
      if (e.direct) {
        copy.assign(out, out + rawBytes);
        payload = copy.data();
      }
      if (payloadBytes < 4 || Le32(payload) != rawBytes) return Damaged("lz4 payload", payloadAt, "size prefix does not match the header");
      size_t at = 0;
      std::string why = Lz4Decode(payload + 4, payloadBytes - 4, out, rawBytes, &at);
      if (!why.empty()) return Damaged("lz4 block", payloadAt + 4 + static_cast<int64_t>(at), why);
    } else {
      return Damaged("chunk header", hdr + 5, "unknown codec " + std::to_string(codec));
    }
    uint8_t sum[32];
    unsigned int n = 0;
    if (EVP_Digest(out, rawBytes, sum, &n, md_, nullptr) != 1 || n != 32) return Damaged("chunk content", -1, "SHA-256 failed");
    if (std::memcmp(sum, e.hash, kHash) != 0) {
      return Damaged("chunk content", -1, "SHA-256 is " + Hex(sum, kHash) + ", expected " + Hex(e.hash, kHash));
    }
    return Failure();
  }

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keep_;
  uint8_t* dest_;
  std::vector<Entry> entries_;
  std::vector<Failure> failures_;
  std::vector<uint8_t> scratch_;
  EVP_MD* md_ = nullptr;
};

bool IsUint8Array(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

Napi::Value UnpackChunks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !IsUint8Array(info[0]) || !IsUint8Array(info[1])) {
    ThrowType(env, "unpackChunks(dest, plan) takes two Buffers");
    return env.Undefined();
  }
  Napi::Uint8Array dest = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array plan = info[1].As<Napi::Uint8Array>();
  if (plan.ByteLength() % kPlanEntry != 0) {
    ThrowType(env, "plan length " + std::to_string(plan.ByteLength()) + " is not a multiple of 64");
    return env.Undefined();
  }
  const size_t n = plan.ByteLength() / kPlanEntry;
  // the plan is copied (hashes included): the caller may reuse its buffer at once
  Napi::Buffer<uint8_t> owned = Napi::Buffer<uint8_t>::Copy(env, plan.Data(), plan.ByteLength());
  std::vector<Entry> entries(n);
  for (size_t i = 0; i < n; i++) {
    const uint8_t* p = owned.Data() + kPlanEntry * i;
    Entry& e = entries[i];
    const uint32_t fd = Le32(p);
    e.offset = Le32(p + 4);
    e.length = Le32(p + 8);
    e.dest = Le32(p + 12);
    e.content = Le32(p + 16);
    e.hash = p + 32;
    const std::string where = "plan entry " + std::to_string(i);
    if (fd > INT_MAX) {
      ThrowType(env, where + ": fd " + std::to_string(fd) + " is out of range");
      return env.Undefined();
    }
    e.fd = static_cast<int>(fd);
    if (e.content > kMaxChunkBytes || e.length < kRecordHead || e.length > kRecordHead + 4 + kMaxChunkBytes) {
      ThrowType(env, where + ": record length " + std::to_string(e.length) + " or content length " + std::to_string(e.content) + " is out of range");
      return env.Undefined();
    }
    if (static_cast<uint64_t>(e.dest) + e.content > dest.ByteLength()) {
      ThrowType(env, where + ": content at " + std::to_string(e.dest) + " runs past the " + std::to_string(dest.ByteLength()) + "-byte destination");
      return env.Undefined();
    }
    e.direct = e.length == kRecordHead + static_cast<uint64_t>(e.content);
  }
  Napi::Object keep = Napi::Object::New(env);
  keep.Set("dest", dest);
  keep.Set("plan", owned);
  auto* job = new UnpackJob(env, keep, dest.Data(), std::move(entries));
  Napi::Promise promise = job->Promise();
  job->Queue();
  return promise;
}

Napi::Value Lz4DecodeFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !IsUint8Array(info[0]) || !info[1].IsNumber()) {
    ThrowType(env, "lz4Decode(src, rawBytes) takes a Buffer and a number");
    return env.Undefined();
  }
  Napi::Uint8Array src = info[0].As<Napi::Uint8Array>();
  double raw = info[1].As<Napi::Number>().DoubleValue();
  if (!(raw >= 0 && raw <= kMaxChunkBytes) || static_cast<double>(static_cast<uint32_t>(raw)) != raw) {
    ThrowType(env, "rawBytes must be an integer from 0 to 64 MiB");
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(raw));
  size_t at = 0;
  std::string why = Lz4Decode(src.Data(), src.ByteLength(), out.Data(), out.Length(), &at);
  if (!why.empty()) {
    Napi::Error e = Napi::Error::New(env, why);
    e.Value().Set("structure", "lz4 block");
    e.Value().Set("offset", static_cast<double>(at));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return out;
}

}  // namespace

void InitUnpack(Napi::Env env, Napi::Object exports) {
  exports.Set("unpackChunks", Napi::Function::New(env, UnpackChunks, "unpackChunks"));
  exports.Set("lz4Decode", Napi::Function::New(env, Lz4DecodeFn, "lz4Decode"));
}

}  // namespace hvcbt
