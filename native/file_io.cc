// guest-file-read / guest-file-write data paths.
// readFileReply: read(2)/pread(2) straight into the reply buffer, base64-encode in place and
// wrap with the JSON around it, so the host's reply line is one Buffer built off the JS thread.
// writeBase64: validate + decode (glib semantics) + write(2)/pwrite(2) off the JS thread.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base64.h"
#include "common.h"
#include "io_lane.h"

namespace qga {

namespace {

constexpr char kHeadPrefix[] = "{\"return\": {\"count\": ";
constexpr char kHeadSuffix[] = ", \"buf-b64\": \"";
constexpr size_t kHeadMax = sizeof kHeadPrefix - 1 + 20 + sizeof kHeadSuffix - 1;
constexpr char kEofTrue[] = "\", \"eof\": true}";
constexpr char kEofFalse[] = "\", \"eof\": false}";

// Reply blocks are handed to JS as external Buffers and come back through their finalizer.
// Large ones (beyond malloc's mmap threshold) would otherwise be mmap'd fresh for every read,
// and page-faulting ~1.4 MiB per 1 MiB read costs more than the read and the encoding
// together. So recently finalized large blocks are kept here, bounded, for the next read.
class BlockPool {
 public:
  // A block of at least `want` usable bytes; its capacity is stored in a header before it.
  uint8_t* Take(size_t want) {
    if (want >= kPoolMin) {
      std::lock_guard<std::mutex> lock(mutex_);
      size_t best = blocks_.size();
      for (size_t i = 0; i < blocks_.size(); i++) {
        size_t cap = Capacity(blocks_[i]);
        if (cap >= want && cap <= want + want / 2 + kRound && (best == blocks_.size() || cap < Capacity(blocks_[best])))
          best = i;
      }
      if (best != blocks_.size()) {
        uint8_t* block = blocks_[best];
        pooled_bytes_ -= Capacity(block);
        blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(best));
        return block;
      }
      want = (want + kRound - 1) / kRound * kRound;
    }
    if (want >= kHugeMin) return TakeHuge(want);
    uint8_t* raw = static_cast<uint8_t*>(malloc(want + kHeader));
    if (raw == nullptr) return nullptr;
    size_t mapped = 0;
    memcpy(raw, &want, sizeof want);
    memcpy(raw + sizeof want, &mapped, sizeof mapped);
    return raw + kHeader;
  }

  void Give(uint8_t* block) {
    size_t cap = Capacity(block);
    if (cap >= kPoolMin && cap <= kPoolMaxBlock) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (blocks_.size() < kPoolMaxBlocks && pooled_bytes_ + cap <= kPoolMaxBytes) {
        blocks_.push_back(block);
        pooled_bytes_ += cap;
        return;
      }
    }
    size_t mapped;
    memcpy(&mapped, block - kHeader + sizeof(size_t), sizeof mapped);
    if (mapped != 0) munmap(block - kHeader, mapped);
    else free(block - kHeader);
  }

 private:
  // Blocks of several MiB (replies to reads of a few MiB up to 48 MiB) are mapped on a 2 MiB
  // boundary with MADV_HUGEPAGE: a fresh 64 MiB block then costs 32 page faults instead of
  // 16,384, which on a VM is most of the time a 48 MiB read takes. Without transparent huge
  // pages the advice is ignored and this is a plain mapping.
  static uint8_t* TakeHuge(size_t want) {
    const size_t len = (want + kHeader + kHuge - 1) / kHuge * kHuge;
    void* p = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    uintptr_t start = reinterpret_cast<uintptr_t>(p);
    uintptr_t aligned = (start + kHuge - 1) / kHuge * kHuge;
    if (aligned > start) munmap(p, aligned - start);
    if (aligned + len < start + len + kHuge) munmap(reinterpret_cast<void*>(aligned + len), start + len + kHuge - (aligned + len));
    auto* raw = reinterpret_cast<uint8_t*>(aligned);
#ifdef MADV_HUGEPAGE
    madvise(raw, len, MADV_HUGEPAGE);
#endif
    const size_t cap = len - kHeader;
    memcpy(raw, &cap, sizeof cap);
    memcpy(raw + sizeof cap, &len, sizeof len);
    return raw + kHeader;
  }

