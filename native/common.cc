#include "common.h"

#include <stdio.h>
#include <string.h>

#include <thread>

namespace qga {

std::string Decimal(long long n) {
  char buf[24];
  snprintf(buf, sizeof buf, "%lld", n);
  return buf;
}

std::string ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
#endif
  return "E" + Decimal(err);
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  std::string code = ErrnoName(err);
  char buf[256];
  const char* text = strerror_r(err, buf, sizeof buf);  // GNU variant returns the text
  std::string message = code + ": " + text;
  if (syscall != nullptr && *syscall) message += std::string(", ") + syscall;
  if (!path.empty()) message += " '" + path + "'";
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  if (syscall != nullptr && *syscall) e.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) e.Set("path", Napi::String::New(env, path));
  return e;
}

Napi::Error QgaError(Napi::Env env, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, "EQGA"));
  return e;
}

Napi::Error TaskError::ToJs(Napi::Env env) const {
  if (!qgaMessage.empty()) return QgaError(env, qgaMessage);
  return ErrnoError(env, err, syscall, path);
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (error_.failed()) {
    deferred_.Reject(error_.ToJs(env).Value());
    return;
  }
  // Building the result may throw (e.g. allocation); report that as a rejection.
  try {
    deferred_.Resolve(Result(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) { deferred_.Reject(e.Value()); }

Napi::Promise ThreadTask::Start(Napi::Env env, ThreadTask* task, const char* name) {
  napi_value promise;
  NAPI_THROW_IF_FAILED(env, napi_create_promise(env, &task->deferred_, &promise), Napi::Promise());
  napi_value resource_name = Napi::String::New(env, name);
  napi_status st = napi_create_threadsafe_function(env, nullptr, nullptr, resource_name, 0, 1, nullptr,
                                                   nullptr, task, Settle, &task->tsfn_);
  if (st != napi_ok) {
    napi_reject_deferred(env, task->deferred_, Napi::Error::New(env, "cannot create thread callback").Value());
    delete task;
    return Napi::Promise(env, promise);
  }
  try {
    std::thread([task] {
      task->Execute();
      napi_threadsafe_function tsfn = task->tsfn_;
      napi_call_threadsafe_function(tsfn, nullptr, napi_tsfn_blocking);
      napi_release_threadsafe_function(tsfn, napi_tsfn_release);
    }).detach();
  } catch (const std::system_error& e) {
    napi_release_threadsafe_function(task->tsfn_, napi_tsfn_release);
    napi_reject_deferred(env, task->deferred_, ErrnoError(env, e.code().value(), "pthread_create", "").Value());
    // The tsfn's context (task) is no longer referenced: Settle is never queued.
    delete task;
  }
  return Napi::Promise(env, promise);
}

void ThreadTask::Settle(napi_env raw_env, napi_value, void* context, void*) {
  ThreadTask* task = static_cast<ThreadTask*>(context);
  if (raw_env != nullptr) {
    Napi::Env env(raw_env);
    SettleDeferred(env, task->deferred_, task->error_, [&] { return task->Result(env); });
  }
  delete task;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t ArgInt64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() > i) {
    if (info[i].IsNumber()) {
      double d = info[i].As<Napi::Number>().DoubleValue();
      if (d == static_cast<double>(static_cast<int64_t>(d)) && d >= -9.2e18 && d <= 9.2e18)
        return static_cast<int64_t>(d);
    } else if (info[i].IsBigInt()) {
      bool lossless = false;
      int64_t v = info[i].As<Napi::BigInt>().Int64Value(&lossless);
      if (lossless) return v;
    }
  }
  throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be an integer");
}

uint64_t ArgBigUint64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() > i) {
    if (info[i].IsBigInt()) {
      bool lossless = false;
      uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
      if (lossless) return v;
    } else if (info[i].IsNumber()) {
      double d = info[i].As<Napi::Number>().DoubleValue();
      if (d >= 0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<uint64_t>(d)))
        return static_cast<uint64_t>(d);
    }
  }
  throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a non-negative bigint");
}

}  // namespace qga
