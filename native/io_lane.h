// The I/O lane: one dedicated thread for the file data path (guest-file-read/-write), which the
// JS thread hands a job to and then waits for, spinning, for a bounded time.
//
// Why: on a VM every cross-thread hand-off through a sleeping thread costs an inter-processor
// wake-up; measured here, a libuv pool round trip (condvar + eventfd) takes ~100 µs while the
// same hand-off between two spinning threads takes < 1 µs. A 64 KiB write does ~30 µs of work,
// so the hand-off, not the work, was its cost. The lane keeps its thread awake for a short
// while after each job and the JS thread waits a short while for the result, so back-to-back
// requests pay no wake-up at all. The system call still never runs on the JS thread: a job
// that outlasts the wait (a large read, a write to a frozen filesystem) completes later
// through a Promise, and while it is outstanding further jobs go to libuv's pool as before.
#pragma once

#include <napi.h>

#include <atomic>

#include "common.h"

namespace qga {

// Work that can run on the lane or on libuv's pool: Execute() off the JS thread, Result() on it.
class LaneJob {
 public:
  virtual ~LaneJob() = default;
  virtual void Execute() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  TaskError error_;

  // The lane's bookkeeping (io_lane.cc only).
  std::atomic<int> state_{0};  // 0 pending, 1 done, 2 the JS thread stopped waiting
  napi_deferred deferred_ = nullptr;
};

// Jobs expected to take longer than this go to libuv's pool: waiting for them would only burn the
// JS thread's time, and the lane thread's idle spin would then take a CPU from the host's client
// just when it reads the reply (measured: 1 MiB reads 0.85×, 1 MiB writes 0.77× the pool's speed).
constexpr size_t kLaneMaxBytes = 256 * 1024;

// Runs `job` (ownership is taken) and returns a Promise of its Result(): settled already when the
// lane finished it within the wait, later otherwise. `bytes` is the data the job moves; above
// kLaneMaxBytes, or when the lane is busy, disabled (NODE_QGA_LANE_SPIN_US=0) or cannot start,
// the job runs on libuv's pool.
Napi::Promise RunJob(Napi::Env env, LaneJob* job, const char* name, size_t bytes);

void InitIoLane(Napi::Env env, Napi::Object exports);

}  // namespace qga