  static size_t Capacity(const uint8_t* block) {
    size_t cap;
    memcpy(&cap, block - kHeader, sizeof cap);
    return cap;
  }
  static constexpr size_t kHeader = 64;  // capacity, mapped length (0: malloc); keeps the usable area cache-line aligned
  static constexpr size_t kHuge = 2 << 20;
  static constexpr size_t kHugeMin = 4 << 20;
  static constexpr size_t kRound = 64 << 10;
  static constexpr size_t kPoolMin = 128 << 10;
  static constexpr size_t kPoolMaxBlock = 24 << 20;
  static constexpr size_t kPoolMaxBlocks = 4;
  static constexpr size_t kPoolMaxBytes = 64 << 20;
  std::mutex mutex_;
  std::vector<uint8_t*> blocks_;
  size_t pooled_bytes_ = 0;
};

BlockPool& Pool() {
  static BlockPool* pool = new BlockPool();  // never destroyed: finalizers may run at exit
  return *pool;
}

// A reply block handed to JS. It goes back to the pool either when JS says it is done with
// the reply (recycleReply(token), e.g. once the transport has written it) or, failing that,
// when the Buffer is garbage-collected; whichever comes first, exactly once.
struct LentBlock {
  uint8_t* block;
  double token;
  bool returned = false;
};

class LentBlocks {
 public:
  LentBlock* Lend(uint8_t* block) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto* lent = new LentBlock{block, ++last_token_};
    by_token_[lent->token] = lent;
    return lent;
  }
  // Early return by token; a second call, or a stale token, does nothing.
  bool Recycle(double token) {
    LentBlock* lent;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = by_token_.find(token);
      if (it == by_token_.end()) return false;
      lent = it->second;
      by_token_.erase(it);
      lent->returned = true;
    }
    Pool().Give(lent->block);
    return true;
  }
  // The Buffer was collected: return the block unless recycleReply already did.
  void Finalized(LentBlock* lent) {
    bool give;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      give = !lent->returned;
      if (give) by_token_.erase(lent->token);
    }
    if (give) Pool().Give(lent->block);
    delete lent;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<double, LentBlock*> by_token_;
  double last_token_ = 0;
};

LentBlocks& Lent() {
  static LentBlocks* lent = new LentBlocks();  // never destroyed: finalizers may run at exit
  return *lent;
}

void FinalizeReply(Napi::Env, uint8_t*, LentBlock* lent) { Lent().Finalized(lent); }

class ReadFileReplyJob : public LaneJob {
 public:
  ReadFileReplyJob(int fd, int64_t position, size_t count, std::string id_suffix)
      : fd_(fd), position_(position), count_(count), id_suffix_(std::move(id_suffix)) {}
  ~ReadFileReplyJob() override {
    if (block_ != nullptr) Pool().Give(block_);
  }

 private:
  // Layout of block_: [header, right-aligned to kHeadMax][base64 ...][trailer]. The raw
  // data is read into the base64 area at Base64InPlaceGap(count) and encoded in place.
  void Execute() override {
    size_t b64_max = Base64EncodedLength(count_);
    size_t capacity = kHeadMax + b64_max + 8 + sizeof kEofFalse + id_suffix_.size() + 2;
    block_ = Pool().Take(capacity);
    if (block_ == nullptr) return error_.SetErrno(ENOMEM, "malloc");
    uint8_t* b64 = block_ + kHeadMax;
    uint8_t* data = b64 + Base64InPlaceGap(count_);

    size_t got = 0;
    bool eof = false;
    while (got < count_) {
      ssize_t r = position_ < 0 ? read(fd_, data + got, count_ - got)
                                : pread(fd_, data + got, count_ - got, position_ + static_cast<off_t>(got));
      if (r > 0) {
        got += static_cast<size_t>(r);
      } else if (r == 0) {
        eof = true;
        break;
      } else if (errno == EINTR) {
        continue;
      } else if ((errno == EAGAIN || errno == EWOULDBLOCK) && got > 0) {
        break;  // a non-blocking source ran dry: reply with what arrived
      } else {
        return error_.SetErrno(errno, position_ < 0 ? "read" : "pread");
      }
    }
    count_read_ = got;
    eof_ = eof;

    Base64Encode(data, got, b64);
    uint8_t* p = b64 + Base64EncodedLength(got);
    const char* eof_text = eof ? kEofTrue : kEofFalse;
    size_t eof_len = eof ? sizeof kEofTrue - 1 : sizeof kEofFalse - 1;
    memcpy(p, eof_text, eof_len);
    p += eof_len;
    memcpy(p, id_suffix_.data(), id_suffix_.size());
    p += id_suffix_.size();
    *p++ = '}';
    *p++ = '\n';

    std::string head = kHeadPrefix + Decimal(static_cast<long long>(got)) + kHeadSuffix;
    start_ = b64 - head.size();
    memcpy(start_, head.data(), head.size());
    length_ = p - start_;
  }

