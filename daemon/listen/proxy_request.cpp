#include "daemon/listen/proxy_request.hpp"

#include "daemon/catalogue/catalogue.hpp"

#include <arpa/inet.h>

#include <array>

namespace customs::daemon::listen {
namespace {

bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_port(std::string_view s, std::uint16_t& out) noexcept {
  if (s.empty() || s.size() > 5) return false;
  std::uint32_t p = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (p == 0 || p > 65535) return false;
  out = static_cast<std::uint16_t>(p);
  return true;
}

// One line (without its CRLF) starting at `at`; npos when no CRLF yet. A bare
// LF or CR inside is reported through `bad`.
std::size_t line_end(std::string_view b, std::size_t at, bool& bad) noexcept {
  for (std::size_t i = at; i < b.size(); ++i) {
    if (b[i] == '\n') {
      bad = true;
      return i;
    }
    if (b[i] == '\r') {
      if (i + 1 >= b.size()) return std::string_view::npos;
      if (b[i + 1] != '\n') bad = true;
      return i;
    }
  }
  return std::string_view::npos;
}

int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

head_status parse_proxy_head(std::string_view bytes, std::size_t limit, proxy_head& out) noexcept {
  out = proxy_head{};
  const std::string_view b = bytes.substr(0, limit);
  bool bad = false;
  // Request line: method SP target SP HTTP/1.x
  const std::size_t first = line_end(b, 0, bad);
  if (bad) return head_status::invalid;
  if (first == std::string_view::npos) {
    // Reject early what cannot become a request line.
    for (char c : b) {
      if (c == ' ') break;
      if (!is_tchar(c)) return head_status::invalid;
    }
    return b.size() >= limit ? head_status::too_large : head_status::incomplete;
  }
  const std::string_view line = b.substr(0, first);
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == 0 || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return head_status::invalid;
  }
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  for (char c : out.method) {
    if (!is_tchar(c)) return head_status::invalid;
  }
  if (out.target.empty()) return head_status::invalid;
  for (char c : out.target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return head_status::invalid;
  }
  if (version == "HTTP/1.1") out.version = 11;
  else if (version == "HTTP/1.0") out.version = 10;
  else return head_status::invalid;

  bool seen_auth = false;
  std::size_t at = first + 2;
  for (;;) {
    const std::size_t end = line_end(b, at, bad);
    if (bad) return head_status::invalid;
    if (end == std::string_view::npos) return b.size() >= limit ? head_status::too_large : head_status::incomplete;
    if (end == at) {
      out.length = at + 2;
      return head_status::complete;
    }
    const std::string_view field = b.substr(at, end - at);
    if (field.front() == ' ' || field.front() == '\t') return head_status::invalid;  // obsolete folding
    const std::size_t colon = field.find(':');
    if (colon == 0 || colon == std::string_view::npos) return head_status::invalid;
    const std::string_view name = field.substr(0, colon);
    for (char c : name) {
      if (!is_tchar(c)) return head_status::invalid;
    }
    const std::string_view value = trim(field.substr(colon + 1));
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) return head_status::invalid;
    }
    if (iequal(name, "proxy-authorization")) {
      if (seen_auth) return head_status::invalid;
      seen_auth = true;
      out.proxy_authorization = value;
    }
    at = end + 2;
  }
}

bool parse_authority(std::string_view s, std::uint16_t default_port, authority& out) noexcept {
  out = authority{};
  if (s.empty() || s.size() > 300 || s.find('@') != std::string_view::npos) return false;
  std::string_view host, port;
  if (s.front() == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    host = s.substr(1, close - 1);
    const std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    std::array<unsigned char, 16> buf{};
    const std::string h(host);
    if (inet_pton(AF_INET6, h.c_str(), buf.data()) != 1) return false;
    out.host = h;
    out.ip_literal = true;
  } else {
    const std::size_t colon = s.rfind(':');
    if (colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      if (port.empty()) return false;
    } else {
      host = s;
    }
    if (host.find(':') != std::string_view::npos) return false;  // unbracketed IPv6
    std::array<unsigned char, 16> buf{};
    const std::string h(host);
    if (!h.empty() && inet_pton(AF_INET, h.c_str(), buf.data()) == 1) {
      out.host = h;
      out.ip_literal = true;
    } else if (!normalize_host(host, out.host)) {
      return false;
    }
  }
  if (port.empty()) {
    if (default_port == 0) return false;
    out.port = default_port;
    return true;
  }
  return parse_port(port, out.port);
}

bool parse_absolute_http(std::string_view target, authority& out, std::string& origin_form) noexcept {
  constexpr std::string_view scheme = "http://";
  if (target.size() <= scheme.size() || !iequal(target.substr(0, scheme.size()), scheme)) return false;
  std::string_view rest = target.substr(scheme.size());
  const std::size_t end = rest.find_first_of("/?#");
  const std::string_view auth = rest.substr(0, end);
  if (!parse_authority(auth, 80, out)) return false;
  std::string_view path = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  if (const std::size_t hash = path.find('#'); hash != std::string_view::npos) path = path.substr(0, hash);
  try {
    // "?q" alone (no path) becomes "/?q".
    const bool slash = path.empty() || path.front() != '/';
    origin_form.assign(path.size() + (slash ? 1 : 0), '/');
    if (!path.empty()) path.copy(origin_form.data() + (slash ? 1 : 0), path.size());
  } catch (...) {
    return false;
  }
  return true;
}

bool parse_basic_credentials(std::string_view value, basic_credentials& out) noexcept {
  out = basic_credentials{};
  value = trim(value);
  const std::size_t sp = value.find(' ');
  if (sp == std::string_view::npos || !iequal(value.substr(0, sp), "basic")) return false;
  std::string_view b64 = trim(value.substr(sp + 1));
  if (b64.empty() || b64.size() % 4 != 0 || b64.size() > 1368) return false;  // 1024 bytes decoded, at most
  std::string text;
  try {
    text.reserve(b64.size() / 4 * 3);
    for (std::size_t i = 0; i < b64.size(); i += 4) {
      int v[4];
      int pad = 0;
      for (int k = 0; k < 4; ++k) {
        const char c = b64[i + static_cast<std::size_t>(k)];
        if (c == '=') {
          if (i + 4 != b64.size() || k < 2) return false;
          v[k] = 0;
          ++pad;
        } else {
          if (pad > 0) return false;
          v[k] = base64_value(c);
          if (v[k] < 0) return false;
        }
      }
      const std::uint32_t n = (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
                              (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
      text += static_cast<char>((n >> 16) & 0xFF);
      if (pad < 2) text += static_cast<char>((n >> 8) & 0xFF);
      if (pad < 1) text += static_cast<char>(n & 0xFF);
    }
    const std::size_t colon = text.find(':');
    if (colon == std::string::npos || colon == 0) return false;
    for (std::size_t i = 0; i < colon; ++i) {
      const auto u = static_cast<unsigned char>(text[i]);
      if (u < 0x20 || u == 0x7f) return false;
    }
    for (std::size_t i = colon + 1; i < text.size(); ++i) {
      const auto u = static_cast<unsigned char>(text[i]);
      if (u < 0x20 || u == 0x7f) return false;
    }
    out.user = text.substr(0, colon);
    out.password = text.substr(colon + 1);
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace customs::daemon::listen
