// libFuzzer target: the ClientHello reader (daemon/intercept/client_hello).
// Input: byte 0 picks the limit (1 KiB .. 64 KiB), the rest is what a client
// sent first. Properties: never crashes; "complete" takes no more bytes than
// given and than the limit; "need_more" asks for more than it was given and no
// more than the limit; every prefix of a complete hello needs more or is the
// same hello.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/intercept/client_hello.hpp"

using namespace customs::daemon::intercept;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t limit = 1024u * (1u + data[0] % 64u);
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  client_hello h;
  const hello_result r = parse_client_hello(in, limit, h);
  if (r.status == hello_status::complete) {
    if (h.bytes > in.size() || h.bytes > limit || h.bytes == 0) std::abort();
    if (h.server_name.size() > 255) std::abort();
    // Cut anywhere before its end: never complete with fewer bytes.
    for (std::size_t cut = 0; cut < h.bytes; cut += 1 + h.bytes / 16) {
      client_hello p;
      const hello_result rp = parse_client_hello(in.substr(0, cut), limit, p);
      if (rp.status == hello_status::complete) std::abort();
      if (rp.status == hello_status::need_more && (rp.need <= cut || rp.need > h.bytes)) std::abort();
    }
  } else if (r.status == hello_status::need_more) {
    if (r.need <= in.size() || r.need > limit) std::abort();
  }
  return 0;
}