  Napi::Value Result(Napi::Env env) override {
    // Hand the block to JS without copying; see LentBlock for how it comes back.
    LentBlock* lent = Lent().Lend(block_);
    block_ = nullptr;
    Napi::Buffer<uint8_t> reply = Napi::Buffer<uint8_t>::New(env, start_, length_, FinalizeReply, lent);
    Napi::Object result = Napi::Object::New(env);
    result.Set("reply", reply);
    result.Set("token", Napi::Number::New(env, lent->token));
    result.Set("count", Napi::Number::New(env, static_cast<double>(count_read_)));
    result.Set("eof", Napi::Boolean::New(env, eof_));
    return result;
  }

  int fd_;
  int64_t position_;
  size_t count_;
  std::string id_suffix_;
  uint8_t* block_ = nullptr;
  uint8_t* start_ = nullptr;
  size_t length_ = 0;
  size_t count_read_ = 0;
  bool eof_ = false;
};

// Decode scratch per pool thread, kept between calls: payloads decoding to more than this go
// through it in parts of kPartChars characters.
constexpr size_t kKeepScratch = 4u << 20;
constexpr size_t kPartChars = 4u << 20;
thread_local std::string tls_scratch;

class WriteBase64Job : public LaneJob {
 public:
  WriteBase64Job(int fd, int64_t position, Napi::Buffer<uint8_t> src, size_t start, size_t end, int64_t count,
                 bool in_place)
      : fd_(fd), position_(position),
        src_ref_(Napi::Persistent(src)), data_(src.Data() + start), len_(end - start), count_(count),
        in_place_(in_place) {}

 private:
  void Execute() override {
    // In place: the decoder writes each group behind the characters it has already read, so
    // the request's own bytes can take the result and no scratch memory is touched at all
    // (fresh memory is the dominant cost of a large write on a VM).
    if (in_place_) {
      uint8_t* out = const_cast<uint8_t*>(data_);
      size_t decoded = 0;
      if (!Base64DecodeGlib(data_, len_, out, &decoded)) return error_.SetQga("Base64 data contains invalid characters");
      return Write(out, decoded);
    }
    if (Base64DecodedMax(len_) > kKeepScratch) return DecodeAndWriteInParts();
    std::string& scratch = tls_scratch;
    scratch.resize(Base64DecodedMax(len_));
    uint8_t* out = reinterpret_cast<uint8_t*>(&scratch[0]);
    size_t decoded = 0;
    if (!Base64DecodeGlib(data_, len_, out, &decoded)) return error_.SetQga("Base64 data contains invalid characters");
    Write(out, decoded);
  }

  // A large payload that may not be overwritten: rather than a scratch block as big as the data
  // (fresh memory, page-faulted on every call), decode it twice through the kept scratch: once
  // to check every character and count the bytes (nothing may be written if any is invalid),
  // then again, part by part, into the file.
  void DecodeAndWriteInParts() {
    const void* nul = memchr(data_, 0, len_);
    const size_t len = nul != nullptr ? static_cast<const uint8_t*>(nul) - data_ : len_;
    std::string& scratch = tls_scratch;
    scratch.resize(kPartChars / 4 * 3 + 3);
    uint8_t* out = reinterpret_cast<uint8_t*>(&scratch[0]);
    size_t total = 0;
    Base64GlibState check;
    for (size_t at = 0; at < len; at += kPartChars) {
      size_t got = 0;
      if (!Base64DecodeGlibPart(data_ + at, std::min(kPartChars, len - at), out, &got, &check))
        return error_.SetQga("Base64 data contains invalid characters");
      total += got;
    }
    size_t want = 0;
    if (!CheckCount(total, &want)) return;
    Base64GlibState state;
    for (size_t at = 0; at < len && written_ < want; at += kPartChars) {
      size_t got = 0;
      Base64DecodeGlibPart(data_ + at, std::min(kPartChars, len - at), out, &got, &state);
      size_t before = written_;
      if (!WriteSome(out, std::min(got, want - written_))) return;
      if (written_ - before < std::min(got, want - before)) return;  // short write: reported as is
    }
  }

