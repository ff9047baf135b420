// Readiness watching for a descriptor Node cannot wrap in a stream: a virtio-serial port is a
// character device that libuv treats as a file, so without this the port could only be read
// by polling. A uv_poll_t on Node's own loop calls back into JavaScript when the descriptor
// is readable or hung up; the port is read only then. No timer wakes an idle agent, no pool
// thread is parked in a read (which would hold up process exit), and a request is seen as
// soon as it arrives.
//
// A virtio port whose host side is closed reports POLLHUP until the host comes back, so a
// level-triggered watch would call back without pause. JavaScript answers a hang-up with
// backoff(ms): the poll is stopped and a timer restarts it, as qemu-ga sleeps 100 ms and
// re-arms its watch.
//
// JS interface: watchFd(fd, callback(status, events)) -> FdWatcher with start(), stop(),
// backoff(ms), setEvents(mask), spinAfter(us), close(). `status` is 0 or a negative libuv error (the poll was
// stopped by libuv); `events` has 1 (readable, also reported on hang-up), 2 (writable: only
// when asked for with setEvents) and 4 (peer closed) bits.
//
// A socket driven this way (the unix-listen client) is read and written with
// readFdNonBlocking / writeFdNonBlocking: one system call each, on the loop thread, never
// waiting (EAGAIN comes back as -11), so a request costs no stream machinery.
// close() must come before the descriptor is closed: libuv aborts on a watched descriptor
// that no longer exists.
#include <napi.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common.h"

#if __has_include(<uv.h>)
#include <uv.h>

namespace qga {

namespace {

constexpr int kEvents = UV_READABLE | UV_DISCONNECT;

// The native half of a watcher. libuv finishes closing handles on a later loop turn, so this
// can outlive the JS object; it is deleted once its handles are closed and the JS object is gone.
struct Watch {
  napi_env env = nullptr;
  uv_poll_t poll;
  uv_timer_t timer;
  napi_ref callback = nullptr;
  napi_async_context async_context = nullptr;
  int events = kEvents;     // what the poll asks for (setEvents())
  bool wanted = true;       // events requested (start() / stop())
  bool sleeping = false;    // a back-off timer will restart the poll
  bool closed = false;      // close() was called (or the environment is going away)
  bool wrapped = true;      // the JS object still exists
  int open_handles = 0;     // libuv handles not yet through their close callback
  int fd = -1;
  int64_t spin_ns = 0;      // spinAfter(): how long to look for more input after an idle callback
  double spins = 0;         // spinStats(): spins started, and how many found input
  double caught = 0;
};

void MaybeDelete(Watch* w) {
  if (w->closed && !w->wrapped && w->open_handles == 0) delete w;
}

void OnHandleClosed(uv_handle_t* h) {
  Watch* w = static_cast<Watch*>(h->data);
  w->open_handles--;
  MaybeDelete(w);
}

void CleanupHook(void* arg);

// Stops everything; `from_hook` when the environment is being torn down (N-API calls are
// then avoided: the environment releases its references itself).
void CloseWatch(Watch* w, bool from_hook) {
  if (w->closed) return;
  w->closed = true;
  if (!from_hook) {
    napi_remove_env_cleanup_hook(w->env, CleanupHook, w);
    if (w->callback != nullptr) napi_delete_reference(w->env, w->callback);
    if (w->async_context != nullptr) napi_async_destroy(w->env, w->async_context);
  }
  w->callback = nullptr;
  w->async_context = nullptr;
  // uv_close stops the poll at once (the descriptor leaves epoll now), then frees later.
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->timer), OnHandleClosed);
}

void CleanupHook(void* arg) { CloseWatch(static_cast<Watch*>(arg), true); }

// True when the callback returned true (JavaScript is idle and would like to be called again
// soon, see spinAfter()).
bool Notify(Watch* w, int status, int events) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return false;
  napi_value cb, recv, args[2], result = nullptr;
  bool again = false;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != nullptr &&
      napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, status, &args[0]) == napi_ok &&
      napi_create_int32(env, events, &args[1]) == napi_ok) {
    // make_callback: process.nextTick queues and promise jobs run afterwards, as for Node's own I/O.
    if (napi_make_callback(env, w->async_context, recv, cb, 2, args, &result) == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);  // to process 'uncaughtException'
    } else if (result != nullptr) {
      napi_get_value_bool(env, result, &again);  // anything but a boolean leaves it false
    }
  }
  napi_close_handle_scope(env, scope);
  return again;
}

int64_t MonotonicNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// Looks for input on the descriptor until the deadline: the libuv events it would report, or 0.
int SpinForInput(int fd, int64_t deadline) {
  do {
    struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) > 0) {
      if (p.revents & (POLLERR | POLLNVAL)) return 0;  // left to the next epoll round
      return UV_READABLE | ((p.revents & (POLLRDHUP | POLLHUP)) ? UV_DISCONNECT : 0);
    }
    sched_yield();  // lets the peer run if it waits for this CPU
  } while (MonotonicNs() < deadline);
  return 0;
}

