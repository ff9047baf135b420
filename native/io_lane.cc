#include "io_lane.h"

#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>

namespace qga {

namespace {

constexpr int kPending = 0;
constexpr int kDone = 1;
constexpr int kAbandoned = 2;

int64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// One turn of a spin-wait. It yields the CPU: the scheduler often wakes the other thread on the
// CPU of the one that woke it, and a plain busy loop would then keep it from running at all.
// With nothing else runnable here, sched_yield returns at once.
inline void SpinTurn() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
  sched_yield();
}

int64_t EnvMicros(const char* name, int64_t fallback) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long long n = strtoll(v, &end, 10);
  if (*end != '\0' || n < 0 || n > 100000) return fallback;
  return n;
}

void Settle(Napi::Env env, napi_deferred deferred, LaneJob* job) {
  SettleDeferred(env, deferred, job->error_, [&] { return job->Result(env); });
}

// The pool path: the same job as a libuv work item.
class PoolJob : public Napi::AsyncWorker {
 public:
  PoolJob(Napi::Env env, LaneJob* job, const char* name) : Napi::AsyncWorker(env, name), job_(job) {}
  ~PoolJob() override { delete job_; }
  Napi::Promise Queue() {
    napi_value promise;
    NAPI_THROW_IF_FAILED(Env(), napi_create_promise(Env(), &deferred_, &promise), Napi::Promise());
    Napi::AsyncWorker::Queue();
    return Napi::Promise(Env(), promise);
  }

 private:
  void Execute() override { job_->Execute(); }
  void OnOK() override { Settle(Env(), deferred_, job_); }
  void OnError(const Napi::Error& e) override { napi_reject_deferred(Env(), deferred_, e.Value()); }
  LaneJob* job_;
  napi_deferred deferred_ = nullptr;
};

struct LaneStats {
  double waited = 0;     // finished within the JS thread's wait
  double later = 0;      // outlasted it, settled through the thread-safe function
  double pool = 0;       // sent to libuv's pool (lane busy, disabled, or not this env's)
};

class IoLane {
 public:
  // The lane of the process, bound to the first environment that uses it (nullptr: disabled).
  static IoLane* For(Napi::Env env) {
    static IoLane* lane = Create(env);
    if (lane == nullptr || lane->env_ != env || lane->closed_) return nullptr;
    return lane;
  }

  // JS thread only. Nullptr when a job is still outstanding: the caller uses the pool.
  Napi::Promise Run(Napi::Env env, LaneJob* job) {
    busy_ = true;
    slot_.store(job, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mutex_);
    }
    wake_.notify_one();  // cheap when the thread is spinning (no waiter)

    const int64_t deadline = NowNs() + wait_ns_;
    while (job->state_.load(std::memory_order_acquire) == kPending && NowNs() < deadline) SpinTurn();

