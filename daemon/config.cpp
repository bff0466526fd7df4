#include "daemon/config.hpp"
#include "policy/yaml_guard.hpp"

#include "policy/input_file.hpp"
#include "policy/jurisdictions.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

namespace customs::daemon {
namespace {

// Walks a parsed YAML document, converting values and collecting every problem
// with its position instead of stopping at the first.
class walker {
 public:
  walker(std::string file, std::filesystem::path base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  using field_reader = std::function<void(const YAML::Node& value, const std::string& path)>;
  struct field {
    std::string_view key;
    bool required;
    field_reader read;
  };

  void error(const YAML::Mark& m, std::string code, std::string message) {
    config_diagnostic d;
    d.file = file_;
    d.line = m.line >= 0 ? m.line + 1 : 1;
    d.col = m.column >= 0 ? m.column + 1 : 1;
    d.code = std::move(code);
    d.message = std::move(message);
    diagnostics_.push_back(std::move(d));
  }
  void error(const YAML::Node& n, std::string code, std::string message) {
    error(n.Mark(), std::move(code), std::move(message));
  }

  // Reads a mapping: each key must be one of `fields` (once), required ones must
  // be present. Returns false when n is not a mapping.
  bool map(const YAML::Node& n, const std::string& path, const std::vector<field>& fields) {
    if (!n.IsMap()) {
      error(n, "E_TYPE", path + ": expected a mapping");
      return false;
    }
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      // yaml-cpp's iterator yields a temporary pair: copy the nodes (handles).
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) {
        error(key, "E_TYPE", path + ": keys must be plain names");
        continue;
      }
      const std::string name = key.Scalar();
      const std::string child = path.empty() ? name : path + "." + name;
      if (!seen.insert(name).second) {
        error(key, "E_DUPLICATE", "duplicate key '" + child + "'");
        continue;
      }
      const auto f = std::find_if(fields.begin(), fields.end(),
                                  [&](const field& x) { return x.key == name; });
      if (f == fields.end()) {
        error(key, "E_UNKNOWN_KEY", "unknown key '" + child + "'" + known_keys(fields));
        continue;
      }
      f->read(value, child);
    }
    for (const auto& f : fields) {
      if (f.required && !seen.contains(std::string(f.key))) {
        error(n, "E_MISSING", "missing key '" + (path.empty() ? std::string(f.key) : path + "." + std::string(f.key)) + "'");
      }
    }
    return true;
  }

  bool sequence(const YAML::Node& n, const std::string& path) {
    if (!n.IsSequence()) {
      error(n, "E_TYPE", path + ": expected a list");
      return false;
    }
    return true;
  }

  bool string(const YAML::Node& n, const std::string& path, std::string& out) {
    if (!n.IsScalar()) {
      error(n, "E_TYPE", path + ": expected a string");
      return false;
    }
    out = n.Scalar();
    return true;
  }

  bool integer(const YAML::Node& n, const std::string& path, std::uint64_t max, std::uint64_t& out) {
    if (!n.IsScalar() || n.Tag() == "!" || !all_digits(n.Scalar())) {
      error(n, "E_TYPE", path + ": expected a non-negative integer");
      return false;
    }
    if (!to_uint(n.Scalar(), out) || out > max) {
      error(n, "E_VALUE", path + ": must be at most " + std::to_string(max));
      return false;
    }
    return true;
  }

  bool boolean(const YAML::Node& n, const std::string& path, bool& out) {
    if (n.IsScalar() && n.Tag() != "!") {
      if (n.Scalar() == "true") { out = true; return true; }
      if (n.Scalar() == "false") { out = false; return true; }
    }
    error(n, "E_TYPE", path + ": expected true or false");
    return false;
  }

  // "250ms", "30s", "5m", "1h"
  bool duration_value(const YAML::Node& n, const std::string& path, duration& out) {
    if (!n.IsScalar()) {
      error(n, "E_TYPE", path + ": expected a duration such as \"30s\" or \"250ms\"");
      return false;
    }
    const std::string& s = n.Scalar();
    std::size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    const std::string unit = s.substr(i);
    std::uint64_t v = 0;
    std::uint64_t scale = 0;
    if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m") scale = 60'000;
    else if (unit == "h") scale = 3'600'000;
    if (i == 0 || scale == 0 || !to_uint(s.substr(0, i), v)) {
      error(n, "E_TYPE", path + ": expected a duration such as \"30s\" or \"250ms\" (units ms, s, m, h)");
      return false;
    }
    if (v > 365ull * 24 * 3'600'000 / scale) {
      error(n, "E_VALUE", path + ": longer than a year");
      return false;
    }
    out = duration(static_cast<duration::rep>(v * scale));
    return true;
  }

  // 4096, "64KiB", "16MiB", "1GiB"
  bool size_value(const YAML::Node& n, const std::string& path, std::uint64_t& out) {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      std::size_t i = 0;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      const std::string unit = s.substr(i);
      std::uint64_t scale = 0;
      if (unit.empty() && n.Tag() != "!") scale = 1;
      else if (unit == "KiB") scale = 1ull << 10;
      else if (unit == "MiB") scale = 1ull << 20;
      else if (unit == "GiB") scale = 1ull << 30;
      std::uint64_t v = 0;
      if (i > 0 && scale != 0 && to_uint(s.substr(0, i), v)) {
        if (v > (1ull << 40) / scale) {
          error(n, "E_VALUE", path + ": larger than 1TiB");
          return false;
        }
        out = v * scale;
        return true;
      }
    }
    error(n, "E_TYPE", path + ": expected a size in bytes, or a string such as \"64KiB\" or \"16MiB\"");
    return false;
  }

  // A file named in the config: resolved against the config's folder; must exist.
  bool file(const YAML::Node& n, const std::string& path, std::filesystem::path& out) {
    std::string s;
    if (!string(n, path, s)) return false;
    if (s.empty()) {
      error(n, "E_VALUE", path + ": empty file name");
      return false;
    }
    std::filesystem::path p(s);
    if (p.is_relative()) p = base_dir_ / p;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) {
      error(n, "E_FILE", path + ": no such file: " + p.string());
      return false;
    }
    out = p.lexically_normal();
    return true;
  }

  [[nodiscard]] const std::vector<config_diagnostic>& diagnostics() const noexcept { return diagnostics_; }
  [[nodiscard]] const std::string& file_name() const noexcept { return file_; }

 private:
  static bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  static bool to_uint(const std::string& s, std::uint64_t& out) {
    out = 0;
    for (char c : s) {
      if (out > (UINT64_MAX - 9) / 10) return false;
      out = out * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
  }
  static std::string known_keys(const std::vector<field>& fields) {
    std::string s = " (known:";
    for (const auto& f : fields) {
      s += ' ';
      s += f.key;
    }
    return s + ")";
  }

  std::string file_;
  std::filesystem::path base_dir_;
  std::vector<config_diagnostic> diagnostics_;
};

