// crypt(3) hashing for guest-set-user-password via libxcrypt's reentrant API. The pool
// thread matters: yescrypt is deliberately slow (tens of milliseconds).
#include <crypt.h>
#include <errno.h>
#include <string.h>

#include <memory>
#include <string>

#include "common.h"

namespace qga {

namespace {

// A bare method prefix ("$6$", "$y$", "$2b$") asks for a fresh salt of that method; anything
// longer is a complete setting or an existing hash (to verify a password against it).
bool IsMethodPrefix(const std::string& s) {
  if (s.size() < 2 || s.front() != '$' || s.back() != '$') return false;
  return s.find('$', 1) == s.size() - 1;
}

class CryptWorker : public PromiseWorker {
 public:
  CryptWorker(Napi::Env env, std::string password, std::string setting)
      : PromiseWorker(env, "qga:crypt"), password_(std::move(password)), setting_(std::move(setting)) {}
  ~CryptWorker() override {
    // Clear the clear-text password from memory.
    volatile char* p = &password_[0];
    for (size_t i = 0; i < password_.size(); i++) p[i] = 0;
  }

 private:
  void Execute() override {
    std::string setting = setting_;
    if (setting.empty() || IsMethodPrefix(setting)) {
      char salt[CRYPT_GENSALT_OUTPUT_SIZE];
      errno = 0;
      if (crypt_gensalt_rn(setting.empty() ? nullptr : setting.c_str(), 0, nullptr, 0, salt, sizeof salt) == nullptr)
        return error_.SetErrno(errno != 0 ? errno : EINVAL, "crypt_gensalt_rn");
      setting = salt;
    }
    std::unique_ptr<struct crypt_data> data(new struct crypt_data());
    errno = 0;
    const char* hash = crypt_r(password_.c_str(), setting.c_str(), data.get());
    if (hash == nullptr || hash[0] == '*') return error_.SetErrno(errno != 0 ? errno : EINVAL, "crypt_r");
    result_ = hash;
    explicit_bzero(data.get(), sizeof(struct crypt_data));
  }
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, result_); }

  std::string password_;
  std::string setting_;
  std::string result_;
};

// crypt(password, settingOrPrefix?) -> Promise<string>
Napi::Value Crypt(const Napi::CallbackInfo& info) {
  std::string password = ArgString(info, 0, "password");
  if (password.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), "password must not contain NUL");
  std::string setting;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) setting = ArgString(info, 1, "setting");
  return (new CryptWorker(info.Env(), std::move(password), std::move(setting)))->Queue();
}

}  // namespace

void InitCrypt(Napi::Env env, Napi::Object exports) {
  exports.Set("crypt", Napi::Function::New(env, Crypt, "crypt"));
  const char* preferred = crypt_preferred_method();
  exports.Set("cryptPreferredMethod", Napi::String::New(env, preferred != nullptr ? preferred : ""));
}

}  // namespace qga