    napi_deferred deferred;
    napi_value promise;
    if (napi_create_promise(env, &deferred, &promise) != napi_ok) {
      // Cannot happen short of running out of memory; wait for the job rather than lose it.
      while (job->state_.load(std::memory_order_acquire) == kPending) SpinTurn();
      busy_ = false;
      delete job;
      throw Napi::Error::New(env, "cannot create a promise");
    }
    int expected = kPending;
    job->deferred_ = deferred;
    if (job->state_.compare_exchange_strong(expected, kAbandoned, std::memory_order_acq_rel)) {
      // Still running: the lane thread hands it back through the thread-safe function.
      stats_.later++;
      napi_ref_threadsafe_function(env, tsfn_);
      return Napi::Promise(env, promise);
    }
    stats_.waited++;
    busy_ = false;
    Settle(env, deferred, job);
    delete job;
    return Napi::Promise(env, promise);
  }

  bool busy() const { return busy_; }
  LaneStats& stats() { return stats_; }
  int64_t wait_us() const { return wait_ns_ / 1000; }
  int64_t idle_us() const { return idle_ns_ / 1000; }

 private:
  IoLane(Napi::Env env, int64_t wait_us, int64_t idle_us) : env_(env), wait_ns_(wait_us * 1000), idle_ns_(idle_us * 1000) {}

  static IoLane* Create(Napi::Env env) {
    int64_t wait_us = EnvMicros("NODE_QGA_LANE_SPIN_US", 500);
    int64_t idle_us = EnvMicros("NODE_QGA_LANE_IDLE_US", 500);
    if (wait_us == 0) return nullptr;
    auto* lane = new IoLane(env, wait_us, idle_us);  // never destroyed: its thread outlives the env
    napi_value name = Napi::String::New(env, "qga:ioLane");
    if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, lane, Deliver,
                                        &lane->tsfn_) != napi_ok) {
      delete lane;
      return nullptr;
    }
    napi_unref_threadsafe_function(env, lane->tsfn_);  // idle, it must not keep the process alive
    try {
      std::thread([lane] { lane->Loop(); }).detach();
    } catch (const std::system_error&) {
      napi_release_threadsafe_function(lane->tsfn_, napi_tsfn_abort);
      return nullptr;  // the lane object stays allocated: its tsfn may still reference it
    }
    napi_add_env_cleanup_hook(env, [](void* arg) { static_cast<IoLane*>(arg)->closed_ = true; }, lane);
    return lane;
  }

  // The lane thread: take a job, run it, hand it back; spin a while for the next one.
  void Loop() {
    for (;;) {
      LaneJob* job = Next();
      job->Execute();
      int expected = kPending;
      if (!job->state_.compare_exchange_strong(expected, kDone, std::memory_order_acq_rel))
        napi_call_threadsafe_function(tsfn_, job, napi_tsfn_blocking);
    }
  }

  LaneJob* Next() {
    const int64_t deadline = NowNs() + idle_ns_;
    do {
      LaneJob* job = slot_.exchange(nullptr, std::memory_order_acq_rel);
      if (job != nullptr) return job;
      SpinTurn();
    } while (NowNs() < deadline);
    std::unique_lock<std::mutex> lock(mutex_);
    LaneJob* job;
    wake_.wait(lock, [&] { return (job = slot_.exchange(nullptr, std::memory_order_acq_rel)) != nullptr; });
    return job;
  }

  // On the JS thread: a job that outlasted the wait is done.
  static void Deliver(napi_env raw_env, napi_value, void* context, void* data) {
    auto* lane = static_cast<IoLane*>(context);
    auto* job = static_cast<LaneJob*>(data);
    lane->busy_ = false;
    if (raw_env == nullptr) return;  // the environment is gone: so is everything the job refers to
    Napi::Env env(raw_env);
    Settle(env, job->deferred_, job);
    napi_unref_threadsafe_function(raw_env, lane->tsfn_);
    delete job;
  }

  Napi::Env env_;
  const int64_t wait_ns_;
  const int64_t idle_ns_;
  napi_threadsafe_function tsfn_ = nullptr;
  std::atomic<LaneJob*> slot_{nullptr};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool busy_ = false;    // JS thread only
  bool closed_ = false;  // the environment is being torn down
  LaneStats stats_;
};

LaneStats pool_stats;

// laneStats() -> {waited, later, pool, waitMicros, idleMicros, enabled}: for tests and benchmarks.
Napi::Value LaneStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  IoLane* lane = IoLane::For(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("enabled", Napi::Boolean::New(env, lane != nullptr));
  o.Set("waited", Napi::Number::New(env, lane ? lane->stats().waited : 0));
  o.Set("later", Napi::Number::New(env, lane ? lane->stats().later : 0));
  o.Set("pool", Napi::Number::New(env, pool_stats.pool));
  o.Set("waitMicros", Napi::Number::New(env, lane ? static_cast<double>(lane->wait_us()) : 0));
  o.Set("idleMicros", Napi::Number::New(env, lane ? static_cast<double>(lane->idle_us()) : 0));
  return o;
}

}  // namespace

Napi::Promise RunJob(Napi::Env env, LaneJob* job, const char* name, size_t bytes) {
  IoLane* lane = bytes <= kLaneMaxBytes ? IoLane::For(env) : nullptr;
  if (lane != nullptr && !lane->busy()) return lane->Run(env, job);
  pool_stats.pool++;
  auto* worker = new PoolJob(env, job, name);
  return worker->Queue();
}

void InitIoLane(Napi::Env env, Napi::Object exports) {
  exports.Set("laneStats", Napi::Function::New(env, LaneStatsJs, "laneStats"));
}

}  // namespace qga