bool valid_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Whether two listening sockets (address literal, port) would claim the same
// connections: same port (0 picks a free one: never) and the same address, or
// one of them the wildcard of the other's family (:: also takes IPv4, as Linux
// binds it dual-stack by default). IPv4-mapped IPv6 addresses count as IPv4.
bool endpoints_overlap(const std::string& a, std::uint16_t pa, const std::string& b, std::uint16_t pb) {
  if (pa == 0 || pa != pb) return false;
  struct addr {
    std::array<unsigned char, 16> bytes{};
    bool v4 = false;
    bool any = false;
    bool ok = false;
  };
  const auto parse = [](const std::string& s) {
    addr r;
    unsigned char v4[4];
    if (inet_pton(AF_INET, s.c_str(), v4) == 1) {
      r.ok = r.v4 = true;
      std::copy(v4, v4 + 4, r.bytes.begin());
    } else if (inet_pton(AF_INET6, s.c_str(), r.bytes.data()) == 1) {
      r.ok = true;
      static constexpr unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (std::equal(mapped, mapped + 12, r.bytes.begin())) {
        r.v4 = true;
        std::copy(r.bytes.begin() + 12, r.bytes.end(), r.bytes.begin());
        std::fill(r.bytes.begin() + 4, r.bytes.end(), 0);
      }
    }
    const std::size_t n = r.v4 ? 4 : 16;
    r.any = r.ok && std::all_of(r.bytes.begin(), r.bytes.begin() + static_cast<std::ptrdiff_t>(n),
                                [](unsigned char c) { return c == 0; });
    return r;
  };
  const addr x = parse(a), y = parse(b);
  if (!x.ok || !y.ok) return false;  // reported elsewhere
  if ((x.any && !x.v4) || (y.any && !y.v4)) return true;  // "::"
  if (x.v4 != y.v4) return false;
  return x.any || y.any || x.bytes == y.bytes;
}

// "127.0.0.1:8080", "[::1]:8443"
std::string endpoint_text(const std::string& address, std::uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

bool has_dot_segment(std::string_view path) {
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    const auto seg = path.substr(i, j - i);
    if (seg == "." || seg == "..") return true;
    i = j + 1;
  }
  return false;
}

void read_port(walker& w, const YAML::Node& v, const std::string& path, std::uint16_t& out) {
  std::uint64_t p = 0;
  if (w.integer(v, path, 65535, p)) out = static_cast<std::uint16_t>(p);
}

void read_address(walker& w, const YAML::Node& v, const std::string& path, std::string& out) {
  if (!w.string(v, path, out)) return;
  if (!valid_ip(out)) w.error(v, "E_VALUE", path + ": '" + out + "' is not an IPv4 or IPv6 address");
}

void read_jurisdiction(walker& w, const YAML::Node& v, const std::string& path, std::string& out) {
  if (!w.string(v, path, out)) return;
  if (valid_jurisdiction(out)) return;
  // The rule loader's check (an assigned code, not just two letters): a code no
  // rule names, such as UK for GB, would change verdicts silently.
  std::string m = path + ": expected an ISO 3166-1 alpha-2 code such as US, not '" + out + "'";
  if (const auto hint = policy::country_code_hint(out); !hint.empty()) m += " (did you mean " + std::string(hint) + "?)";
  w.error(v, "E_VALUE", m);
}

void read_tenant(walker& w, const YAML::Node& v, const std::string& path, std::string& out) {
  if (!w.string(v, path, out)) return;
  if (!valid_tenant(out)) {
    w.error(v, "E_VALUE", path + ": a tenant is 1 to 64 letters, digits, '.', '_', ':' or '-'");
  }
}

void read_cidr(walker& w, const YAML::Node& v, const std::string& path, cidr_block& out) {
  std::string s;
  if (!w.string(v, path, s)) return;
  std::string why;
  if (!parse_cidr(s, out, why)) w.error(v, "E_VALUE", path + ": " + why);
}

void read_source_spec(walker& w, const YAML::Node& n, const std::string& path, source_spec& s) {
  w.map(n, path, {
    {"jurisdiction", true, [&](const YAML::Node& v, const std::string& p) { read_jurisdiction(w, v, p, s.jurisdiction); }},
    {"tenant", false, [&](const YAML::Node& v, const std::string& p) { read_tenant(w, v, p, s.tenant); }},
  });
}

void read_listener(walker& w, const YAML::Node& n, const std::string& path, listener_config& l) {
  w.map(n, path, {
    {"name", true, [&](const YAML::Node& v, const std::string& p) {
       if (w.string(v, p, l.name) && l.name.empty()) w.error(v, "E_VALUE", p + ": empty name");
     }},
    {"address", true, [&](const YAML::Node& v, const std::string& p) { read_address(w, v, p, l.address); }},
    {"port", true, [&](const YAML::Node& v, const std::string& p) { read_port(w, v, p, l.port); }},
    {"tls", false, [&](const YAML::Node& v, const std::string& p) {
       tls_files t;
       w.map(v, p, {
         {"cert", true, [&](const YAML::Node& x, const std::string& q) { (void)w.file(x, q, t.cert); }},
         {"key", true, [&](const YAML::Node& x, const std::string& q) { (void)w.file(x, q, t.key); }},
         {"client_ca", false, [&](const YAML::Node& x, const std::string& q) { (void)w.file(x, q, t.client_ca); }},
       });
       l.tls = t;
     }},
    {"default_source", false, [&](const YAML::Node& v, const std::string& p) {
       source_spec s;
       read_source_spec(w, v, p, s);
       l.default_source = s;
     }},
    {"mode", false, [&](const YAML::Node& v, const std::string& p) {
       std::string s;
       if (!w.string(v, p, s)) return;
       if (s == "reverse") l.mode = listener_mode::reverse;
       else if (s == "forward") l.mode = listener_mode::forward;
       else if (s == "transparent") l.mode = listener_mode::transparent;
       else w.error(v, "E_VALUE", p + ": expected reverse, forward or transparent");
     }},
    {"proxy_auth", false, [&](const YAML::Node& v, const std::string& p) {
       proxy_auth_config a;
       w.map(v, p, {
         {"users", true, [&](const YAML::Node& x, const std::string& q) { (void)w.file(x, q, a.users); }},
         {"realm", false, [&](const YAML::Node& x, const std::string& q) {
            if (!w.string(x, q, a.realm)) return;
            if (a.realm.empty() || a.realm.size() > 64 ||
                a.realm.find_first_of("\"\\\r\n") != std::string::npos) {
              w.error(x, "E_VALUE", q + ": 1 to 64 characters without quotes, backslashes or line breaks");
            }
          }},
       });
       l.proxy_auth = a;
     }},
  });
  // The edge modes read the client's bytes themselves (CONNECT, ClientHello).
  if (n.IsMap() && l.mode != listener_mode::reverse && l.tls) {
    w.error(n["tls"], "E_VALUE", path + ".tls: only reverse listeners terminate TLS with a configured certificate");
  }
  if (n.IsMap() && l.mode != listener_mode::forward && l.proxy_auth) {
    w.error(n["proxy_auth"], "E_VALUE", path + ".proxy_auth: only forward listeners ask for proxy credentials");
  }
}