  bool CheckCount(size_t decoded, size_t* want) {
    if (count_ < -1 || (count_ >= 0 && static_cast<uint64_t>(count_) > decoded)) {
      error_.SetQga("value '" + Decimal(count_) + "' is invalid for argument count");
      return false;
    }
    *want = count_ == -1 ? decoded : static_cast<size_t>(count_);
    return true;
  }

  void Write(const uint8_t* out, size_t decoded) {
    size_t want = 0;
    if (CheckCount(decoded, &want)) WriteSome(out, want);
  }

  // Writes up to n bytes at the position after what was written so far (written_ grows).
  // False on an error (set); a full non-blocking pipe after some bytes stops early, like fwrite.
  bool WriteSome(const uint8_t* out, size_t n) {
    size_t done = 0;
    while (done < n) {
      off_t at = position_ + static_cast<off_t>(written_);
      ssize_t w = position_ < 0 ? write(fd_, out + done, n - done) : pwrite(fd_, out + done, n - done, at);
      if (w > 0) {
        done += static_cast<size_t>(w);
        written_ += static_cast<size_t>(w);
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && written_ > 0) {
        break;  // a full non-blocking pipe: report the short write, like fwrite would
      } else {
        error_.SetErrno(w < 0 ? errno : EIO, position_ < 0 ? "write" : "pwrite");
        return false;
      }
    }
    return true;
  }

  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(written_)); }

  int fd_;
  int64_t position_;
  Napi::Reference<Napi::Buffer<uint8_t>> src_ref_;  // keeps the source bytes alive
  const uint8_t* data_;
  size_t len_;
  int64_t count_;
  bool in_place_;
  size_t written_ = 0;
};

// One pread(2) into a caller's Buffer (the read-ahead window of small guest-file-reads).
class PreadJob : public LaneJob {
 public:
  PreadJob(int fd, Napi::Buffer<uint8_t> buf, size_t offset, size_t length, int64_t position)
      : fd_(fd), buf_ref_(Napi::Persistent(buf)), data_(buf.Data() + offset), length_(length), position_(position) {}

 private:
  void Execute() override {
    ssize_t r;
    do r = pread(fd_, data_, length_, position_);
    while (r < 0 && errno == EINTR);
    if (r < 0) return error_.SetErrno(errno, "pread");
    got_ = static_cast<size_t>(r);
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(got_)); }

  int fd_;
  Napi::Reference<Napi::Buffer<uint8_t>> buf_ref_;  // keeps the destination alive
  uint8_t* data_;
  size_t length_;
  int64_t position_;
  size_t got_ = 0;
};

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer())
    throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

int ArgFd(const Napi::CallbackInfo& info, size_t i) {
  int64_t fd = ArgInt64(info, i, "fd");
  if (fd < 0 || fd > INT32_MAX) throw Napi::TypeError::New(info.Env(), "argument 'fd' must be a file descriptor");
  return static_cast<int>(fd);
}

// readFileReply(fd, position (-1 = current offset), count, idSuffix) -> Promise<{reply, count, eof}>
Napi::Value ReadFileReply(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  int64_t position = ArgInt64(info, 1, "position");
  int64_t count = ArgInt64(info, 2, "count");
  if (count < 0 || count > (int64_t(1) << 40)) throw Napi::RangeError::New(info.Env(), "argument 'count' is out of range");
  std::string id_suffix = info.Length() > 3 && !info[3].IsUndefined() ? ArgString(info, 3, "idSuffix") : "";
  return RunJob(info.Env(), new ReadFileReplyJob(fd, position, static_cast<size_t>(count), std::move(id_suffix)),
                "qga:readFileReply", static_cast<size_t>(count));
}

