// libFuzzer target: what a forward listener parses before relaying anything
// (daemon/listen/proxy_request, proxy_auth). Input: byte 0 picks the parser,
// the rest is its input.
//   0: CONNECT head (limit 16 KiB)   1: authority (port required)
//   2: absolute-form target          3: Proxy-Authorization Basic value
//   4: proxy users file (control plane: config_error is its answer)
// Properties: never crashes; a complete head ends with CRLF CRLF within the
// input and the limit; a parsed authority has a port and a host; Basic
// credentials have a user without ':'.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/config.hpp"
#include "daemon/listen/proxy_auth.hpp"
#include "daemon/listen/proxy_request.hpp"

using namespace customs::daemon;
using namespace customs::daemon::listen;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: {
      constexpr std::size_t limit = 16 * 1024;
      proxy_head h;
      if (parse_proxy_head(in, limit, h) == head_status::complete) {
        if (h.length > in.size() || h.length > limit || h.length < 4) std::abort();
        if (in.substr(h.length - 4, 4) != "\r\n\r\n") std::abort();
        if (h.method.empty() || h.target.empty()) std::abort();
      }
      break;
    }
    case 1: {
      authority a;
      if (parse_authority(in, 0, a) && (a.port == 0 || a.host.empty())) std::abort();
      break;
    }
    case 2: {
      authority a;
      std::string origin;
      if (parse_absolute_http(in, a, origin) && (a.port == 0 || a.host.empty() || origin.empty() || origin[0] != '/')) {
        std::abort();
      }
      break;
    }
    case 3: {
      basic_credentials c;
      if (parse_basic_credentials(in, c) && (c.user.empty() || c.user.find(':') != std::string::npos)) std::abort();
      break;
    }
    case 4: {
      try {
        (void)proxy_users::parse(in, "users");
      } catch (const config_error&) {
      }
      break;
    }
  }
  return 0;
}