// "tunnel" or "refuse"; refuse is set to whether it was "refuse".
bool read_tunnel_or_refuse(walker& w, const YAML::Node& v, const std::string& p, bool& refuse) {
  std::string s;
  if (!w.string(v, p, s)) return false;
  if (s != "tunnel" && s != "refuse") {
    w.error(v, "E_VALUE", p + ": expected tunnel or refuse");
    return false;
  }
  refuse = s == "refuse";
  return true;
}

void read_interception(walker& w, const YAML::Node& n, const std::string& path, interception_config& c) {
  bool has_cert = false, has_key = false;
  w.map(n, path, {
    {"ca_cert", false, [&](const YAML::Node& v, const std::string& p) { has_cert = w.file(v, p, c.ca_cert); }},
    {"ca_key", false, [&](const YAML::Node& v, const std::string& p) { has_key = w.file(v, p, c.ca_key); }},
    {"leaf_validity", false, [&](const YAML::Node& v, const std::string& p) {
       duration d{};
       if (!w.duration_value(v, p, d)) return;
       if (d < std::chrono::hours(1) || d > std::chrono::hours(24 * 90)) {
         w.error(v, "E_VALUE", p + ": between 1h and 90 days (2160h)");
       } else {
         c.leaf_validity = d;
       }
     }},
    {"leaf_cache", false, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (!w.integer(v, p, 10'000'000, x)) return;
       if (x == 0) w.error(v, "E_VALUE", p + ": must be at least 1");
       else c.leaf_cache = x;
     }},
    {"on_untrusted", false, [&](const YAML::Node& v, const std::string& p) {
       bool refuse = true;
       if (read_tunnel_or_refuse(w, v, p, refuse)) c.on_untrusted = refuse ? untrusted_action::refuse : untrusted_action::tunnel;
     }},
    {"unknown_hosts", false, [&](const YAML::Node& v, const std::string& p) {
       (void)read_tunnel_or_refuse(w, v, p, c.refuse_unknown_hosts);
     }},
    {"tunnel_records", false, [&](const YAML::Node& v, const std::string& p) { (void)w.boolean(v, p, c.tunnel_records); }},
    {"ports", false, [&](const YAML::Node& v, const std::string& p) {
       if (!w.sequence(v, p)) return;
       c.ports.clear();
       std::size_t i = 0;
       for (const auto& item : v) {
         std::uint16_t port = 0;
         const std::string q = p + "[" + std::to_string(i++) + "]";
         read_port(w, item, q, port);
         if (port == 0) w.error(item, "E_VALUE", q + ": a port from 1 to 65535");
         else c.ports.push_back(port);
       }
     }},
    {"upstream_mark", false, [](const YAML::Node&, const std::string&) {}},  // read below
    {"allow_networks", false, [&](const YAML::Node& v, const std::string& p) {
       if (!w.sequence(v, p)) return;
       std::size_t i = 0;
       for (const auto& item : v) {
         cidr_block b;
         read_cidr(w, item, p + "[" + std::to_string(i++) + "]", b);
         c.allow_networks.push_back(std::move(b));
       }
     }},
  });
  if (n.IsMap() && n["upstream_mark"]) {
    std::uint64_t x = 0;
    if (w.integer(n["upstream_mark"], path + ".upstream_mark", 0xFFFFFFFFull, x)) c.upstream_mark = static_cast<std::uint32_t>(x);
  }
  if (n.IsMap() && has_cert != has_key && (n["ca_cert"] || n["ca_key"])) {
    w.error(n, "E_MISSING", path + ": give both ca_cert and ca_key, or neither");
  }
}

// "10.1.2.3:443", "10.1.2.3", "[::1]:8443", "::1"
bool parse_resolve_target(std::string_view s, resolve_entry& e) {
  std::string addr;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    addr = std::string(s.substr(1, close - 1));
    const auto rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else if (std::count(s.begin(), s.end(), ':') == 1) {
    const auto colon = s.find(':');
    addr = std::string(s.substr(0, colon));
    port = s.substr(colon + 1);
    if (port.empty()) return false;
  } else {
    addr = std::string(s);
  }
  if (!valid_ip(addr)) return false;
  e.address = std::move(addr);
  e.port = 0;
  if (!port.empty()) {
    std::uint32_t p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) return false;
      p = p * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (p == 0 || p > 65535) return false;
    e.port = static_cast<std::uint16_t>(p);
  }
  return true;
}

void read_source_rule(walker& w, const YAML::Node& n, const std::string& path, source_rule& r) {
  const bool ok = w.map(n, path, {
    {"cidr", false, [&](const YAML::Node& v, const std::string& p) {
       cidr_block c;
       read_cidr(w, v, p, c);
       r.cidr = c;
     }},
    {"client_cert_subject", false, [&](const YAML::Node& v, const std::string& p) {
       if (w.string(v, p, r.client_cert_subject) && r.client_cert_subject.empty()) {
         w.error(v, "E_VALUE", p + ": empty subject");
       }
     }},
    {"jurisdiction", true, [&](const YAML::Node& v, const std::string& p) { read_jurisdiction(w, v, p, r.source.jurisdiction); }},
    {"tenant", false, [&](const YAML::Node& v, const std::string& p) { read_tenant(w, v, p, r.source.tenant); }},
  });
  const bool by_subject = n.IsMap() && n["client_cert_subject"];
  const bool by_cidr = n.IsMap() && n["cidr"];
  if (ok && by_subject == by_cidr) {
    w.error(n, "E_VALUE", path + ": give exactly one of cidr and client_cert_subject");
  }
}

// A path named in the config that may not exist yet (created or provisioned
// later): resolved against the config's folder only.
void read_path(walker& w, const YAML::Node& v, const std::string& path, const std::filesystem::path& base,
               std::filesystem::path& out) {
  std::string s;
  if (!w.string(v, path, s)) return;
  if (s.empty()) {
    w.error(v, "E_VALUE", path + ": empty path");
    return;
  }
  std::filesystem::path p(s);
  if (p.is_relative()) p = base / p;
  out = p.lexically_normal();
}

