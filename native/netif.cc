// getifaddrs(3) for guest-network-get-interfaces. os.networkInterfaces() (libuv) drops every
// interface that is not both up and running, and with it the IPv4 addresses of down
// interfaces, which qemu-ga reports; the whole list is needed in getifaddrs order.
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "common.h"

namespace qga {

namespace {

enum class Family { kNone, kPacket, kIpv4, kIpv6, kOther };

struct Entry {
  std::string name;
  Family family = Family::kNone;
  std::string address;        // inet_ntop text (ipv4/ipv6)
  int prefix = -1;            // set bits of the netmask; -1 = no netmask
  unsigned char hw[6] = {0};  // packet: first 6 bytes of the link address, zero-padded
};

int PopCount(const unsigned char* bytes, size_t n) {
  int bits = 0;
  for (size_t i = 0; i < n; i++) bits += __builtin_popcount(bytes[i]);
  return bits;
}

class GetIfaddrsWorker : public PromiseWorker {
 public:
  explicit GetIfaddrsWorker(Napi::Env env) : PromiseWorker(env, "qga:getifaddrs") {}

 private:
  // A netlink dump: quick, but it grows with the number of interfaces (container hosts), so
  // it runs on the pool rather than the event loop.
  void Execute() override {
    struct ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) {
      error_.SetErrno(errno, "getifaddrs");
      return;
    }
    for (struct ifaddrs* ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
      if (ifa->ifa_name == nullptr) continue;
      Entry e;
      e.name = ifa->ifa_name;
      const struct sockaddr* sa = ifa->ifa_addr;
      // glibc leaves ifa_addr NULL for links without an address (tun): still an interface.
      if (sa == nullptr) {
        e.family = Family::kNone;
      } else if (sa->sa_family == AF_PACKET) {
        e.family = Family::kPacket;
        const auto* ll = reinterpret_cast<const struct sockaddr_ll*>(sa);
        size_t n = ll->sll_halen < 6 ? ll->sll_halen : 6;
        memcpy(e.hw, ll->sll_addr, n);
      } else if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        bool v4 = sa->sa_family == AF_INET;
        e.family = v4 ? Family::kIpv4 : Family::kIpv6;
        const void* addr = v4 ? static_cast<const void*>(&reinterpret_cast<const struct sockaddr_in*>(sa)->sin_addr)
                              : static_cast<const void*>(&reinterpret_cast<const struct sockaddr_in6*>(sa)->sin6_addr);
        char text[INET6_ADDRSTRLEN];
        if (inet_ntop(sa->sa_family, addr, text, sizeof text) == nullptr) {
          error_.SetErrno(errno, "inet_ntop");
          break;
        }
        e.address = text;
        if (ifa->ifa_netmask != nullptr) {
          if (v4) {
            const auto* m = reinterpret_cast<const struct sockaddr_in*>(ifa->ifa_netmask);
            e.prefix = PopCount(reinterpret_cast<const unsigned char*>(&m->sin_addr), 4);
          } else {
            const auto* m = reinterpret_cast<const struct sockaddr_in6*>(ifa->ifa_netmask);
            e.prefix = PopCount(m->sin6_addr.s6_addr, 16);
          }
        }
      } else {
        e.family = Family::kOther;
      }
      entries_.push_back(std::move(e));
    }
    freeifaddrs(list);
  }

  Napi::Value Result(Napi::Env env) override {
    static const char* const kFamilies[] = {"none", "packet", "ipv4", "ipv6", "other"};
    Napi::Array out = Napi::Array::New(env, entries_.size());
    uint32_t i = 0;
    for (const Entry& e : entries_) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", Napi::String::New(env, e.name));
      o.Set("family", Napi::String::New(env, kFamilies[static_cast<int>(e.family)]));
      if (e.family == Family::kIpv4 || e.family == Family::kIpv6) {
        o.Set("address", Napi::String::New(env, e.address));
        if (e.prefix >= 0) o.Set("prefix", Napi::Number::New(env, e.prefix));
      } else if (e.family == Family::kPacket) {
        char hw[18];
        snprintf(hw, sizeof hw, "%02x:%02x:%02x:%02x:%02x:%02x", e.hw[0], e.hw[1], e.hw[2], e.hw[3], e.hw[4], e.hw[5]);
        o.Set("hwaddr", Napi::String::New(env, hw));
      }
      out.Set(i++, o);
    }
    return out;
  }

  std::vector<Entry> entries_;
};

// getifaddrs() -> Promise<Array<{name, family, address?, prefix?, hwaddr?}>>, in getifaddrs order.
Napi::Value GetIfaddrs(const Napi::CallbackInfo& info) {
  return (new GetIfaddrsWorker(info.Env()))->Queue();
}

}  // namespace

void InitNetif(Napi::Env env, Napi::Object exports) {
  exports.Set("getifaddrs", Napi::Function::New(env, GetIfaddrs, "getifaddrs"));
}

}  // namespace qga
