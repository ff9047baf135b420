// guest-set-time mechanisms: settimeofday(2), and the RTC ioctls that replace `hwclock -w/-s`
// on guests without hwclock. The UTC/LOCAL choice is made by the caller (it reads /etc/adjtime).
#include <errno.h>
#include <fcntl.h>
#include <linux/rtc.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace qga {

namespace {

class SetSystemTimeWorker : public PromiseWorker {
 public:
  SetSystemTimeWorker(Napi::Env env, int64_t ns) : PromiseWorker(env, "qga:setSystemTime"), ns_(ns) {}

 private:
  void Execute() override {
    struct timeval tv;
    tv.tv_sec = static_cast<time_t>(ns_ / 1000000000);
    tv.tv_usec = static_cast<suseconds_t>((ns_ % 1000000000) / 1000);
    if (settimeofday(&tv, nullptr) != 0) error_.SetErrno(errno, "settimeofday");
  }
  int64_t ns_;
};

// One RTC ioctl (RTC_RD_TIME or RTC_SET_TIME) on the device, opened for just this call. False,
// with the error set ("open" or the ioctl's name, and the path), when either step failed.
bool RtcIoctl(TaskError& error, const std::string& path, unsigned long request, const char* name, struct rtc_time* rt) {
  int fd;
  do {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    error.SetErrno(errno, "open", path);
    return false;
  }
  int r = ioctl(fd, request, rt);
  int saved = errno;
  close(fd);
  if (r != 0) error.SetErrno(saved, name, path);
  return r == 0;
}

// struct tm and struct rtc_time name the calendar fields alike: copies the six of a date and time.
template <typename From, typename To>
void CopyDateTime(const From& from, To* to) {
  to->tm_sec = from.tm_sec;
  to->tm_min = from.tm_min;
  to->tm_hour = from.tm_hour;
  to->tm_mday = from.tm_mday;
  to->tm_mon = from.tm_mon;
  to->tm_year = from.tm_year;
}

// rtcWrite(devicePath, local): system time -> RTC, broken down in UTC or local time.
class RtcWriteWorker : public PromiseWorker {
 public:
  RtcWriteWorker(Napi::Env env, std::string path, bool local)
      : PromiseWorker(env, "qga:rtcWrite"), path_(std::move(path)), local_(local) {}

 private:
  void Execute() override {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (local_) localtime_r(&now.tv_sec, &tm);
    else gmtime_r(&now.tv_sec, &tm);
    struct rtc_time rt;
    memset(&rt, 0, sizeof rt);
    CopyDateTime(tm, &rt);
    rt.tm_wday = tm.tm_wday;
    rt.tm_yday = tm.tm_yday;
    rt.tm_isdst = 0;
    RtcIoctl(error_, path_, RTC_SET_TIME, "ioctl(RTC_SET_TIME)", &rt);
  }
  std::string path_;
  bool local_;
};

// rtcRead(devicePath, local) -> bigint nanoseconds since the epoch (whole seconds).
class RtcReadWorker : public PromiseWorker {
 public:
  RtcReadWorker(Napi::Env env, std::string path, bool local)
      : PromiseWorker(env, "qga:rtcRead"), path_(std::move(path)), local_(local) {}

 private:
  void Execute() override {
    struct rtc_time rt;
    memset(&rt, 0, sizeof rt);
    if (!RtcIoctl(error_, path_, RTC_RD_TIME, "ioctl(RTC_RD_TIME)", &rt)) return;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    CopyDateTime(rt, &tm);
    tm.tm_isdst = -1;  // local: let the zone rules decide
    time_t t = local_ ? mktime(&tm) : timegm(&tm);
    if (t == static_cast<time_t>(-1)) return error_.SetErrno(EINVAL, "mktime", path_);
    seconds_ = static_cast<int64_t>(t);
  }
  Napi::Value Result(Napi::Env env) override { return Napi::BigInt::New(env, seconds_ * 1000000000); }
  std::string path_;
  bool local_;
  int64_t seconds_ = 0;
};

Napi::Value SetSystemTime(const Napi::CallbackInfo& info) {
  int64_t ns = ArgInt64(info, 0, "ns");
  if (ns < 0) throw Napi::RangeError::New(info.Env(), "argument 'ns' must not be negative");
  return (new SetSystemTimeWorker(info.Env(), ns))->Queue();
}

bool ArgLocal(const Napi::CallbackInfo& info, size_t i) { return info.Length() > i && info[i].ToBoolean().Value(); }

Napi::Value RtcWrite(const Napi::CallbackInfo& info) {
  return (new RtcWriteWorker(info.Env(), ArgString(info, 0, "devicePath"), ArgLocal(info, 1)))->Queue();
}

Napi::Value RtcRead(const Napi::CallbackInfo& info) {
  return (new RtcReadWorker(info.Env(), ArgString(info, 0, "devicePath"), ArgLocal(info, 1)))->Queue();
}

}  // namespace

void InitClock(Napi::Env env, Napi::Object exports) {
  exports.Set("setSystemTime", Napi::Function::New(env, SetSystemTime, "setSystemTime"));
  exports.Set("rtcWrite", Napi::Function::New(env, RtcWrite, "rtcWrite"));
  exports.Set("rtcRead", Napi::Function::New(env, RtcRead, "rtcRead"));
}

}  // namespace qga
