// libFuzzer target: HTTP/1.1 framing as customsd's session reads it
// (daemon/http_framing.hpp): the raw request-head scan, Beast's parser with
// customsd's limits and checks, chunked bodies, trailers, chunk extensions,
// transfer codings, and the read-buffer bound.
//
// Input: byte 0 selects the direction (bit 0: request / response) and the
// limits (bit 1: small limits, so that every bound is reached; bit 2: a raised
// header_bytes); the rest is what the peer sent.
// Properties: never crashes or throws; a message read whole has at most
// header_fields header fields, none bigger than max_field_bytes, no trailer
// among them, trailers and extensions within their bounds, a Transfer-Encoding
// (if any) that is exactly "chunked", and a request has one valid Host (1.1).
#include "daemon/http_framing.hpp"
#include "daemon/http_util.hpp"

#include <boost/beast/http/field.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <string_view>

namespace {

namespace http = boost::beast::http;
using customs::daemon::framing_limits;

framing_limits limits_for(std::uint8_t selector) {
  framing_limits l;
  if (selector & 2) {
    l.header_bytes = 1024;
    l.header_fields = 8;
    l.target_bytes = 256;
    l.trailer_bytes = 64;
    l.chunk_extension_bytes = 32;
    l.body_bytes = 4096;
  } else {
    l.body_bytes = 1 << 20;
  }
  if (selector & 4) l.header_bytes = 256 * 1024;
  return l;
}

template <class Fields>
void check_fields(const Fields& fields, const framing_limits& l) {
  std::size_t n = 0;
  for (const auto& f : fields) {
    ++n;
    if (f.name_string().size() + f.value().size() > customs::daemon::max_field_bytes) std::abort();
  }
  if (n > l.header_fields) std::abort();
  const auto te = fields.equal_range(http::field::transfer_encoding);
  for (auto it = te.first; it != te.second; ++it) {
    std::string_view v(it->value().data(), it->value().size());
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    if (!customs::daemon::iequals(v, "chunked")) std::abort();
  }
}

template <class Parser>
void check_message(const Parser& p, const framing_limits& l) {
  check_fields(p.get().base(), l);
  if (p.trailer_bytes() > l.trailer_bytes) std::abort();
  if (p.chunk_extension_bytes() > l.chunk_extension_bytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const framing_limits l = limits_for(selector);
  try {
    if ((selector & 1) == 0) {
      customs::daemon::request_parser p(l);
      const auto r = customs::daemon::parse_request(bytes, l, p);
      if (r.consumed > bytes.size()) std::abort();
      if (r.done) {
        check_message(p, l);
        if (l.body_bytes && p.get().body().size() > *l.body_bytes) std::abort();
        const auto hosts = p.get().base().equal_range(http::field::host);
        const auto n = std::distance(hosts.first, hosts.second);
        if (n > 1 || (n == 0 && p.get().version() >= 11)) std::abort();
        if (p.get().target().size() > l.target_bytes) std::abort();
      }
    } else {
      customs::daemon::string_response_parser p(l);
      const auto r = customs::daemon::parse_response(bytes, l, p);
      if (r.consumed > bytes.size()) std::abort();
      if (r.done) check_message(p, l);
    }
  } catch (...) {
    // The data plane never throws on input.
    std::abort();
  }
  return 0;
}