// A non-empty list of files or folders that must exist (rules, the catalogue).
void read_existing_paths(walker& w, const YAML::Node& v, const std::string& p, const std::filesystem::path& base,
                         std::string_view what, std::vector<std::filesystem::path>& out) {
  if (!w.sequence(v, p)) return;
  if (v.size() == 0) w.error(v, "E_VALUE", p + ": name at least one " + std::string(what) + " file or folder");
  std::size_t i = 0;
  for (const auto& item : v) {
    const std::string q = p + "[" + std::to_string(i++) + "]";
    std::filesystem::path f;
    read_path(w, item, q, base, f);
    std::error_code ec;
    if (!f.empty() && !std::filesystem::exists(f, ec)) {
      w.error(item, "E_FILE", q + ": no such file or folder: " + f.string());
    }
    out.push_back(std::move(f));
  }
}

void read_audit(walker& w, const YAML::Node& n, const std::string& path, const std::filesystem::path& base,
                audit_config& a) {
  w.map(n, path, {
    {"path", true, [&](const YAML::Node& v, const std::string& p) { read_path(w, v, p, base, a.path); }},
    {"auditor_keys", true, [&](const YAML::Node& v, const std::string& p) {
       if (!w.sequence(v, p)) return;
       if (v.size() == 0) w.error(v, "E_VALUE", p + ": at least one auditor key is needed");
       std::size_t i = 0;
       for (const auto& item : v) {
         std::filesystem::path k;
         read_path(w, item, p + "[" + std::to_string(i++) + "]", base, k);
         a.auditor_keys.push_back(std::move(k));
       }
     }},
    {"sealing_key", true, [&](const YAML::Node& v, const std::string& p) { read_path(w, v, p, base, a.sealing_key); }},
    {"signing_key", true, [&](const YAML::Node& v, const std::string& p) { read_path(w, v, p, base, a.signing_key); }},
    {"content", false, [&](const YAML::Node& v, const std::string& p) {
       std::string s;
       if (!w.string(v, p, s)) return;
       if (s == "none") a.content = audit_content::none;
       else if (s == "findings") a.content = audit_content::findings;
       else if (s == "full") a.content = audit_content::full;
       else w.error(v, "E_VALUE", p + ": expected none, findings or full");
     }},
    {"on_failure", false, [&](const YAML::Node& v, const std::string& p) {
       std::string s;
       if (!w.string(v, p, s)) return;
       if (s == "refuse") a.refuse_on_failure = true;
       else if (s == "allow") a.refuse_on_failure = false;
       else w.error(v, "E_VALUE", p + ": expected refuse or allow");
     }},
    {"epoch_records", false, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (!w.integer(v, p, 1'000'000'000, x)) return;
       if (x == 0) w.error(v, "E_VALUE", p + ": must be at least 1");
       else a.epoch_records = x;
     }},
    {"epoch_duration", false, [&](const YAML::Node& v, const std::string& p) {
       duration d{};
       if (!w.duration_value(v, p, d)) return;
       if (d < std::chrono::seconds(1)) w.error(v, "E_VALUE", p + ": must be at least 1s");
       else a.epoch_duration = d;
     }},
    {"commit_records", false, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (!w.integer(v, p, 1'000'000, x)) return;
       if (x == 0) w.error(v, "E_VALUE", p + ": must be at least 1");
       else a.commit_records = x;
     }},
    {"commit_interval", false, [&](const YAML::Node& v, const std::string& p) {
       duration d{};
       if (!w.duration_value(v, p, d)) return;
       if (d > std::chrono::seconds(1)) w.error(v, "E_VALUE", p + ": must be at most 1s (flows wait for it)");
       else a.commit_interval = d;
     }},
    {"queue_capacity", false, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (!w.integer(v, p, 100'000'000, x)) return;
       if (x < 16) w.error(v, "E_VALUE", p + ": must be at least 16");
       else a.queue_capacity = x;
     }},
    {"content_bytes", false, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (!w.size_value(v, p, x)) return;
       if (x < 1024) w.error(v, "E_VALUE", p + ": must be at least 1024");
       else a.content_bytes = x;
     }},
    {"queue_bytes", false, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (!w.size_value(v, p, x)) return;
       if (x < audit_config::min_queue_bytes)
         w.error(v, "E_VALUE", p + ": must be at least " + std::to_string(audit_config::min_queue_bytes) +
                                   " (two records of the largest size)");
       else if (x > audit_config::max_queue_bytes)
         w.error(v, "E_VALUE", p + ": must be at most " + std::to_string(audit_config::max_queue_bytes));
       else a.queue_bytes = x;
     }},
    {"index_fields", false, [&](const YAML::Node& v, const std::string& p) {
       if (!w.sequence(v, p)) return;
       static constexpr std::string_view known[] = {"route", "src", "dst", "tenant", "action",
                                                    "rules", "rule_set_hash", "tokens"};
       a.index_fields.clear();
       std::size_t i = 0;
       for (const auto& item : v) {
         std::string s;
         const std::string q = p + "[" + std::to_string(i++) + "]";
         if (!w.string(item, q, s)) continue;
         if (std::find(std::begin(known), std::end(known), s) == std::end(known)) {
           w.error(item, "E_VALUE", q + ": '" + s + "' is not one of route, src, dst, tenant, action, rules, rule_set_hash, tokens");
           continue;
         }
         a.index_fields.push_back(std::move(s));
       }
     }},
  });
}