// writeBase64(fd, position (-1 = current offset), src, start, end, count (-1 = all), inPlace) -> Promise<number>
// With inPlace the decoded bytes overwrite src[start, ...): for callers that are done with it.
Napi::Value WriteBase64(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  int64_t position = ArgInt64(info, 1, "position");
  Napi::Buffer<uint8_t> src = ArgBuffer(info, 2, "src");
  int64_t start = ArgInt64(info, 3, "start");
  int64_t end = ArgInt64(info, 4, "end");
  int64_t count = info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull() ? ArgInt64(info, 5, "count") : -1;
  if (start < 0 || end < start || static_cast<uint64_t>(end) > src.Length())
    throw Napi::RangeError::New(info.Env(), "start/end are outside the buffer");
  bool in_place = info.Length() > 6 && info[6].IsBoolean() && info[6].As<Napi::Boolean>().Value();
  return RunJob(info.Env(),
                new WriteBase64Job(fd, position, src, static_cast<size_t>(start), static_cast<size_t>(end), count, in_place),
                "qga:writeBase64", Base64DecodedMax(static_cast<size_t>(end - start)));
}

// preadInto(fd, buf, offset, length, position) -> Promise<bytes read>
Napi::Value PreadInto(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  Napi::Buffer<uint8_t> buf = ArgBuffer(info, 1, "buf");
  int64_t offset = ArgInt64(info, 2, "offset");
  int64_t length = ArgInt64(info, 3, "length");
  int64_t position = ArgInt64(info, 4, "position");
  if (offset < 0 || length < 0 || position < 0 || static_cast<uint64_t>(offset + length) > buf.Length())
    throw Napi::RangeError::New(info.Env(), "offset/length are outside the buffer");
  return RunJob(info.Env(), new PreadJob(fd, buf, static_cast<size_t>(offset), static_cast<size_t>(length), position),
                "qga:preadInto", static_cast<size_t>(length));
}

// recycleReply(token): the caller no longer needs that reply's bytes (they were written out);
// its memory may be reused for the next reply at once. Returns false for an unknown token.
Napi::Value RecycleReply(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "argument 'token' must be a number");
  return Napi::Boolean::New(info.Env(), Lent().Recycle(info[0].As<Napi::Number>().DoubleValue()));
}

// An optional 'scalar' | 'avx2' | 'best' argument choosing the base64 implementation.
EncoderKind ArgImpl(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsString()) return EncoderKind::Best;
  std::string k = info[i].As<Napi::String>().Utf8Value();
  if (k == "scalar") return EncoderKind::Scalar;
  if (k == "avx2" && Base64HaveAvx2()) return EncoderKind::Avx2;
  if (k == "best") return EncoderKind::Best;
  throw Napi::TypeError::New(info.Env(), "unknown or unavailable implementation '" + k + "'");
}

// base64Encode(buf, impl?: 'scalar' | 'avx2') -> Buffer (synchronous; tests and benchmarks)
Napi::Value Base64EncodeJs(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> src = ArgBuffer(info, 0, "buf");
  EncoderKind kind = ArgImpl(info, 1);
  size_t n = Base64EncodedLength(src.Length());
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(info.Env(), n);
  Base64Encode(src.Data(), src.Length(), out.Data(), kind);
  return out;
}

// base64DecodeGlib(buf, impl?: 'scalar' | 'avx2') -> Buffer; throws Error{code:'EQGA'} on invalid characters.
Napi::Value Base64DecodeGlibJs(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> src = ArgBuffer(info, 0, "buf");
  EncoderKind kind = ArgImpl(info, 1);
  std::string out(Base64DecodedMax(src.Length()), '\0');
  size_t n = 0;
  if (!Base64DecodeGlib(src.Data(), src.Length(), reinterpret_cast<uint8_t*>(&out[0]), &n, kind))
    throw QgaError(info.Env(), "Base64 data contains invalid characters");
  return Napi::Buffer<uint8_t>::Copy(info.Env(), reinterpret_cast<const uint8_t*>(out.data()), n);
}

}  // namespace

void InitFileIo(Napi::Env env, Napi::Object exports) {
  exports.Set("readFileReply", Napi::Function::New(env, ReadFileReply, "readFileReply"));
  exports.Set("recycleReply", Napi::Function::New(env, RecycleReply, "recycleReply"));
  exports.Set("writeBase64", Napi::Function::New(env, WriteBase64, "writeBase64"));
  exports.Set("preadInto", Napi::Function::New(env, PreadInto, "preadInto"));
  exports.Set("base64Encode", Napi::Function::New(env, Base64EncodeJs, "base64Encode"));
  exports.Set("base64DecodeGlib", Napi::Function::New(env, Base64DecodeGlibJs, "base64DecodeGlib"));
  exports.Set("base64Encoder", Napi::String::New(env, Base64HaveAvx2() ? "avx2" : "scalar"));
}

}  // namespace qga
