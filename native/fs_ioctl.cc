// Filesystem ioctls for guest-fsfreeze-* and guest-fstrim. Each runs on its own thread:
// FIFREEZE waits for all dirty data to reach the disk and can block forever on a stuck
// device; FITRIM can take minutes on a large filesystem. Neither may hold a libuv pool thread.
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace qga {

namespace {

// open(2) the mount point read-only, as qemu-ga does; returns -1 after recording the error.
int OpenMount(TaskError& error, const std::string& path) {
  int fd;
  do {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) error.SetErrno(errno, "open", path);
  return fd;
}

class FreezeTask : public ThreadTask {
 public:
  explicit FreezeTask(std::string path) : path_(std::move(path)) {}

 private:
  void Execute() override {
    int fd = OpenMount(error_, path_);
    if (fd < 0) return;
    if (ioctl(fd, FIFREEZE, 0) != 0) error_.SetErrno(errno, "ioctl(FIFREEZE)", path_);
    close(fd);
  }
  std::string path_;
};

class ThawTask : public ThreadTask {
 public:
  explicit ThawTask(std::string path) : path_(std::move(path)) {}

 private:
  // A filesystem frozen N times needs N thaws; keep going until the kernel says "not frozen"
  // (EINVAL) or anything else. Only open() failing is an error.
  void Execute() override {
    int fd = OpenMount(error_, path_);
    if (fd < 0) return;
    while (ioctl(fd, FITHAW, 0) == 0) thawed_ = true;
    close(fd);
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Boolean::New(env, thawed_); }
  std::string path_;
  bool thawed_ = false;
};

class TrimTask : public ThreadTask {
 public:
  TrimTask(std::string path, uint64_t minimum) : path_(std::move(path)) {
    range_.start = 0;
    range_.len = UINT64_MAX;
    range_.minlen = minimum;
  }

 private:
  void Execute() override {
    int fd = OpenMount(error_, path_);
    if (fd < 0) return;
    if (ioctl(fd, FITRIM, &range_) != 0) error_.SetErrno(errno, "ioctl(FITRIM)", path_);
    close(fd);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    r.Set("trimmed", Napi::BigInt::New(env, static_cast<uint64_t>(range_.len)));
    r.Set("minimum", Napi::BigInt::New(env, static_cast<uint64_t>(range_.minlen)));
    return r;
  }
  std::string path_;
  struct fstrim_range range_;
};

Napi::Value Freeze(const Napi::CallbackInfo& info) {
  return ThreadTask::Start(info.Env(), new FreezeTask(ArgString(info, 0, "path")), "qga:freeze");
}

Napi::Value Thaw(const Napi::CallbackInfo& info) {
  return ThreadTask::Start(info.Env(), new ThawTask(ArgString(info, 0, "path")), "qga:thaw");
}

Napi::Value Trim(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  uint64_t minimum = info.Length() > 1 && !info[1].IsUndefined() ? ArgBigUint64(info, 1, "minimum") : 0;
  return ThreadTask::Start(info.Env(), new TrimTask(std::move(path), minimum), "qga:trim");
}

}  // namespace

void InitFsIoctl(Napi::Env env, Napi::Object exports) {
  exports.Set("freeze", Napi::Function::New(env, Freeze, "freeze"));
  exports.Set("thaw", Napi::Function::New(env, Thaw, "thaw"));
  exports.Set("trim", Napi::Function::New(env, Trim, "trim"));
}

}  // namespace qga
