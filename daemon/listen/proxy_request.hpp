#pragma once
// What a forward listener reads from a client before anything is relayed: the
// head of a CONNECT request (RFC 9110 section 9.3.6), authorities
// ("host:port"), absolute-form http:// targets, and Proxy-Authorization Basic
// credentials (RFC 7617). Pure parsers of untrusted bytes: data plane, never
// throw, every input bounded by the caller's limit.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace customs::daemon::listen {

enum class head_status : std::uint8_t {
  incomplete,  // no blank line yet, and under the limit: read more
  complete,    // the head ends at `length`
  invalid,     // not an HTTP/1.x request head
  too_large,   // no blank line within the limit
};

// A request head as received (views into the caller's bytes).
struct proxy_head {
  std::string_view method;
  std::string_view target;
  unsigned version = 11;  // 10 or 11
  // The Proxy-Authorization value (blanks around it removed); empty when absent.
  // Sent twice: the head is invalid.
  std::string_view proxy_authorization;
  std::size_t length = 0;  // bytes of the head, blank line included
};

// Parses a request line and header fields ending with CRLF CRLF, looking at no
// more than `limit` bytes. Field names are tokens, values have no control
// characters but tab; obsolete line folding and bare LF are invalid.
[[nodiscard]] head_status parse_proxy_head(std::string_view bytes, std::size_t limit, proxy_head& out) noexcept;

struct authority {
  std::string host;  // lower-case name, or an IP literal without brackets
  std::uint16_t port = 0;
  bool ip_literal = false;
};

// "host:port", "[v6]:port" (the CONNECT request-target, RFC 9110 section 7.2).
// The port is required when default_port is 0, else it defaults to it. Host
// names are checked as DNS names (normalize_host); userinfo is refused.
[[nodiscard]] bool parse_authority(std::string_view s, std::uint16_t default_port, authority& out) noexcept;

// "http://authority/path?query" (absolute-form, RFC 9112 section 3.2.2): the
// authority and the origin-form target ("/" when the path is empty). https and
// other schemes are refused (clients use CONNECT for them).
[[nodiscard]] bool parse_absolute_http(std::string_view target, authority& out, std::string& origin_form) noexcept;

struct basic_credentials {
  std::string user;
  std::string password;
};

// "Basic <base64(user:password)>" (scheme case-insensitive). The user may not
// contain ':' or control characters; the decoded text is at most 1024 bytes.
[[nodiscard]] bool parse_basic_credentials(std::string_view value, basic_credentials& out) noexcept;

}  // namespace customs::daemon::listen