void read_metering(walker& w, const YAML::Node& n, const std::string& path, metering_config& m) {
  w.map(n, path, {
    {"stream_usage", false, [&](const YAML::Node& v, const std::string& p) {
       std::string s;
       if (!w.string(v, p, s)) return;
       if (s == "inject") m.inject_stream_usage = true;
       else if (s == "off") m.inject_stream_usage = false;
       else w.error(v, "E_VALUE", p + ": expected inject or off");
     }},
    {"max_models", false, [&](const YAML::Node& v, const std::string& p) {
       (void)w.integer(v, p, 10'000, m.max_models);
     }},
    {"max_tenants", false, [&](const YAML::Node& v, const std::string& p) {
       (void)w.integer(v, p, 100'000, m.max_tenants);
     }},
  });
}

void read_volumes(walker& w, const YAML::Node& n, const std::string& path, const std::filesystem::path& base,
                  volumes_config& v) {
  bool has_url = false, has_path = false;
  const YAML::Node* url_node = nullptr;
  YAML::Node url_copy;
  w.map(n, path, {
    {"backend", false, [&](const YAML::Node& x, const std::string& p) {
       std::string s;
       if (!w.string(x, p, s)) return;
       if (s == "sqlite") v.backend = volumes_config::backend_kind::sqlite;
       else if (s == "redis") v.backend = volumes_config::backend_kind::redis;
       else w.error(x, "E_VALUE", p + ": expected sqlite or redis");
     }},
    {"path", false, [&](const YAML::Node& x, const std::string& p) {
       has_path = true;
       read_path(w, x, p, base, v.path);
     }},
    {"subject_key", true, [&](const YAML::Node& x, const std::string& p) {
       read_path(w, x, p, base, v.subject_key);
       std::error_code ec;
       if (!v.subject_key.empty() && !std::filesystem::exists(v.subject_key, ec))
         w.error(x, "E_FILE", p + ": no such file: " + v.subject_key.string() +
                                 " (make one with: customsctl keys gen --out DIR --only subject)");
     }},
    {"url", false, [&](const YAML::Node& x, const std::string& p) {
       has_url = true;
       url_copy = x;
       url_node = &url_copy;
       if (!w.string(x, p, v.url)) return;
       if (!v.url.starts_with("redis://") && !v.url.starts_with("rediss://"))
         w.error(x, "E_VALUE", p + ": expected redis://host:port[/db] or rediss://host:port[/db]");
     }},
    {"tls", false, [&](const YAML::Node& x, const std::string& p) {
       volumes_tls t;
       w.map(x, p, {
         {"ca", false, [&](const YAML::Node& y, const std::string& q) { read_path(w, y, q, base, t.ca); }},
         {"cert", false, [&](const YAML::Node& y, const std::string& q) { read_path(w, y, q, base, t.cert); }},
         {"key", false, [&](const YAML::Node& y, const std::string& q) { read_path(w, y, q, base, t.key); }},
       });
       if (t.cert.empty() != t.key.empty()) w.error(x, "E_VALUE", p + ": cert and key go together");
       v.tls = std::move(t);
     }},
    {"password_file", false, [&](const YAML::Node& x, const std::string& p) { read_path(w, x, p, base, v.password_file); }},
    {"budget", false, [&](const YAML::Node& x, const std::string& p) {
       duration d{};
       if (!w.duration_value(x, p, d)) return;
       if (d < duration(1) || d > duration(5000)) w.error(x, "E_VALUE", p + ": must be from 1ms to 5s");
       else v.budget = d;
     }},
    {"on_unavailable", false, [&](const YAML::Node& x, const std::string& p) {
       std::string s;
       if (!w.string(x, p, s)) return;
       if (s == "refuse") v.refuse_on_unavailable = true;
       else if (s == "local") v.refuse_on_unavailable = false;
       else w.error(x, "E_VALUE", p + ": expected refuse or local");
     }},
    {"journal_max_entries", false, [&](const YAML::Node& x, const std::string& p) {
       std::uint64_t n = 0;
       if (!w.integer(x, p, 100'000'000, n)) return;
       if (n == 0) w.error(x, "E_VALUE", p + ": must be from 1 to 100000000");
       else v.journal_max_entries = n;
     }},
  });
  if (v.backend == volumes_config::backend_kind::redis && !has_url) w.error(n, "E_MISSING", path + ".url: required with backend redis");
  if (v.backend == volumes_config::backend_kind::sqlite && has_url && url_node) w.error(*url_node, "E_VALUE", path + ".url: only with backend redis");
  if (!has_path && (v.backend == volumes_config::backend_kind::sqlite || !v.refuse_on_unavailable))
    w.error(n, "E_MISSING", path + ".path: required (the sqlite database, or redis's local fallback)");
}

void read_route(walker& w, const YAML::Node& n, const std::string& path, route_config& r) {
  const YAML::Node* ca_node = nullptr;
  YAML::Node ca_copy;
  w.map(n, path, {
    {"prefix", true, [&](const YAML::Node& v, const std::string& p) {
       if (!w.string(v, p, r.prefix)) return;
       if (r.prefix.size() < 2 || r.prefix.front() != '/' || r.prefix.back() != '/') {
         w.error(v, "E_VALUE", p + ": must start and end with '/', e.g. /openai/");
       } else if (r.prefix.find_first_of("?#% \t") != std::string::npos || has_dot_segment(r.prefix)) {
         w.error(v, "E_VALUE", p + ": must be a plain path (no '?', '#', '%', blanks or dot segments)");
       }
     }},
    {"upstream", true, [&](const YAML::Node& v, const std::string& p) {
       if (!w.string(v, p, r.upstream)) return;
       std::string why;
       if (!parse_upstream_url(r.upstream, r.url, why)) w.error(v, "E_VALUE", p + ": " + why);
     }},
    {"dialect", true, [&](const YAML::Node& v, const std::string& p) {
       std::string s;
       if (!w.string(v, p, s)) return;
       if (auto d = parse_dialect(s)) r.api = *d;
       else w.error(v, "E_VALUE", p + ": '" + s + "' is not one of openai, anthropic, gemini");
     }},
    {"jurisdiction", true, [&](const YAML::Node& v, const std::string& p) { read_jurisdiction(w, v, p, r.jurisdiction); }},
    {"ca_bundle", false, [&](const YAML::Node& v, const std::string& p) {
       ca_copy = v;
       ca_node = &ca_copy;
       (void)w.file(v, p, r.ca_bundle);
     }},
  });
  if (ca_node != nullptr && !r.upstream.empty() && !r.url.host.empty() && !r.url.tls) {
    w.error(*ca_node, "E_VALUE", path + ".ca_bundle: only meaningful with an https upstream");
  }
}

void read_limits(walker& w, const YAML::Node& n, const std::string& path, limits_config& l) {
  auto size = [&](std::string_view key, std::uint64_t& out, std::uint64_t min,
                  std::uint64_t max = UINT64_MAX) {
    return walker::field{key, false, [&w, &out, min, max](const YAML::Node& v, const std::string& p) {
      std::uint64_t x = 0;
      if (!w.size_value(v, p, x)) return;
      if (x < min) w.error(v, "E_VALUE", p + ": must be at least " + std::to_string(min));
      else if (x > max) w.error(v, "E_VALUE", p + ": must be at most " + std::to_string(max));
      else out = x;
    }};
  };
  // Heads are parsed whole in memory; a field's storage in the HTTP parser
  // holds at most 64 KiB (see max_field_bytes in daemon/http_framing.hpp).
  constexpr std::uint64_t head_max = 1 << 20;
  auto count = [&](std::string_view key, std::uint64_t& out, std::uint64_t min, std::uint64_t max) {
    return walker::field{key, false, [&w, &out, min, max](const YAML::Node& v, const std::string& p) {
      std::uint64_t x = 0;
      if (!w.integer(v, p, max, x)) return;
      if (x < min) w.error(v, "E_VALUE", p + ": must be at least " + std::to_string(min));
      else out = x;
    }};
  };
  auto time = [&](std::string_view key, duration& out) {
    return walker::field{key, false, [&w, &out](const YAML::Node& v, const std::string& p) {
      duration d{};
      if (!w.duration_value(v, p, d)) return;
      if (d.count() <= 0) w.error(v, "E_VALUE", p + ": must be longer than 0");
      else out = d;
    }};
  };
  w.map(n, path, {
    size("header_bytes", l.header_bytes, 1024, head_max),
    count("header_fields", l.header_fields, 1, 10'000),
    size("target_bytes", l.target_bytes, 256, head_max),
    size("trailer_bytes", l.trailer_bytes, 0, head_max),
    size("chunk_extension_bytes", l.chunk_extension_bytes, 0, head_max),
    size("request_body_bytes", l.request_body_bytes, limit_bounds::min_body_bytes, limit_bounds::max_body_bytes),
    size("response_body_bytes", l.response_body_bytes, limit_bounds::min_body_bytes, limit_bounds::max_body_bytes),
    size("response_header_bytes", l.response_header_bytes, 1024, head_max),
    size("sse_event_bytes", l.sse_event_bytes, limit_bounds::min_sse_event_bytes, limit_bounds::max_sse_event_bytes),
    count("connections", l.connections, 1, 10'000'000),
    count("upstream_idle_per_route", l.upstream_idle_per_route, 0, 100'000),
    count("findings_per_flow", l.findings_per_flow, 1, 100'000'000),
    time("header_timeout", l.header_timeout),
    time("body_timeout", l.body_timeout),
    time("idle_timeout", l.idle_timeout),
    time("upstream_connect_timeout", l.upstream_connect_timeout),
    time("upstream_first_byte_timeout", l.upstream_first_byte_timeout),
    time("stream_gap_timeout", l.stream_gap_timeout),
    time("send_timeout", l.send_timeout),
    time("flow_timeout", l.flow_timeout),
    time("upstream_idle_timeout", l.upstream_idle_timeout),
    {"client_hello_bytes", false, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (!w.size_value(v, p, x)) return;
       if (x < 1024 || x > 65536) w.error(v, "E_VALUE", p + ": between 1KiB and 64KiB");
       else l.client_hello_bytes = x;
     }},
    time("tunnel_idle_timeout", l.tunnel_idle_timeout),
  });
}

void read_document(walker& w, const YAML::Node& root, const std::filesystem::path& base, config& c) {
  const YAML::Node* listeners_node = nullptr;
  YAML::Node listeners_copy;
  const YAML::Node* admin_node = nullptr;
  YAML::Node admin_copy;
  YAML::Node rules_node, audit_node;
  bool has_rules = false, has_audit = false, has_providers = false;
  w.map(root, "", {
    {"version", true, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (!w.integer(v, p, 1000, x)) return;
       if (x != 1) w.error(v, "E_VALUE", "version: only version 1 is known");
       c.version = static_cast<int>(x);
     }},
    {"listeners", true, [&](const YAML::Node& v, const std::string& p) {
       listeners_copy = v;
       listeners_node = &listeners_copy;
       if (!w.sequence(v, p)) return;
       if (v.size() == 0) w.error(v, "E_VALUE", "listeners: at least one listener is needed");
       std::size_t i = 0;
       for (const auto& item : v) {
         listener_config l;
         read_listener(w, item, p + "[" + std::to_string(i++) + "]", l);
         c.listeners.push_back(std::move(l));
       }
     }},
    {"admin", false, [&](const YAML::Node& v, const std::string& p) {
       admin_copy = v;
       admin_node = &admin_copy;
       w.map(v, p, {
         {"address", true, [&](const YAML::Node& x, const std::string& q) { read_address(w, x, q, c.admin.address); }},
         {"port", true, [&](const YAML::Node& x, const std::string& q) { read_port(w, x, q, c.admin.port); }},
       });
     }},
    {"routes", true, [&](const YAML::Node& v, const std::string& p) {
       if (!w.sequence(v, p)) return;
       std::size_t i = 0;
       std::set<std::string> prefixes;
       for (const auto& item : v) {
         route_config r;
         read_route(w, item, p + "[" + std::to_string(i++) + "]", r);
         if (!r.prefix.empty() && !prefixes.insert(r.prefix).second) {
           w.error(item, "E_DUPLICATE", "routes: prefix " + r.prefix + " appears twice");
         }
         c.routes.push_back(std::move(r));
       }
     }},
    {"limits", false, [&](const YAML::Node& v, const std::string& p) { read_limits(w, v, p, c.limits); }},
    {"threads", false, [&](const YAML::Node& v, const std::string& p) {
       std::uint64_t x = 0;
       if (w.integer(v, p, 1024, x)) c.threads = static_cast<unsigned>(x);
     }},
    {"drain_timeout", false, [&](const YAML::Node& v, const std::string& p) {
       (void)w.duration_value(v, p, c.drain_timeout);
     }},
    {"log", false, [&](const YAML::Node& v, const std::string& p) {
       w.map(v, p, {
         {"level", false, [&](const YAML::Node& x, const std::string& q) {
            std::string s;
            if (w.string(x, q, s) && !parse_log_level(s, c.log.level)) {
              w.error(x, "E_VALUE", q + ": expected debug, info, warn or error");
            }
          }},
         {"flows", false, [&](const YAML::Node& x, const std::string& q) { (void)w.boolean(x, q, c.log.flows); }},
         {"format", false, [&](const YAML::Node& x, const std::string& q) {
            std::string s;
            if (w.string(x, q, s) && !parse_log_format(s, c.log.format)) {
              w.error(x, "E_VALUE", q + ": expected logfmt or json");
            }
          }},
       });
     }},
    {"sources", false, [&](const YAML::Node& v, const std::string& p) {
       if (!w.sequence(v, p)) return;
       std::size_t i = 0;
       for (const auto& item : v) {
         source_rule r;
         read_source_rule(w, item, p + "[" + std::to_string(i++) + "]", r);
         c.sources.push_back(std::move(r));
       }
     }},
    {"trusted_proxies", false, [&](const YAML::Node& v, const std::string& p) {
       if (!w.sequence(v, p)) return;
       std::size_t i = 0;
       for (const auto& item : v) {
         cidr_block b;
         read_cidr(w, item, p + "[" + std::to_string(i++) + "]", b);
         c.trusted_proxies.push_back(std::move(b));
       }
     }},
    {"rules", false, [&](const YAML::Node& v, const std::string& p) {
       rules_node = v;
       has_rules = true;
       read_existing_paths(w, v, p, base, "rule", c.rules);
     }},
    {"audit", false, [&](const YAML::Node& v, const std::string& p) {
       audit_node = v;
       has_audit = true;
       audit_config a;
       read_audit(w, v, p, base, a);
       c.audit = std::move(a);
     }},
    {"metering", false, [&](const YAML::Node& v, const std::string& p) { read_metering(w, v, p, c.metering); }},
    {"volumes", false, [&](const YAML::Node& v, const std::string& p) {
       volumes_config x;
       read_volumes(w, v, p, base, x);
       c.volumes = std::move(x);
     }},
    {"interception", false, [&](const YAML::Node& v, const std::string& p) {
       interception_config ic;
       read_interception(w, v, p, ic);
       c.interception = std::move(ic);
     }},
    {"providers", false, [&](const YAML::Node& v, const std::string& p) {
       has_providers = true;
       read_existing_paths(w, v, p, base, "catalogue", c.providers);
     }},
    {"upstream_ca_bundle", false, [&](const YAML::Node& v, const std::string& p) {
       (void)w.file(v, p, c.upstream_ca_bundle);
     }},
    {"resolve", false, [&](const YAML::Node& v, const std::string& p) {
       if (!v.IsMap()) {
         w.error(v, "E_TYPE", p + ": expected a mapping of host names to addresses");
         return;
       }
       std::set<std::string> hosts;
       for (auto it = v.begin(); it != v.end(); ++it) {
         const YAML::Node key = it->first;
         const YAML::Node value = it->second;
         std::string host, target;
         if (!w.string(key, p, host) || !w.string(value, p + "." + host, target)) continue;
         resolve_entry e;
         for (char& ch : host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
         if (!host.empty() && host.back() == '.') host.pop_back();
         e.host = host;
         const bool name_ok = !host.empty() && host.size() <= 253 &&
                              std::all_of(host.begin(), host.end(), [](char ch) {
                                return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_';
                              });
         if (!name_ok) {
           w.error(key, "E_VALUE", p + ": '" + host + "' is not a host name");
         } else if (!hosts.insert(host).second) {
           w.error(key, "E_DUPLICATE", p + ": " + host + " appears twice");
         } else if (!parse_resolve_target(target, e)) {
           w.error(value, "E_VALUE", p + "." + host + ": expected an IP address with an optional port, e.g. \"10.1.2.3:443\" or \"[::1]:443\"");
         } else {
           c.resolve.push_back(std::move(e));
         }
       }
     }},
    {"unscannable", false, [&](const YAML::Node& v, const std::string& p) {
       std::string s;
       if (!w.string(v, p, s)) return;
       if (s == "block") c.unscannable = unscannable_mode::block;
       else if (s == "tag") c.unscannable = unscannable_mode::tag;
       else if (s == "allow") c.unscannable = unscannable_mode::allow;
       else w.error(v, "E_VALUE", p + ": expected block, tag or allow");
     }},
  });
  // No audit, no egress: enforcement runs only with an audit trail, and an audit
  // trail without rules would record nothing but pass-through.
  if (has_rules && !has_audit) w.error(rules_node, "E_MISSING", "audit: required when rules are set");
  if (has_audit && !has_rules) w.error(audit_node, "E_MISSING", "rules: required when audit is set");
  // The edge modes: the catalogue decides what is intercepted; with rules, the
  // catalogued hosts must be decryptable (no inspection would mean no policy).
  if (c.has_edge_listener()) {
    if (!has_providers) c.providers.push_back(default_providers_path());
    if (has_rules && !c.edge().decrypts()) {
      w.error(rules_node, "E_MISSING",
              "interception.ca_cert and interception.ca_key: required with rules and a forward or transparent "
              "listener (catalogued hosts are inspected)");
    }
  }
  // Two sockets on one port whose addresses overlap cannot both bind (or, with
  // SO_REUSEPORT, would share the traffic): listeners among themselves and with
  // the admin listener.
  if (listeners_node != nullptr && listeners_node->IsSequence()) {
    std::set<std::string> names;
    for (std::size_t i = 0; i < c.listeners.size() && i < listeners_node->size(); ++i) {
      const auto& l = c.listeners[i];
      const YAML::Node item = (*listeners_node)[i];
      if (!l.name.empty() && !names.insert(l.name).second) {
        w.error(item, "E_DUPLICATE", "listeners: name '" + l.name + "' appears twice");
      }
      for (std::size_t j = 0; j < i; ++j) {
        const auto& o = c.listeners[j];
        if (endpoints_overlap(l.address, l.port, o.address, o.port)) {
          w.error(item, "E_DUPLICATE", "listeners: " + l.name + " (" + endpoint_text(l.address, l.port) +
                                           ") overlaps listener " + o.name + " (" +
                                           endpoint_text(o.address, o.port) + ")");
          break;
        }
      }
      if (endpoints_overlap(l.address, l.port, c.admin.address, c.admin.port)) {
        w.error(admin_node ? *admin_node : item, "E_DUPLICATE",
                "admin: " + endpoint_text(c.admin.address, c.admin.port) + " overlaps listener " + l.name + " (" +
                    endpoint_text(l.address, l.port) + "); give the admin listener its own port");
      }
    }
  }
}

}  // namespace

bool valid_tenant(std::string_view t) noexcept {
  if (t.empty() || t.size() > 64) return false;
  return std::all_of(t.begin(), t.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
  });
}

bool valid_jurisdiction(std::string_view j) noexcept { return policy::is_country_code(j); }

bool parse_cidr(std::string_view s, cidr_block& out, std::string& why) {
  out = cidr_block{};
  out.text = std::string(s);
  const auto slash = s.find('/');
  const std::string addr(s.substr(0, slash));
  if (inet_pton(AF_INET, addr.c_str(), out.bytes.data()) == 1) {
    out.v6 = false;
  } else if (inet_pton(AF_INET6, addr.c_str(), out.bytes.data()) == 1) {
    out.v6 = true;
  } else {
    why = "'" + std::string(s) + "' is not an IPv4 or IPv6 address or network (e.g. 10.20.0.0/16)";
    return false;
  }
  const unsigned max = out.v6 ? 128 : 32;
  out.prefix = max;
  if (slash != std::string_view::npos) {
    const auto bits = s.substr(slash + 1);
    unsigned n = 0;
    if (bits.empty() || bits.size() > 3) {
      why = "bad prefix length in '" + std::string(s) + "'";
      return false;
    }
    for (char c : bits) {
      if (c < '0' || c > '9') {
        why = "bad prefix length in '" + std::string(s) + "'";
        return false;
      }
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n > max) {
      why = "prefix length of '" + std::string(s) + "' is over " + std::to_string(max);
      return false;
    }
    out.prefix = n;
  }
  // Bits after the prefix must be zero: "10.20.1.0/16" is most likely a typo.
  for (unsigned bit = out.prefix; bit < max; ++bit) {
    if (out.bytes[bit / 8] & (0x80u >> (bit % 8))) {
      why = "'" + std::string(s) + "' has address bits set after the /" + std::to_string(out.prefix) + " prefix";
      return false;
    }
  }
  return true;
}

bool cidr_block::contains(const std::uint8_t* addr, bool addr_v6) const noexcept {
  if (addr_v6 != v6) return false;
  const unsigned full = prefix / 8;
  for (unsigned i = 0; i < full; ++i) {
    if (addr[i] != bytes[i]) return false;
  }
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFFu << (8 - rest));
  return (addr[full] & mask) == bytes[full];
}