void OnPoll(uv_poll_t* h, int status, int events) {
  Watch* w = static_cast<Watch*>(h->data);
  if (w->closed) return;
  bool again = Notify(w, status, events);
  // The callback answered everything and asked to be called again soon: the host's next request
  // usually follows within tens of microseconds, and catching it here spares this thread the
  // sleep in epoll and the wake-up, which on a VM is most of a small request's round trip.
  while (again && w->spin_ns > 0 && !w->closed && w->wanted && !w->sleeping && (w->events & UV_READABLE) &&
         !(w->events & UV_WRITABLE)) {
    w->spins++;
    int ready = SpinForInput(w->fd, MonotonicNs() + w->spin_ns);
    if (ready == 0 || w->closed) break;
    w->caught++;
    again = Notify(w, 0, ready);
  }
}

void OnTimer(uv_timer_t* h) {
  Watch* w = static_cast<Watch*>(h->data);
  w->sleeping = false;
  if (!w->closed && w->wanted) uv_poll_start(&w->poll, w->events, OnPoll);
}

class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatcher",
                       {InstanceMethod("start", &FdWatcher::Start), InstanceMethod("stop", &FdWatcher::Stop),
                        InstanceMethod("backoff", &FdWatcher::Backoff), InstanceMethod("setEvents", &FdWatcher::SetEvents),
                        InstanceMethod("spinAfter", &FdWatcher::SpinAfter), InstanceMethod("spinStats", &FdWatcher::SpinStats),
                        InstanceMethod("close", &FdWatcher::Close)});
  }

  explicit FdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatcher>(info) {
    Napi::Env env = info.Env();
    int64_t fd = ArgInt64(info, 0, "fd");
    if (fd < 0 || fd > INT32_MAX) throw Napi::RangeError::New(env, "bad file descriptor");
    if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "argument 'callback' must be a function");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "no event loop");

    Watch* w = new Watch();
    w->env = env;
    // Fails (EPERM) for descriptors epoll cannot watch, such as regular files.
    int rc = uv_poll_init(loop, &w->poll, static_cast<int>(fd));
    if (rc != 0) {
      delete w;
      throw ErrnoError(env, -rc, "uv_poll_init", "");
    }
    uv_timer_init(loop, &w->timer);
    w->fd = static_cast<int>(fd);
    w->poll.data = w;
    w->timer.data = w;
    w->open_handles = 2;
    napi_create_reference(env, info[1], 1, &w->callback);
    napi_async_init(env, info.This(), Napi::String::New(env, "qga:fd-watch"), &w->async_context);
    napi_add_env_cleanup_hook(env, CleanupHook, w);
    watch_ = w;
    uv_poll_start(&w->poll, w->events, OnPoll);
  }

  ~FdWatcher() override {
    if (watch_ == nullptr) return;
    CloseWatch(watch_, false);
    watch_->wrapped = false;
    MaybeDelete(watch_);
    watch_ = nullptr;
  }

 private:
  // Resumes callbacks (after stop()); a pending back-off still runs its course first.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Watch* w = watch_;
    if (w != nullptr && !w->closed) {
      w->wanted = true;
      if (!w->sleeping) uv_poll_start(&w->poll, w->events, OnPoll);
    }
    return info.Env().Undefined();
  }

  // No callbacks until start() (the reader is paused).
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Watch* w = watch_;
    if (w != nullptr && !w->closed) {
      w->wanted = false;
      uv_poll_stop(&w->poll);
    }
    return info.Env().Undefined();
  }

  // Not watched for `ms` milliseconds, then watched again (if still wanted).
  Napi::Value Backoff(const Napi::CallbackInfo& info) {
    int64_t ms = ArgInt64(info, 0, "ms");
    if (ms < 0) throw Napi::RangeError::New(info.Env(), "ms must not be negative");
    Watch* w = watch_;
    if (w != nullptr && !w->closed) {
      uv_poll_stop(&w->poll);
      w->sleeping = true;
      uv_timer_start(&w->timer, OnTimer, static_cast<uint64_t>(ms), 0);
    }
    return info.Env().Undefined();
  }

  // Watches for `mask` (1 readable, 2 writable, 4 peer closed; 0 = nothing) from now on.
  Napi::Value SetEvents(const Napi::CallbackInfo& info) {
    int64_t mask = ArgInt64(info, 0, "mask");
    if (mask < 0 || mask > (UV_READABLE | UV_WRITABLE | UV_DISCONNECT)) throw Napi::RangeError::New(info.Env(), "bad event mask");
    Watch* w = watch_;
    if (w != nullptr && !w->closed) {
      w->events = static_cast<int>(mask);
      w->wanted = mask != 0;
      if (w->sleeping) return info.Env().Undefined();
      if (mask != 0) uv_poll_start(&w->poll, w->events, OnPoll); else uv_poll_stop(&w->poll);
    }
    return info.Env().Undefined();
  }

  // After a callback that returns true, look for more input for up to `us` microseconds before
  // going back to the event loop (0: never; the default).
  Napi::Value SpinAfter(const Napi::CallbackInfo& info) {
    int64_t us = ArgInt64(info, 0, "us");
    if (us < 0 || us > 100000) throw Napi::RangeError::New(info.Env(), "us must be within 0..100000");
    if (watch_ != nullptr) watch_->spin_ns = us * 1000;
    return info.Env().Undefined();
  }

  // {spins, caught}: spins started after idle callbacks, and those that found input.
  Napi::Value SpinStats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("spins", Napi::Number::New(info.Env(), watch_ != nullptr ? watch_->spins : 0));
    o.Set("caught", Napi::Number::New(info.Env(), watch_ != nullptr ? watch_->caught : 0));
    return o;
  }

  // Stops watching for good; the descriptor may be closed right after. Idempotent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (watch_ != nullptr) CloseWatch(watch_, false);
    return info.Env().Undefined();
  }

  Watch* watch_ = nullptr;
};

