#pragma once
// Small HTTP/1.1 pieces of the relay: which headers are hop-by-hop (RFC 9110
// section 7.6.1), how a client's target maps to the upstream's, and how heads
// are written. Data plane: nothing here throws on input.

#include "daemon/filter.hpp"

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon {

// Headers that describe one connection and are never forwarded: Connection and
// every header it names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade and
// Proxy-*. Built once per message from its Connection header.
class hop_by_hop {
 public:
  explicit hop_by_hop(const boost::beast::http::fields& f);
  [[nodiscard]] bool contains(const boost::beast::http::fields::value_type& field) const noexcept;

 private:
  std::vector<std::string_view> named_;  // tokens of Connection (views into f)
};

[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;

// True when the origin-form target is acceptable to forward: starts with '/',
// no dot segments ("." / ".." also percent-encoded), no encoded '/', '\' or NUL,
// no raw '\' or control characters in the path.
[[nodiscard]] bool safe_target(std::string_view target) noexcept;

// "/openai/v1/chat?x=1" with prefix "/openai/" and base path "/base" gives
// "/base/v1/chat?x=1". The target must start with the prefix.
void map_target(std::string_view target, std::string_view prefix, std::string_view base_path,
                std::string& out);

// Appends "Name: value\r\n".
void append_header(std::string& out, std::string_view name, std::string_view value);

// True when `name` is among `set` (case-insensitive).
[[nodiscard]] bool named_in(std::string_view name, const std::vector<header_field>& set) noexcept;

// Content-Type is text/event-stream (parameters ignored).
[[nodiscard]] bool is_event_stream(std::string_view content_type) noexcept;

}  // namespace customs::daemon