std::string_view to_string(audit_content c) noexcept {
  switch (c) {
    case audit_content::none: return "none";
    case audit_content::findings: return "findings";
    case audit_content::full: return "full";
  }
  return "none";
}

std::string_view to_string(unscannable_mode m) noexcept {
  switch (m) {
    case unscannable_mode::block: return "block";
    case unscannable_mode::tag: return "tag";
    case unscannable_mode::allow: return "allow";
  }
  return "block";
}

std::string config_diagnostic::to_string() const {
  std::string s = file;
  if (line > 0) {
    s += ':';
    s += std::to_string(line);
    s += ':';
    s += std::to_string(col);
  }
  s += ": error: ";
  s += code;
  s += ": ";
  s += message;
  return s;
}

static std::string join_diagnostics(const std::vector<config_diagnostic>& d) {
  std::string s;
  for (const auto& x : d) {
    if (!s.empty()) s += '\n';
    s += x.to_string();
  }
  return s;
}

config_error::config_error(std::vector<config_diagnostic> d)
    : std::runtime_error(join_diagnostics(d)), diagnostics_(std::move(d)) {}

std::string_view to_string(listener_mode m) noexcept {
  switch (m) {
    case listener_mode::reverse: return "reverse";
    case listener_mode::forward: return "forward";
    case listener_mode::transparent: return "transparent";
  }
  return "reverse";
}

