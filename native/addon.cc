// node-qga native addon: the export table. Each concern lives in its own file.
#include <napi.h>

namespace qga {
void InitFileIo(Napi::Env env, Napi::Object exports);
void InitFsIoctl(Napi::Env env, Napi::Object exports);
void InitClock(Napi::Env env, Napi::Object exports);
void InitCrypt(Napi::Env env, Napi::Object exports);
void InitPower(Napi::Env env, Napi::Object exports);
void InitVsock(Napi::Env env, Napi::Object exports);
void InitFdWatch(Napi::Env env, Napi::Object exports);
void InitNetif(Napi::Env env, Napi::Object exports);
void InitJsonScan(Napi::Env env, Napi::Object exports);
void InitIoLane(Napi::Env env, Napi::Object exports);

// Bumped whenever the JS-visible interface changes; the loader refuses a stale build.
constexpr int kAbiVersion = 1;
}  // namespace qga

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, qga::kAbiVersion));
  qga::InitFileIo(env, exports);
  qga::InitFsIoctl(env, exports);
  qga::InitClock(env, exports);
  qga::InitCrypt(env, exports);
  qga::InitPower(env, exports);
  qga::InitVsock(env, exports);
  qga::InitFdWatch(env, exports);
  qga::InitNetif(env, exports);
  qga::InitJsonScan(env, exports);
  qga::InitIoLane(env, exports);
  return exports;
}

NODE_API_MODULE(qga_native, Init)
