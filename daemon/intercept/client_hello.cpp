#include "daemon/intercept/client_hello.hpp"

namespace customs::daemon::intercept {
namespace {

constexpr std::uint8_t record_handshake = 0x16;
constexpr std::uint8_t handshake_client_hello = 0x01;
constexpr std::size_t record_header = 5;
constexpr std::size_t max_plaintext = 16384;  // 2^14, RFC 8446 section 5.1
constexpr std::uint16_t ext_server_name = 0;
constexpr std::uint16_t ext_alpn = 16;
constexpr std::uint16_t ext_supported_versions = 43;

// A bounds-checked reader over one buffer; any read past the end sets `bad`.
class cursor {
 public:
  explicit cursor(std::string_view b) noexcept : b_(b) {}
  [[nodiscard]] bool bad() const noexcept { return bad_; }
  [[nodiscard]] bool done() const noexcept { return pos_ == b_.size(); }
  [[nodiscard]] std::size_t left() const noexcept { return b_.size() - pos_; }
  std::uint32_t u8() noexcept { return take(1); }
  std::uint32_t u16() noexcept { return take(2); }
  std::uint32_t u24() noexcept { return take(3); }
  std::string_view bytes(std::size_t n) noexcept {
    if (bad_ || left() < n) {
      bad_ = true;
      return {};
    }
    const auto s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::uint32_t take(std::size_t n) noexcept {
    if (bad_ || left() < n) {
      bad_ = true;
      return 0;
    }
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b_[pos_ + i]);
    pos_ += n;
    return v;
  }
  std::string_view b_;
  std::size_t pos_ = 0;
  bool bad_ = false;
};

bool parse_server_name(std::string_view data, client_hello& out) noexcept {
  cursor c(data);
  cursor list(c.bytes(c.u16()));
  if (c.bad() || !c.done()) return false;
  bool host_seen = false;
  while (!list.done()) {
    const std::uint32_t type = list.u8();
    const std::string_view name = list.bytes(list.u16());
    if (list.bad()) return false;
    if (type != 0) continue;  // unknown name types are skipped (RFC 6066)
    if (host_seen || name.empty() || name.size() > 255) return false;  // one host_name at most
    host_seen = true;
    try {
      out.server_name.assign(name);
    } catch (...) {
      return false;
    }
  }
  out.has_server_name = host_seen;
  return true;
}

bool parse_alpn(std::string_view data, client_hello& out) noexcept {
  cursor c(data);
  cursor list(c.bytes(c.u16()));
  if (c.bad() || !c.done()) return false;
  while (!list.done()) {
    const std::string_view proto = list.bytes(list.u8());
    if (list.bad() || proto.empty()) return false;
    if (out.alpn.size() >= 64) return false;
    try {
      out.alpn.emplace_back(proto);
    } catch (...) {
      return false;
    }
  }
  return true;
}

bool parse_supported_versions(std::string_view data, client_hello& out) noexcept {
  cursor c(data);
  const std::uint32_t n = c.u8();
  if (n % 2 != 0) return false;
  cursor list(c.bytes(n));
  if (c.bad() || !c.done()) return false;
  while (!list.done()) {
    if (list.u16() == 0x0304) out.offers_tls13 = true;
  }
  return !list.bad();
}

bool parse_body(std::string_view body, client_hello& out) noexcept {
  cursor c(body);
  out.legacy_version = static_cast<std::uint16_t>(c.u16());
  (void)c.bytes(32);  // random
  const std::uint32_t sid = c.u8();
  if (sid > 32) return false;
  (void)c.bytes(sid);
  const std::uint32_t suites = c.u16();
  if (suites < 2 || suites % 2 != 0) return false;
  (void)c.bytes(suites);
  const std::uint32_t compressions = c.u8();
  if (compressions < 1) return false;
  (void)c.bytes(compressions);
  if (c.bad()) return false;
  if ((out.legacy_version >> 8) != 3) return false;
  if (c.done()) return true;  // no extensions (allowed before TLS 1.3)
  cursor exts(c.bytes(c.u16()));
  if (c.bad() || !c.done()) return false;
  std::uint32_t seen_mask = 0;  // the three extensions read here may appear once each
  while (!exts.done()) {
    const std::uint32_t type = exts.u16();
    const std::string_view data = exts.bytes(exts.u16());
    if (exts.bad()) return false;
    std::uint32_t bit = 0;
    bool ok = true;
    switch (type) {
      case ext_server_name: bit = 1; ok = parse_server_name(data, out); break;
      case ext_alpn: bit = 2; ok = parse_alpn(data, out); break;
      case ext_supported_versions: bit = 4; ok = parse_supported_versions(data, out); break;
      default: break;
    }
    if (!ok) return false;
    if (bit != 0) {
      if (seen_mask & bit) return false;  // the same extension twice (RFC 8446 section 4.2)
      seen_mask |= bit;
    }
  }
  return true;
}

}  // namespace

hello_result parse_client_hello(std::string_view bytes, std::size_t limit, client_hello& out) noexcept {
  out = client_hello{};
  if (!bytes.empty() && static_cast<unsigned char>(bytes[0]) != record_handshake) return {hello_status::not_tls, 0};
  std::string handshake;  // the handshake message, reassembled from the records
  std::size_t pos = 0;
  for (;;) {
    if (pos + record_header > limit) return {hello_status::too_large, 0};
    if (bytes.size() < pos + record_header) return {hello_status::need_more, pos + record_header};
    const auto* h = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
    if (h[0] != record_handshake) return {hello_status::invalid, 0};
    if (h[1] != 3) return {pos == 0 ? hello_status::not_tls : hello_status::invalid, 0};
    const std::size_t len = (static_cast<std::size_t>(h[3]) << 8) | h[4];
    if (len == 0 || len > max_plaintext) return {hello_status::invalid, 0};
    const std::size_t end = pos + record_header + len;
    if (end > limit) return {hello_status::too_large, 0};
    if (bytes.size() < end) return {hello_status::need_more, end};
    try {
      handshake.append(bytes.data() + pos + record_header, len);
    } catch (...) {
      return {hello_status::too_large, 0};
    }
    pos = end;
    if (handshake.size() < 4) continue;
    if (static_cast<unsigned char>(handshake[0]) != handshake_client_hello) return {hello_status::invalid, 0};
    const std::size_t msg = (static_cast<std::size_t>(static_cast<unsigned char>(handshake[1])) << 16) |
                            (static_cast<std::size_t>(static_cast<unsigned char>(handshake[2])) << 8) |
                            static_cast<unsigned char>(handshake[3]);
    // Every byte of the message still to come needs at least its own record
    // header's worth of room: fail early when it cannot fit.
    if (4 + msg > limit) return {hello_status::too_large, 0};
    if (handshake.size() < 4 + msg) continue;
    // Another handshake message after the hello in the same record is not
    // something a client sends before the server answered.
    if (handshake.size() > 4 + msg) return {hello_status::invalid, 0};
    if (!parse_body(std::string_view(handshake).substr(4, msg), out)) {
      out = client_hello{};
      return {hello_status::invalid, 0};
    }
    out.bytes = pos;
    return {hello_status::complete, 0};
  }
}

std::string_view to_string(hello_status s) noexcept {
  switch (s) {
    case hello_status::need_more: return "need_more";
    case hello_status::complete: return "complete";
    case hello_status::not_tls: return "not_tls";
    case hello_status::invalid: return "invalid";
    case hello_status::too_large: return "too_large";
  }
  return "invalid";
}

std::string alert_record(std::uint8_t description) {
  // content type alert (21), legacy version TLS 1.2, length 2, level fatal (2).
  return std::string{'\x15', '\x03', '\x03', '\x00', '\x02', '\x02', static_cast<char>(description)};
}

}  // namespace customs::daemon::intercept