std::string_view to_string(untrusted_action a) noexcept {
  return a == untrusted_action::tunnel ? "tunnel" : "refuse";
}

bool config::has_edge_listener() const noexcept {
  return std::any_of(listeners.begin(), listeners.end(),
                     [](const listener_config& l) { return l.mode != listener_mode::reverse; });
}

const interception_config& config::edge() const noexcept {
  static const interception_config defaults;
  return interception ? *interception : defaults;
}

std::filesystem::path default_providers_path() { return CUSTOMS_DEFAULT_PROVIDERS; }

unsigned config::effective_threads() const noexcept {
  if (threads != 0) return threads;
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

bool parse_upstream_url(std::string_view s, upstream_url& out, std::string& why) {
  out = upstream_url{};
  const auto sep = s.find("://");
  if (sep == std::string_view::npos) {
    why = "expected http://host[:port][/path] or https://...";
    return false;
  }
  std::string scheme(s.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme == "https") out.tls = true;
  else if (scheme != "http") {
    why = "scheme must be http or https";
    return false;
  }
  std::string_view rest = s.substr(sep + 3);
  if (rest.find_first_of("?#@ \t") != std::string_view::npos) {
    why = "no user info, query, fragment or blanks allowed";
    return false;
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      why = "unterminated IPv6 literal";
      return false;
    }
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        why = "junk after IPv6 literal";
        return false;
      }
      port = after.substr(1);
    }
    if (!valid_ip(out.host)) {
      why = "bad IPv6 literal";
      return false;
    }
  } else {
    const auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    for (char c : out.host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
        why = "bad host name";
        return false;
      }
    }
  }
  if (out.host.empty()) {
    why = "missing host";
    return false;
  }
  if (port.empty()) {
    if (authority.find(':') != std::string_view::npos && authority.back() == ':') {
      why = "empty port";
      return false;
    }
    out.port = out.tls ? 443 : 80;
  } else {
    std::uint32_t p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) {
        why = "bad port";
        return false;
      }
      p = p * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (p == 0 || p > 65535) {
      why = "port must be 1..65535";
      return false;
    }
    out.port = static_cast<std::uint16_t>(p);
  }
  if (has_dot_segment(path) || path.find('%') != std::string_view::npos) {
    why = "base path must be plain (no dot segments or escapes)";
    return false;
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.base_path = std::string(path);
  return true;
}

