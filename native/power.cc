// guest-shutdown mechanism: sync(2) then reboot(2). On its own thread because sync() can
// block for a long time on slow or stuck storage.
#include <errno.h>
#include <sys/reboot.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace qga {

namespace {

class RebootTask : public ThreadTask {
 public:
  explicit RebootTask(int how) : how_(how) {}

 private:
  void Execute() override {
    sync();
    if (reboot(how_) != 0) error_.SetErrno(errno, "reboot");
  }
  int how_;
};

// reboot('powerdown' | 'halt' | 'reboot') -> Promise that only settles when reboot(2) failed.
Napi::Value Reboot(const Napi::CallbackInfo& info) {
  std::string mode = ArgString(info, 0, "mode");
  int how;
  if (mode == "powerdown") how = RB_POWER_OFF;
  else if (mode == "halt") how = RB_HALT_SYSTEM;
  else if (mode == "reboot") how = RB_AUTOBOOT;
  else throw Napi::TypeError::New(info.Env(), "mode must be 'powerdown', 'halt' or 'reboot'");
  return ThreadTask::Start(info.Env(), new RebootTask(how), "qga:reboot");
}

}  // namespace

void InitPower(Napi::Env env, Napi::Object exports) {
  exports.Set("reboot", Napi::Function::New(env, Reboot, "reboot"));
}

}  // namespace qga