// watchFd(fd, callback) -> FdWatcher, already watching.
Napi::Value WatchFd(const Napi::CallbackInfo& info) {
  auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
  std::vector<napi_value> args;
  for (size_t i = 0; i < info.Length(); i++) args.push_back(info[i]);
  return ctor->New(args);
}

int ArgFd(const Napi::CallbackInfo& info) {
  int64_t fd = ArgInt64(info, 0, "fd");
  if (fd < 0 || fd > INT32_MAX) throw Napi::RangeError::New(info.Env(), "bad file descriptor");
  return static_cast<int>(fd);
}

// readFdNonBlocking(fd, buffer, offset, length) -> bytes read (0 at end of file) or -errno
// (-EAGAIN when nothing is there). The descriptor must be non-blocking: this runs on the loop.
Napi::Value ReadFdNonBlocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info);
  if (info.Length() < 2 || !info[1].IsBuffer()) throw Napi::TypeError::New(env, "argument 'buffer' must be a Buffer");
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  int64_t offset = ArgInt64(info, 2, "offset");
  int64_t length = ArgInt64(info, 3, "length");
  if (offset < 0 || length < 0 || static_cast<uint64_t>(offset + length) > buf.Length()) throw Napi::RangeError::New(env, "range outside the buffer");
  ssize_t n;
  do n = read(fd, buf.Data() + offset, static_cast<size_t>(length));
  while (n < 0 && errno == EINTR);
  return Napi::Number::New(env, n < 0 ? -errno : static_cast<double>(n));
}

// writeFdNonBlocking(fd, chunks) -> bytes written (possibly fewer than given) or -errno
// (-EAGAIN when the socket buffer is full). Chunks are Buffers or latin1 strings. A socket is
// written with MSG_NOSIGNAL: a vanished reader is EPIPE, never a signal.
Napi::Value WriteFdNonBlocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info);
  if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "argument 'chunks' must be an array");
  auto chunks = info[1].As<Napi::Array>();
  uint32_t count = chunks.Length();
  if (count > IOV_MAX) count = IOV_MAX;  // the rest goes on the next call, as after any short write
  std::vector<struct iovec> iov(count);
  std::vector<std::string> strings;  // latin1 copies of string chunks, alive until the write
  strings.reserve(count);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value c = chunks.Get(i);
    if (c.IsBuffer()) {
      auto b = c.As<Napi::Buffer<uint8_t>>();
      iov[i].iov_base = b.Data();
      iov[i].iov_len = b.Length();
    } else if (c.IsString()) {
      size_t len = 0;
      napi_get_value_string_latin1(env, c, nullptr, 0, &len);
      strings.emplace_back(len + 1, '\0');
      napi_get_value_string_latin1(env, c, &strings.back()[0], len + 1, &len);
      iov[i].iov_base = &strings.back()[0];
      iov[i].iov_len = len;
    } else {
      throw Napi::TypeError::New(env, "chunks must be Buffers or strings");
    }
  }
  struct msghdr msg = {};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == ENOTSOCK) {
    do n = writev(fd, iov.data(), static_cast<int>(count));
    while (n < 0 && errno == EINTR);
  }
  return Napi::Number::New(env, n < 0 ? -errno : static_cast<double>(n));
}

void DeleteConstructor(void* arg) { delete static_cast<Napi::FunctionReference*>(arg); }

}  // namespace

void InitFdWatch(Napi::Env env, Napi::Object exports) {
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(FdWatcher::Define(env)));
  napi_add_env_cleanup_hook(env, DeleteConstructor, ctor);
  exports.Set("watchFd", Napi::Function::New(env, WatchFd, "watchFd", ctor));
  exports.Set("readFdNonBlocking", Napi::Function::New(env, ReadFdNonBlocking, "readFdNonBlocking"));
  exports.Set("writeFdNonBlocking", Napi::Function::New(env, WriteFdNonBlocking, "writeFdNonBlocking"));
}

}  // namespace qga

#else  // no libuv headers at build time: no watchFd; the transport polls instead.

namespace qga {
void InitFdWatch(Napi::Env, Napi::Object) {}
}  // namespace qga

#endif