config parse_config(std::string_view yaml, const std::string& file_name,
                    const std::filesystem::path& base_dir) {
  walker w(file_name, base_dir);
  YAML::Node root;
  if (const auto bad = policy::check_yaml_top_level(yaml)) {
    YAML::Mark at;
    at.line = static_cast<int>(bad->line) - 1;
    at.column = 0;
    w.error(at, "E_YAML", bad->message);
    throw config_error(w.diagnostics());
  }
  try {
    // One document: a second one (after "---") would be ignored silently by a
    // plain load, so what the operator reads would not be what customsd runs.
    const auto docs = YAML::LoadAll(std::string(yaml));
    if (docs.size() > 1) {
      w.error(docs[1].Mark(), "E_YAML", "a config file holds one YAML document; this is a second one");
      throw config_error(w.diagnostics());
    }
    if (!docs.empty()) root = docs[0];
    if (root) {
      if (const auto big = policy::check_yaml_expansion(root, policy::file_expansion_limits)) {
        YAML::Mark at;
        at.line = static_cast<int>(big->line) - 1;
        at.column = 0;
        w.error(at, "E_YAML", big->message);
        throw config_error(w.diagnostics());
      }
    }
  } catch (const YAML::ParserException& e) {
    w.error(e.mark, "E_YAML", e.msg);
    throw config_error(w.diagnostics());
  } catch (const YAML::Exception& e) {
    w.error(e.mark, "E_YAML", e.msg);
    throw config_error(w.diagnostics());
  }
  config c;
  if (!root || root.IsNull()) {
    w.error(YAML::Mark{}, "E_MISSING", "the file is empty");
    throw config_error(w.diagnostics());
  }
  try {
    read_document(w, root, base_dir, c);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed documents only while they are walked.
    w.error(e.mark, "E_YAML", e.msg);
  }
  if (!w.diagnostics().empty()) throw config_error(w.diagnostics());
  return c;
}

config load_config(const std::filesystem::path& file) {
  std::string text;
  try {
    text = policy::read_input_file(file, max_config_bytes);
  } catch (const policy::input_file_error& e) {
    throw config_io_error(file.string() + ": error: E_IO: " + e.why());
  }
  auto base = file.parent_path();
  if (base.empty()) base = ".";
  config c = parse_config(text, file.string(), base);
  c.file = file;
  return c;
}

}  // namespace customs::daemon
