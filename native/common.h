// Shared plumbing for the addon: errors shaped like Node's fs errors, and two ways to run
// blocking work off the JS thread, both settling a Promise on the JS thread:
//  - PromiseWorker: a libuv thread-pool job (Napi::AsyncWorker), for work that ends.
//  - ThreadTask: a dedicated detached std::thread, for work that may never end (FIFREEZE on
//    a stuck device, sync() before reboot) and must not pin one of libuv's 4 pool threads.
#pragma once

#include <napi.h>

#include <string>

namespace qga {

// What went wrong in a worker, recorded off the JS thread and turned into a JS Error on it.
struct TaskError {
  int err = 0;                 // errno, when the failure is an OS error
  const char* syscall = "";    // e.g. "open", "ioctl(FIFREEZE)"
  std::string path;            // optional; "" = no path property
  std::string qgaMessage;      // a protocol-level error (code 'EQGA'), when non-empty

  bool failed() const { return err != 0 || !qgaMessage.empty(); }
  void SetErrno(int e, const char* sc, std::string p = std::string()) {
    err = e;
    syscall = sc;
    path = std::move(p);
  }
  void SetQga(std::string message) { qgaMessage = std::move(message); }
  Napi::Error ToJs(Napi::Env env) const;
};

// Error{code:'EBUSY', errno:16, syscall, path} with a Node-like message.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& path);
// Error{code:'EQGA'}: the message is meant for the host verbatim.
Napi::Error QgaError(Napi::Env env, const std::string& message);
// Decimal text of n (snprintf: std::to_string would export a GNU-unique symbol).
std::string Decimal(long long n);
// "EBUSY" for EBUSY, "E<number>" when unknown.
std::string ErrnoName(int err);

// Settles `deferred` on the JS thread: rejected with `error` when it failed, else resolved with
// result() (rejected instead when building it throws).
template <typename ResultFn>
void SettleDeferred(Napi::Env env, napi_deferred deferred, const TaskError& error, ResultFn result) {
  Napi::HandleScope scope(env);
  if (error.failed()) {
    napi_reject_deferred(env, deferred, error.ToJs(env).Value());
    return;
  }
  try {
    napi_resolve_deferred(env, deferred, result());
  } catch (const Napi::Error& e) {
    napi_reject_deferred(env, deferred, e.Value());
  }
}

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Queue() {
    Napi::Promise p = deferred_.Promise();
    Napi::AsyncWorker::Queue();
    return p;
  }

 protected:
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  TaskError error_;

 private:
  void OnOK() override;
  void OnError(const Napi::Error& e) override;
  Napi::Promise::Deferred deferred_;
};

class ThreadTask {
 public:
  virtual ~ThreadTask() = default;
  // Takes ownership of the task: it deletes itself once the promise is settled.
  static Napi::Promise Start(Napi::Env env, ThreadTask* task, const char* name);

 protected:
  virtual void Execute() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  TaskError error_;

 private:
  static void Settle(napi_env env, napi_value, void* context, void*);
  napi_deferred deferred_ = nullptr;
  napi_threadsafe_function tsfn_ = nullptr;
};

// Argument helpers: throw a TypeError (as a JS exception) when the argument is wrong.
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t ArgInt64(const Napi::CallbackInfo& info, size_t i, const char* name);
uint64_t ArgBigUint64(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace qga
