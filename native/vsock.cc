// AF_VSOCK for `-m vsock-listen`: Node has no vsock sockets, so the addon makes the
// listening socket and accepts on it. The connected descriptor is then read and written from
// JavaScript (fs.read / fs.writev on the thread pool), like a virtio-serial port.
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "common.h"

namespace qga {

namespace {

// vsockListen(cid, port) -> fd of a bound socket listening with backlog 1 (as qemu-ga).
Napi::Value VsockListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t cid = ArgInt64(info, 0, "cid");
  int64_t port = ArgInt64(info, 1, "port");
  if (cid < 0 || cid > UINT32_MAX || port < 0 || port > UINT32_MAX) {
    throw Napi::RangeError::New(env, "cid and port must be unsigned 32-bit integers");
  }
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(env, errno, "socket(AF_VSOCK)", "");
  struct sockaddr_vm addr = {};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = static_cast<unsigned int>(cid);
  addr.svm_port = static_cast<unsigned int>(port);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    close(fd);
    throw ErrnoError(env, e, "bind", "");
  }
  if (listen(fd, 1) != 0) {
    int e = errno;
    close(fd);
    throw ErrnoError(env, e, "listen", "");
  }
  // accept() wakes up every half second (EAGAIN) so a closed channel's accept thread ends
  // soon: vsock has no other way to interrupt an accept() in progress.
  struct timeval tv = {0, 500000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return Napi::Number::New(env, fd);
}

// Waiting for a host may take forever: a thread of its own, not one of libuv's pool.
class AcceptTask : public ThreadTask {
 public:
  explicit AcceptTask(int fd) : fd_(fd) {}

 private:
  void Execute() override {
    do {
      conn_ = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    } while (conn_ < 0 && errno == EINTR);
    if (conn_ < 0) error_.SetErrno(errno, "accept");
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, conn_); }
  int fd_;
  int conn_ = -1;
};

// vsockAccept(listenFd) -> Promise<fd of the connected (blocking) socket>.
Napi::Value VsockAccept(const Napi::CallbackInfo& info) {
  int64_t fd = ArgInt64(info, 0, "fd");
  if (fd < 0 || fd > INT32_MAX) throw Napi::RangeError::New(info.Env(), "bad file descriptor");
  return ThreadTask::Start(info.Env(), new AcceptTask(static_cast<int>(fd)), "qga:vsock-accept");
}

// vsockShutdown(listenFd): wakes a thread parked in accept() on it (close() alone does not),
// so the accept task ends and the process can exit.
Napi::Value VsockShutdown(const Napi::CallbackInfo& info) {
  int64_t fd = ArgInt64(info, 0, "fd");
  if (fd < 0 || fd > INT32_MAX) throw Napi::RangeError::New(info.Env(), "bad file descriptor");
  shutdown(static_cast<int>(fd), SHUT_RDWR);
  return info.Env().Undefined();
}

}  // namespace

void InitVsock(Napi::Env env, Napi::Object exports) {
  exports.Set("vsockShutdown", Napi::Function::New(env, VsockShutdown, "vsockShutdown"));
  exports.Set("vsockListen", Napi::Function::New(env, VsockListen, "vsockListen"));
  exports.Set("vsockAccept", Napi::Function::New(env, VsockAccept, "vsockAccept"));
}

}  // namespace qga
