#include "daemon/http_util.hpp"

#include <boost/beast/http/rfc7230.hpp>

#include <cctype>

namespace customs::daemon {
namespace http = boost::beast::http;

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

hop_by_hop::hop_by_hop(const http::fields& f) {
  const auto range = f.equal_range(http::field::connection);
  for (auto it = range.first; it != range.second; ++it) {
    for (const auto& token : http::token_list{it->value()}) named_.emplace_back(token.data(), token.size());
  }
}

bool hop_by_hop::contains(const http::fields::value_type& field) const noexcept {
  switch (field.name()) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
    case http::field::proxy_connection:
    case http::field::proxy_authenticate:
    case http::field::proxy_authorization:
      return true;
    default:
      break;
  }
  const std::string_view name(field.name_string().data(), field.name_string().size());
  if (name.size() >= 6 && iequals(name.substr(0, 6), "proxy-")) return true;
  for (auto t : named_) {
    if (iequals(t, name)) return true;
  }
  return false;
}

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool safe_target(std::string_view target) noexcept {
  if (target.empty() || target.front() != '/') return false;
  const std::string_view path = target.substr(0, target.find_first_of("?#"));
  // Walk segments, decoding %xx only to recognise dot segments.
  std::size_t i = 1;
  std::string seg;
  while (true) {
    seg.clear();
    while (i < path.size() && path[i] != '/') {
      char c = path[i];
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') return false;
      if (c == '%') {
        if (i + 2 >= path.size()) return false;
        const int h = hex_value(path[i + 1]);
        const int l = hex_value(path[i + 2]);
        if (h < 0 || l < 0) return false;
        c = static_cast<char>(h * 16 + l);
        if (c == '/' || c == '\\' || c == '\0') return false;
        i += 2;
      }
      seg += c;
      ++i;
    }
    if (seg == "." || seg == "..") return false;
    if (i >= path.size()) break;
    ++i;  // the '/'
  }
  for (unsigned char c : target) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

void map_target(std::string_view target, std::string_view prefix, std::string_view base_path,
                std::string& out) {
  out.clear();
  out.reserve(base_path.size() + target.size());
  out += base_path;
  out += target.substr(prefix.size() - 1);  // keeps the '/' that ends the prefix
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

bool named_in(std::string_view name, const std::vector<header_field>& set) noexcept {
  for (const auto& h : set) {
    if (iequals(h.name, name)) return true;
  }
  return false;
}

bool is_event_stream(std::string_view ct) noexcept {
  constexpr std::string_view want = "text/event-stream";
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  if (ct.size() < want.size() || !iequals(ct.substr(0, want.size()), want)) return false;
  const std::string_view rest = ct.substr(want.size());
  return rest.empty() || rest.front() == ';' || rest.front() == ' ' || rest.front() == '\t';
}

}  // namespace customs::daemon
