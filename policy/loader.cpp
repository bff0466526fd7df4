// Rule-file loading (control plane): YAML -> model -> compiled rule set. Reports
// every problem it finds with its file position, never only the first; any error
// rejects the whole set. See docs/rules.md for the format.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "policy/canonical.hpp"
#include "policy/input_file.hpp"
#include "policy/yaml_guard.hpp"
#include "policy/jurisdictions.hpp"
#include "policy/model.hpp"
#include "policy/normalize.hpp"
#include "policy/pattern.hpp"
#include "policy/text.hpp"
#include "policy/volume_compile.hpp"

namespace customs::policy {

std::string diagnostic::to_string() const {
  std::string s = file;
  if (line > 0) {
    s += ':' + std::to_string(line);
    if (col > 0) s += ':' + std::to_string(col);
  }
  s += level == severity::error ? ": error: " : ": warning: ";
  s += code;
  s += ": ";
  s += message;
  return s;
}

namespace {

using namespace detail;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Diagnostics

struct sink {
  std::vector<diagnostic> diags;
  std::size_t errors = 0;

  void add(diagnostic::severity lvl, const origin& at, std::string code, std::string msg) {
    diagnostic d;
    d.level = lvl;
    d.file = at.file;
    d.line = at.line;
    d.col = at.col;
    d.code = std::move(code);
    d.message = std::move(msg);
    if (lvl == diagnostic::severity::error) ++errors;
    diags.push_back(std::move(d));
  }
  void error(const origin& at, std::string code, std::string msg) {
    add(diagnostic::severity::error, at, std::move(code), std::move(msg));
  }
  void warning(const origin& at, std::string code, std::string msg) {
    add(diagnostic::severity::warning, at, std::move(code), std::move(msg));
  }
};

// "detector 'x' (detectors[2].pattern): " -- who and where, for messages.
std::string where(const std::string& what, const std::string& path) {
  return what + " (" + path + "): ";
}

// A name used before everything is read, checked afterwards.
struct reference {
  enum class kind { group, detector, category, rule, volume, scheme } k;
  std::string name;
  origin at;
  std::string what;
  std::string path;
};

bool valid_id(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  const auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!ok_first(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

// The message for a value that is not a country code, with the code meant
// where it is known (the EU's UK and EL, a lower-case code) or what was wrong.
std::string unknown_country(const std::string& v) {
  std::string m = "'" + v + "' is not an ISO 3166-1 alpha-2 code";
  if (const auto hint = country_code_hint(v); !hint.empty()) {
    m += " (did you mean " + std::string(hint) + "?)";
  } else if (v.size() != 2) {
    m += " (jurisdictions are two-letter codes)";
  }
  return m;
}

// A plain (unquoted) scalar that YAML 1.1 tools read as a boolean although
// YAML 1.2 and Customs read it as text: Norway's code NO.
bool yaml11_boolean(const YAML::Node& n, const std::string& v) {
  return n.Tag() == "?" && (v == "NO" || v == "YES" || v == "ON" || v == "OFF");
}

bool valid_group_id(std::string_view s) {
  if (s.empty() || s.size() > 64 || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool valid_category(std::string_view s) {
  if (s.empty() || s.size() > 64 || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  if (s.back() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  });
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// YYYY-MM-DD -> days since the epoch.
std::optional<std::int64_t> parse_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int y = 0;
  unsigned m = 0, d = 0;
  auto num = [](std::string_view t, auto& v) {
    const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    return r.ec == std::errc{} && r.ptr == t.data() + t.size();
  };
  if (!num(s.substr(0, 4), y) || !num(s.substr(5, 2), m) || !num(s.substr(8, 2), d)) return std::nullopt;
  static constexpr unsigned days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1900 || y > 9999 || m < 1 || m > 12 || d < 1 || d > days[m - 1]) return std::nullopt;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (m == 2 && d == 29 && !leap) return std::nullopt;
  return days_from_civil(y, m, d);
}

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Keywords, context words and allow-list entries are compared with the
// normalized text (normalize.hpp), so they are normalized too.
std::string normalized_text(const std::string& s) {
  text::normalized n = text::normalize(s);
  return n.identity ? s : std::move(n.text);
}

template <class T>
void sort_unique(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// ---------------------------------------------------------------------------
// One file

class file_reader {
 public:
  file_reader(std::string file, sink& s, compiled_rule_set& out, std::vector<reference>& refs)
      : file_(std::move(file)), sink_(s), out_(out), refs_(refs) {}

  void read(const YAML::Node& root) {
    if (!root.IsMap()) {
      err(root, "E_TYPE", "file", "(top level)", "a rule file is a mapping (schema, pack, ...)");
      return;
    }
    check_keys(root, {"schema", "pack", "jurisdictions", "check_digits", "detectors", "rules", "exceptions", "volumes", "tests"},
               "file", "");
    const YAML::Node schema = get(root, "schema");
    if (!schema) {
      err(root, "E_SCHEMA", "file", "schema", "missing 'schema: customs/v1'");
    } else if (!schema.IsScalar() || schema.Scalar() != "customs/v1") {
      err(schema, "E_SCHEMA", "file", "schema",
          "unsupported schema '" + (schema.IsScalar() ? schema.Scalar() : std::string("?")) +
              "'; this version reads customs/v1");
      return;
    }
    const YAML::Node pack = get(root, "pack");
    if (!pack) {
      err(root, "E_MISSING_KEY", "file", "pack", "missing 'pack' (id and version)");
    } else {
      read_pack(pack);
    }
    if (const YAML::Node j = get(root, "jurisdictions")) read_groups(j);
    if (const YAML::Node c = get(root, "check_digits")) each(c, "check_digits", [&](const YAML::Node& n, const std::string& p) { read_scheme(n, p); });
    if (const YAML::Node d = get(root, "detectors")) each(d, "detectors", [&](const YAML::Node& n, const std::string& p) { read_detector(n, p); });
    if (const YAML::Node r = get(root, "rules")) each(r, "rules", [&](const YAML::Node& n, const std::string& p) { read_rule(n, p); });
    if (const YAML::Node e = get(root, "exceptions")) each(e, "exceptions", [&](const YAML::Node& n, const std::string& p) { read_exception(n, p); });
    if (const YAML::Node v = get(root, "volumes")) each(v, "volumes", [&](const YAML::Node& n, const std::string& p) { read_volume(n, p); });
    if (const YAML::Node t = get(root, "tests")) each(t, "tests", [&](const YAML::Node& n, const std::string& p) { read_test(n, p); });
  }

 private:
  origin at(const YAML::Node& n) const {
    origin o;
    o.file = file_;
    const YAML::Mark m = n.Mark();
    if (m.line >= 0) {
      o.line = m.line + 1;
      o.col = m.column + 1;
    }
    return o;
  }

  void err(const YAML::Node& n, std::string code, const std::string& what, const std::string& path,
           const std::string& msg) {
    sink_.error(at(n), std::move(code), where(what, path) + msg);
  }
  void yaml11_warning(const YAML::Node& n, const std::string& v, const std::string& what, const std::string& path) {
    sink_.warning(at(n), "W_YAML11_BOOLEAN",
                  where(what, path) + "YAML 1.1 tools read a plain " + v + " as a boolean; write \"" + v + "\"");
  }

  static std::string join(const std::string& base, const std::string& key) {
    return base.empty() ? key : base + "." + key;
  }

  // Looks a key up without inserting (the node is const).
  static YAML::Node get(const YAML::Node& map, const std::string& key) {
    if (!map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    for (auto it = map.begin(); it != map.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
    return YAML::Node(YAML::NodeType::Undefined);
  }

  // Reports keys outside `allowed` and keys given twice.
  void check_keys(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                  const std::string& what, const std::string& path) {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node k = it->first;  // a copy: the iterator hands out a temporary
      const std::string name = k.IsScalar() ? k.Scalar() : "?";
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        std::string known;
        for (const auto a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
        err(k, "E_UNKNOWN_KEY", what, join(path, name), "unknown key '" + name + "' (expected one of: " + known + ")");
      } else if (!seen.insert(name).second) {
        err(k, "E_DUPLICATE_KEY", what, join(path, name), "key '" + name + "' is given twice");
      }
    }
  }

  template <class F>
  void each(const YAML::Node& seq, const std::string& path, F&& f) {
    if (!seq.IsSequence()) {
      if (!seq.IsNull()) err(seq, "E_TYPE", "file", path, "expected a list");
      return;
    }
    for (std::size_t i = 0; i < seq.size(); ++i) f(seq[i], path + "[" + std::to_string(i) + "]");
  }

  bool is_map(const YAML::Node& n, const std::string& what, const std::string& path) {
    if (n.IsMap()) return true;
    err(n, "E_TYPE", what, path, "expected a mapping");
    return false;
  }

  std::optional<std::string> str(const YAML::Node& n, const std::string& what, const std::string& path) {
    if (n.IsScalar()) return n.Scalar();
    err(n, "E_TYPE", what, path, "expected a string");
    return std::nullopt;
  }

  std::optional<std::string> required_str(const YAML::Node& map, const char* key, const std::string& what,
                                          const std::string& path) {
    const YAML::Node n = get(map, key);
    if (!n) {
      err(map, "E_MISSING_KEY", what, join(path, key), std::string("missing '") + key + "'");
      return std::nullopt;
    }
    return str(n, what, join(path, key));
  }

  std::string opt_str(const YAML::Node& map, const char* key, const std::string& what, const std::string& path) {
    const YAML::Node n = get(map, key);
    if (!n) return {};
    return str(n, what, join(path, key)).value_or("");
  }

  std::optional<bool> boolean(const YAML::Node& n, const std::string& what, const std::string& path) {
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) return n.Scalar() == "true";
    err(n, "E_TYPE", what, path, "expected true or false");
    return std::nullopt;
  }

  std::optional<std::size_t> count(const YAML::Node& n, const std::string& what, const std::string& path,
                                   std::size_t max) {
    std::size_t v = 0;
    if (n.IsScalar()) {
      const auto& s = n.Scalar();
      const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
      if (r.ec == std::errc{} && r.ptr == s.data() + s.size() && v <= max) return v;
    }
    err(n, "E_VALUE", what, path, "expected a whole number from 0 to " + std::to_string(max));
    return std::nullopt;
  }

  // A string or a list of strings, with each element's node for positions.
  std::vector<std::pair<std::string, YAML::Node>> strs(const YAML::Node& n, const std::string& what,
                                                       const std::string& path) {
    std::vector<std::pair<std::string, YAML::Node>> out;
    if (n.IsScalar()) {
      out.emplace_back(n.Scalar(), n);
    } else if (n.IsSequence()) {
      for (std::size_t i = 0; i < n.size(); ++i) {
        const YAML::Node e = n[i];
        if (e.IsScalar()) out.emplace_back(e.Scalar(), e);
        else err(e, "E_TYPE", what, path + "[" + std::to_string(i) + "]", "expected a string");
      }
    } else if (!n.IsNull()) {
      err(n, "E_TYPE", what, path, "expected a string or a list of strings");
    }
    return out;
  }

  std::vector<std::string> plain_strs(const YAML::Node& map, const char* key, const std::string& what,
                                      const std::string& path) {
    std::vector<std::string> out;
    if (const YAML::Node n = get(map, key))
      for (auto& [s, node] : strs(n, what, join(path, key))) out.push_back(s);
    return out;
  }

  std::string take_id(const YAML::Node& n, const char* kind, const std::string& path, std::string& what) {
    what = std::string(kind) + " " + path;
    if (!is_map(n, what, path)) return {};
    const auto id = required_str(n, "id", what, path);
    if (!id) return {};
    what = std::string(kind) + " '" + *id + "'";
    if (!valid_id(*id))
      err(get(n, "id"), "E_VALUE", what, join(path, "id"),
          "ids use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit");
    return *id;
  }

  void read_pack(const YAML::Node& n) {
    const std::string what = "pack";
    if (!is_map(n, what, "pack")) return;
    check_keys(n, {"id", "version", "description"}, what, "pack");
    pack_def p;
    p.at = at(n);
    if (auto id = required_str(n, "id", what, "pack")) {
      p.id = *id;
      if (!valid_id(p.id)) err(get(n, "id"), "E_VALUE", what, "pack.id", "pack ids use lower-case letters, digits, '.', '_' and '-'");
    }
    if (auto v = required_str(n, "version", what, "pack")) p.version = *v;
    p.description = opt_str(n, "description", what, "pack");
    pack_ = p.id;
    out_.packs.push_back(std::move(p));
  }

  void read_groups(const YAML::Node& n) {
    if (!n.IsMap()) {
      err(n, "E_TYPE", "file", "jurisdictions", "expected a mapping of group names to groups");
      return;
    }
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string name = it->first.IsScalar() ? it->first.Scalar() : "?";
      const std::string path = "jurisdictions." + name;
      const std::string what = "group '" + name + "'";
      if (!seen.insert(name).second) {
        err(it->first, "E_DUPLICATE_KEY", what, path, "group '" + name + "' is given twice in this file");
        continue;
      }
      if (!valid_group_id(name)) {
        err(it->first, "E_VALUE", what, path,
            "group names are lower-case letters, digits and '_', starting with a letter (upper-case two-letter names are ISO codes)");
        continue;
      }
      const YAML::Node g = it->second;
      if (!is_map(g, what, path)) continue;
      check_keys(g, {"description", "source", "date", "members"}, what, path);
      group_def def;
      def.id = name;
      def.pack = pack_;
      def.at = at(it->first);
      def.description = opt_str(g, "description", what, path);
      if (auto s = required_str(g, "source", what, path)) def.source = *s;
      if (auto d = required_str(g, "date", what, path)) {
        def.date = *d;
        if (!parse_date(*d)) err(get(g, "date"), "E_VALUE", what, path + ".date", "expected a date YYYY-MM-DD");
      }
      const YAML::Node m = get(g, "members");
      if (!m) {
        err(g, "E_MISSING_KEY", what, path + ".members", "missing 'members'");
      } else {
        for (auto& [code, node] : strs(m, what, path + ".members")) {
          if (!is_country_code(code))
            err(node, "E_UNKNOWN_JURISDICTION", what, path + ".members", unknown_country(code));
          else
            def.members.push_back(code);
          if (yaml11_boolean(node, code)) yaml11_warning(node, code, what, path + ".members");
        }
        sort_unique(def.members);
        if (def.members.empty()) err(m, "E_VALUE", what, path + ".members", "a group needs at least one member");
      }
      out_.groups.push_back(std::move(def));
    }
  }

  std::optional<std::int64_t> integer(const YAML::Node& n, const std::string& what, const std::string& path,
                                      std::int64_t lo, std::int64_t hi) {
    std::int64_t v = 0;
    if (n.IsScalar()) {
      const auto& t = n.Scalar();
      const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
      if (r.ec == std::errc{} && r.ptr == t.data() + t.size() && v >= lo && v <= hi) return v;
    }
    err(n, "E_VALUE", what, path, "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
    return std::nullopt;
  }

  std::vector<std::int64_t> integers(const YAML::Node& n, const std::string& what, const std::string& path,
                                     std::int64_t lo, std::int64_t hi) {
    std::vector<std::int64_t> out;
    if (!n.IsSequence()) {
      err(n, "E_TYPE", what, path, "expected a list of whole numbers");
      return out;
    }
    for (std::size_t i = 0; i < n.size(); ++i)
      if (auto v = integer(n[i], what, path + "[" + std::to_string(i) + "]", lo, hi)) out.push_back(*v);
    return out;
  }

  // Lengths: 9, "12-19", or a list of those.
  void read_lengths(const YAML::Node& n, std::vector<std::uint16_t>& out, const std::string& what,
                    const std::string& path) {
    auto one = [&](const YAML::Node& e, const std::string& p) {
      if (e.IsScalar()) {
        const std::string& t = e.Scalar();
        const auto dash = t.find('-');
        std::size_t a = 0, b = 0;
        auto num = [](std::string_view x, std::size_t& v) {
          const auto r = std::from_chars(x.data(), x.data() + x.size(), v);
          return !x.empty() && r.ec == std::errc{} && r.ptr == x.data() + x.size();
        };
        const bool ok = dash == std::string::npos
                            ? num(t, a) && (b = a, true)
                            : num(std::string_view(t).substr(0, dash), a) && num(std::string_view(t).substr(dash + 1), b);
        if (ok && a >= 1 && a <= b && b <= 256) {
          for (std::size_t k = a; k <= b; ++k) out.push_back(static_cast<std::uint16_t>(k));
          return;
        }
      }
      err(e, "E_VALUE", what, p, "expected a length from 1 to 256, or a range such as 12-19");
    };
    if (n.IsSequence()) {
      for (std::size_t i = 0; i < n.size(); ++i) one(n[i], path + "[" + std::to_string(i) + "]");
    } else {
      one(n, path);
    }
    sort_unique(out);
  }

  static bool id_chars(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); });
  }

  // A map of characters (digits or upper-case letters) to values, over base.
  check_scheme::value_map value_map(const YAML::Node& n, check_scheme::value_map base, const std::string& what,
                                    const std::string& path) {
    if (!n.IsMap()) {
      err(n, "E_TYPE", what, path, "expected a mapping of characters to values, e.g. {X: 0, Y: 1}");
      return base;
    }
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node k = it->first;
      const std::string key = k.IsScalar() ? k.Scalar() : "?";
      if (key.size() != 1 || !id_chars(key)) {
        err(k, "E_VALUE", what, path, "'" + key + "' is not one character (a digit or an upper-case letter)");
        continue;
      }
      if (!seen.insert(key).second) {
        err(k, "E_DUPLICATE_KEY", what, path + "." + key, "character '" + key + "' is given twice");
        continue;
      }
      if (auto v = integer(it->second, what, path + "." + key, 0, 9999))
        base[static_cast<unsigned char>(key[0])] = static_cast<std::int16_t>(*v);
    }
    return base;
  }

  void read_scheme(const YAML::Node& n, const std::string& path) {
    std::string what;
    scheme_def def;
    const std::size_t errors_before = sink_.errors;
    def.id = take_id(n, "check-digit scheme", path, what);
    if (!n.IsMap()) return;
    check_keys(n, {"id", "description", "length", "format", "prefixes", "date", "substitute", "rotate", "pad",
                   "algorithm", "alphabet", "values", "position_values", "expand_decimal", "from_right", "weights",
                   "radix", "modulus", "sum_to", "check_table", "examples"},
               what, path);
    if (parse_validator(def.id))
      err(get(n, "id"), "E_VALUE", what, path + ".id", "'" + def.id + "' is the name of a built-in validator");
    def.pack = pack_;
    def.at = at(n);
    def.description = opt_str(n, "description", what, path);
    check_scheme& sc = def.scheme;
    sc.id = def.id;
    if (const YAML::Node l = get(n, "length")) read_lengths(l, sc.lengths, what, path + ".length");
    if (const YAML::Node f = get(n, "format")) {
      if (auto v = str(f, what, path + ".format")) {
        RE2::Options o;
        o.set_log_errors(false);
        o.set_max_mem(1 << 20);
        auto re = std::make_shared<RE2>(*v, o);
        if (!re->ok()) err(f, "E_REGEX", what, path + ".format", re->error());
        else sc.format = *v, sc.format_re = std::move(re);
      }
    }
    if (const YAML::Node p = get(n, "prefixes")) {
      if (!p.IsSequence()) err(p, "E_TYPE", what, path + ".prefixes", "expected a list of prefixes");
      for (std::size_t i = 0; p.IsSequence() && i < p.size(); ++i) {
        const YAML::Node e = p[i];
        const std::string ep = path + ".prefixes[" + std::to_string(i) + "]";
        check_scheme::prefix_range pr;
        if (e.IsMap()) {
          check_keys(e, {"prefix", "length"}, what, ep);
          if (!get(e, "prefix")) {
            err(e, "E_MISSING_KEY", what, ep + ".prefix", "missing 'prefix'");
            continue;
          }
          if (const YAML::Node l = get(e, "length")) read_lengths(l, pr.lengths, what, ep + ".length");
        }
        // (A YAML::Node is a handle: assigning one to another would overwrite the document.)
        const YAML::Node range = e.IsMap() ? get(e, "prefix") : e;
        const auto t = str(range, what, ep);
        if (!t) continue;
        const auto dash = t->find('-');
        pr.lo = t->substr(0, dash);
        pr.hi = dash == std::string::npos ? pr.lo : t->substr(dash + 1);
        if (!id_chars(pr.lo) || !id_chars(pr.hi) || pr.lo.size() != pr.hi.size() || pr.hi < pr.lo) {
          err(range, "E_VALUE", what, ep,
              "a prefix is digits or upper-case letters, or a range of two of the same length such as 51-55");
          continue;
        }
        sc.prefixes.push_back(std::move(pr));
      }
    }
    if (const YAML::Node dn = get(n, "date")) {
      const std::string dp = path + ".date";
      if (is_map(dn, what, dp)) {
        check_keys(dn, {"at", "format", "min_year", "max_year", "month_offsets", "day_offsets"}, what, dp);
        check_scheme::date_rule r;
        if (const YAML::Node a = get(dn, "at")) r.at = static_cast<std::size_t>(integer(a, what, dp + ".at", 0, 255).value_or(0));
        else err(dn, "E_MISSING_KEY", what, dp + ".at", "missing 'at' (the position of the date, from 0)");
        if (auto f = required_str(dn, "format", what, dp)) {
          if (auto form = parse_date_form(*f)) r.fmt = *form;
          else err(get(dn, "format"), "E_VALUE", what, dp + ".format", "format is YYYYMMDD, YYMMDD, DDMMYYYY, DDMMYY, YYYYMM or YYMM");
        }
        if (const YAML::Node y = get(dn, "min_year")) r.min_year = static_cast<int>(integer(y, what, dp + ".min_year", 1000, 9999).value_or(0));
        if (const YAML::Node y = get(dn, "max_year")) r.max_year = static_cast<int>(integer(y, what, dp + ".max_year", 1000, 9999).value_or(0));
        for (const char* k : {"month_offsets", "day_offsets"}) {
          if (const YAML::Node o = get(dn, k)) {
            std::vector<int> v;
            for (const auto x : integers(o, what, dp + "." + k, 0, 99)) v.push_back(static_cast<int>(x));
            (std::string_view(k) == "month_offsets" ? r.month_offsets : r.day_offsets) = v;
          }
        }
        sc.date = r;
      }
    }
    if (const YAML::Node sub = get(n, "substitute")) {
      if (!sub.IsSequence()) err(sub, "E_TYPE", what, path + ".substitute", "expected a list of {at, from, to}");
      for (std::size_t i = 0; sub.IsSequence() && i < sub.size(); ++i) {
        const YAML::Node e = sub[i];
        const std::string ep = path + ".substitute[" + std::to_string(i) + "]";
        if (!is_map(e, what, ep)) continue;
        check_keys(e, {"at", "from", "to"}, what, ep);
        check_scheme::substitution x;
        if (const YAML::Node a = get(e, "at")) x.at = static_cast<std::size_t>(integer(a, what, ep + ".at", 0, 255).value_or(0));
        else err(e, "E_MISSING_KEY", what, ep + ".at", "missing 'at'");
        x.from = required_str(e, "from", what, ep).value_or("");
        x.to = required_str(e, "to", what, ep).value_or("");
        if (!id_chars(x.from) || !id_chars(x.to) || x.from.size() != x.to.size())
          err(e, "E_VALUE", what, ep, "'from' and 'to' are digits or upper-case letters of the same length");
        sc.substitutions.push_back(std::move(x));
      }
    }
    if (const YAML::Node r = get(n, "rotate")) sc.rotate = static_cast<std::size_t>(integer(r, what, path + ".rotate", 0, 64).value_or(0));
    if (const YAML::Node pd = get(n, "pad")) {
      if (is_map(pd, what, path + ".pad")) {
        check_keys(pd, {"length", "value"}, what, path + ".pad");
        if (const YAML::Node l = get(pd, "length")) sc.pad_length = static_cast<std::size_t>(integer(l, what, path + ".pad.length", 1, 256).value_or(0));
        else err(pd, "E_MISSING_KEY", what, path + ".pad.length", "missing 'length'");
        if (const YAML::Node v = get(pd, "value")) sc.pad_value = integer(v, what, path + ".pad.value", 0, 9999).value_or(0);
        else err(pd, "E_MISSING_KEY", what, path + ".pad.value", "missing 'value'");
      }
    }
    if (const YAML::Node a = get(n, "algorithm")) {
      const auto v = str(a, what, path + ".algorithm");
      if (auto al = v ? parse_algo(*v) : std::nullopt) sc.algorithm = *al;
      else if (v) err(a, "E_VALUE", what, path + ".algorithm", "algorithm is weighted, luhn, verhoeff, damm, iso7064_hybrid or none");
    }
    const bool weighted = sc.algorithm == check_scheme::algo::weighted;
    const bool valued = weighted || sc.algorithm == check_scheme::algo::iso7064_hybrid;
    auto only = [&](const char* key, bool allowed, const char* for_what) {
      const YAML::Node k = get(n, key);
      if (k && !allowed)
        err(k, "E_VALUE", what, path + "." + key, std::string("'") + key + "' is only for " + for_what +
                                                      " (the algorithm is " + std::string(to_string(sc.algorithm)) + ")");
      return k && allowed ? k : YAML::Node(YAML::NodeType::Undefined);
    };
    if (const YAML::Node al = only("alphabet", valued, "weighted and iso7064_hybrid")) {
      if (auto v = str(al, what, path + ".alphabet")) {
        std::string sorted_chars = *v;
        std::sort(sorted_chars.begin(), sorted_chars.end());
        if (!id_chars(*v) || std::adjacent_find(sorted_chars.begin(), sorted_chars.end()) != sorted_chars.end())
          err(al, "E_VALUE", what, path + ".alphabet", "an alphabet is distinct digits and upper-case letters");
        else sc.values = check_scheme::alphabet_values(*v);
      }
    }
    if (const YAML::Node v = only("values", valued, "weighted and iso7064_hybrid"))
      sc.values = value_map(v, sc.values, what, path + ".values");
    if (const YAML::Node pv = only("position_values", weighted, "weighted")) {
      if (!pv.IsSequence() || pv.size() == 0) err(pv, "E_TYPE", what, path + ".position_values", "expected a list of mappings");
      for (std::size_t i = 0; pv.IsSequence() && i < pv.size(); ++i)
        sc.position_values.push_back(value_map(pv[i], sc.values, what, path + ".position_values[" + std::to_string(i) + "]"));
    }
    if (const YAML::Node e = only("expand_decimal", weighted, "weighted"))
      sc.expand_decimal = boolean(e, what, path + ".expand_decimal").value_or(false);
    if (const YAML::Node e = only("from_right", weighted, "weighted"))
      sc.from_right = boolean(e, what, path + ".from_right").value_or(false);
    if (const YAML::Node w = only("weights", weighted, "weighted")) {
      sc.weights = integers(w, what, path + ".weights", -1000000, 1000000);
      if (w.IsSequence() && w.size() == 0) err(w, "E_VALUE", what, path + ".weights", "the weight list is empty");
    }
    if (const YAML::Node r = only("radix", weighted, "weighted")) sc.radix = integer(r, what, path + ".radix", 2, 1000).value_or(0);
    if (const YAML::Node m = only("modulus", valued, "weighted and iso7064_hybrid"))
      sc.modulus = integer(m, what, path + ".modulus", 2, 1000000).value_or(0);
    else if (valued)
      err(n, "E_MISSING_KEY", what, path + ".modulus", "missing 'modulus'");
    if (const YAML::Node t = only("sum_to", weighted, "weighted")) sc.sum_to = integer(t, what, path + ".sum_to", 0, 999999);
    if (const YAML::Node t = only("check_table", weighted, "weighted")) {
      if (t.IsScalar()) {
        for (const char c : t.Scalar()) sc.check_table.emplace_back(1, c);
      } else {
        for (auto& [e, node] : strs(t, what, path + ".check_table")) sc.check_table.push_back(e);
      }
      for (const auto& e : sc.check_table)
        if (!id_chars(e)) {
          err(t, "E_VALUE", what, path + ".check_table", "check characters are digits and upper-case letters");
          break;
        }
    }
    if (sink_.errors == errors_before) {
      const std::string why = sc.consistency_error();
      if (!why.empty()) err(n, "E_CHECK_DIGITS", what, path, why);
    }
    if (const YAML::Node ex = get(n, "examples")) {
      const std::string xp = path + ".examples";
      if (is_map(ex, what, xp)) {
        check_keys(ex, {"valid", "invalid"}, what, xp);
        for (const char* k : {"valid", "invalid"})
          if (const YAML::Node list = get(ex, k))
            for (auto& [v, node] : strs(list, what, xp + "." + k))
              def.examples.push_back({v, std::string_view(k) == "valid", at(node)});
      }
    }
    def.broken = sink_.errors != errors_before;
    if (!def.broken) {
      // The scheme's own examples: a scheme that rejects its valid examples or
      // accepts its invalid ones is an error where the example is written.
      for (const auto& e : def.examples) {
        const bool ok = sc.validate(text::alnum_upper(e.text));
        if (ok == e.valid) continue;
        sink_.error(e.at, "E_CHECK_DIGITS_EXAMPLE",
                    where(what, path + ".examples." + (e.valid ? "valid" : "invalid")) + "'" + e.text + "' is " +
                        (e.valid ? "rejected" : "accepted") +
                        (e.valid && !sc.structure_ok(text::alnum_upper(e.text)) ? " (length, format, prefix or date)" : ""));
      }
    }
    if (!def.id.empty()) out_.schemes.push_back(std::move(def));
  }

  void read_detector(const YAML::Node& n, const std::string& path) {
    std::string what;
    detector_def d;
    const std::size_t errors_before = sink_.errors;
    d.id = take_id(n, "detector", path, what);
    if (!n.IsMap()) return;
    check_keys(n, {"id", "description", "category", "sensitive", "pattern", "keywords", "ignore_case",
                   "fullwidth_digits", "digit_separators", "validators", "context", "allow", "max_length"},
               what, path);
    d.pack = pack_;
    d.at = at(n);
    d.description = opt_str(n, "description", what, path);
    if (auto c = required_str(n, "category", what, path)) {
      d.category = *c;
      if (!valid_category(*c))
        err(get(n, "category"), "E_VALUE", what, path + ".category",
            "categories are dotted lower-case names such as pi.phone or financial.card");
    }
    if (const YAML::Node s = get(n, "sensitive")) d.sensitive = boolean(s, what, path + ".sensitive").value_or(false);
    if (const YAML::Node s = get(n, "ignore_case")) d.ignore_case = boolean(s, what, path + ".ignore_case").value_or(false);
    if (const YAML::Node s = get(n, "fullwidth_digits"))
      d.fullwidth_digits = boolean(s, what, path + ".fullwidth_digits").value_or(true);
    if (const YAML::Node s = get(n, "digit_separators")) {
      if (s.IsScalar() && (s.Scalar() == "true" || s.Scalar() == "false" || s.Scalar() == "uniform"))
        d.digit_separators = s.Scalar() == "true"    ? detector_def::separators::any
                             : s.Scalar() == "false" ? detector_def::separators::off
                                                     : detector_def::separators::uniform;
      else
        err(s, "E_VALUE", what, path + ".digit_separators", "digit_separators is true, false or uniform");
    }
    const YAML::Node pat = get(n, "pattern");
    const YAML::Node kws = get(n, "keywords");
    if (pat && kws) {
      err(kws, "E_DETECTOR_KIND", what, path, "give either 'pattern' or 'keywords', not both");
    } else if (!pat && !kws) {
      err(n, "E_DETECTOR_KIND", what, path, "a detector needs a 'pattern' or a 'keywords' list");
    } else if (pat) {
      d.pattern_at = at(pat);
      if (auto p = str(pat, what, path + ".pattern")) {
        d.pattern = *p;
        if (d.pattern.empty()) err(pat, "E_VALUE", what, path + ".pattern", "the pattern is empty");
      }
    } else {
      d.pattern_at = at(kws);
      for (auto& [k, node] : strs(kws, what, path + ".keywords")) {
        if (k.empty()) err(node, "E_VALUE", what, path + ".keywords", "empty keyword");
        else d.keywords.push_back(normalized_text(k));
      }
      sort_unique(d.keywords);
      if (d.keywords.empty()) err(kws, "E_VALUE", what, path + ".keywords", "the keyword list is empty");
    }
    if (const YAML::Node v = get(n, "validators")) {
      for (auto& [name, node] : strs(v, what, path + ".validators")) {
        validator_ref ref;
        ref.name = name;
        ref.at = at(node);
        ref.builtin = parse_validator(name);
        // Not built in: a check-digit scheme of the set, resolved once all files are read.
        if (!ref.builtin) refs_.push_back({reference::kind::scheme, name, at(node), what, path + ".validators"});
        d.validators.push_back(std::move(ref));
      }
      sort_unique(d.validators);
    }
    if (const YAML::Node c = get(n, "context")) {
      if (is_map(c, what, path + ".context")) {
        check_keys(c, {"words", "window"}, what, path + ".context");
        d.context_words = plain_strs(c, "words", what, path + ".context");
        for (auto& w : d.context_words) w = normalized_text(w);
        sort_unique(d.context_words);
        if (d.context_words.empty()) err(c, "E_MISSING_KEY", what, path + ".context.words", "context needs at least one word");
        if (const YAML::Node w = get(c, "window")) d.context_window = count(w, what, path + ".context.window", 256).value_or(0);
        else err(c, "E_MISSING_KEY", what, path + ".context.window", "missing 'window' (bytes either side of the match)");
      }
    }
    d.allow = plain_strs(n, "allow", what, path);
    for (auto& a : d.allow) a = normalized_text(a);
    sort_unique(d.allow);
    if (const YAML::Node m = get(n, "max_length")) d.declared_max = count(m, what, path + ".max_length", 1 << 20);
    d.broken = sink_.errors != errors_before;  // not compiled: its errors are reported already
    if (!d.id.empty()) out_.detectors.push_back(std::move(d));
  }

  void read_matcher(const YAML::Node& n, value_matcher& m, bool jurisdiction, const std::string& what,
                    const std::string& path) {
    m.at = at(n);
    auto take = [&](const YAML::Node& list, std::vector<std::string>& into, const std::string& p) {
      for (auto& [v, node] : strs(list, what, p)) {
        if (jurisdiction) {
          // Upper-case letters are a country code (group names are lower case):
          // an unknown one is E_UNKNOWN_JURISDICTION whatever its length.
          const bool upper = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
          if (upper) {
            if (!is_country_code(v)) err(node, "E_UNKNOWN_JURISDICTION", what, p, unknown_country(v));
            if (yaml11_boolean(node, v)) yaml11_warning(node, v, what, p);
          } else if (valid_group_id(v)) {
            refs_.push_back({reference::kind::group, v, at(node), what, p});
          } else {
            err(node, "E_VALUE", what, p, "'" + v + "' is neither an ISO 3166-1 alpha-2 code nor a group name");
          }
        }
        into.push_back(v);
      }
    };
    if (n.IsMap()) {
      check_keys(n, {"in", "not"}, what, path);
      if (const YAML::Node in = get(n, "in")) {
        take(in, m.in, path + ".in");
        m.any = false;
      }
      if (const YAML::Node no = get(n, "not")) take(no, m.not_in, path + ".not");
    } else {
      take(n, m.in, path);
      m.any = false;
    }
    sort_unique(m.in);
    sort_unique(m.not_in);
  }

  void read_rule(const YAML::Node& n, const std::string& path) {
    std::string what;
    rule_def r;
    r.id = take_id(n, "rule", path, what);
    if (!n.IsMap()) return;
    check_keys(n, {"id", "description", "when", "then", "references"}, what, path);
    r.pack = pack_;
    r.at = at(n);
    r.description = opt_str(n, "description", what, path);
    r.references = plain_strs(n, "references", what, path);
    const YAML::Node w = get(n, "when");
    if (w) {
      const std::string wp = path + ".when";
      if (is_map(w, what, wp)) {
        check_keys(w, {"direction", "src", "dst", "tenants", "detectors", "categories", "sensitive", "parts"}, what, wp);
        if (const YAML::Node d = get(w, "direction")) {
          const auto s = str(d, what, wp + ".direction");
          if (s == "request") r.on_response = false;
          else if (s == "response") r.on_request = false;
          else if (s && *s != "both")
            err(d, "E_VALUE", what, wp + ".direction", "direction is request, response or both");
        }
        if (const YAML::Node s = get(w, "src")) read_matcher(s, r.src, true, what, wp + ".src");
        if (const YAML::Node s = get(w, "dst")) read_matcher(s, r.dst, true, what, wp + ".dst");
        if (const YAML::Node s = get(w, "tenants")) read_matcher(s, r.tenants, false, what, wp + ".tenants");
        if (const YAML::Node s = get(w, "detectors")) {
          for (auto& [v, node] : strs(s, what, wp + ".detectors")) {
            refs_.push_back({reference::kind::detector, v, at(node), what, wp + ".detectors"});
            r.detectors.push_back(v);
          }
          sort_unique(r.detectors);
        }
        if (const YAML::Node s = get(w, "categories")) {
          for (auto& [v, node] : strs(s, what, wp + ".categories")) {
            const std::string_view base = v.ends_with(".*") ? std::string_view(v).substr(0, v.size() - 2) : std::string_view(v);
            if (!valid_category(base)) {
              err(node, "E_VALUE", what, wp + ".categories", "'" + v + "' is not a category (e.g. pi.phone or pi.*)");
              continue;
            }
            refs_.push_back({reference::kind::category, v, at(node), what, wp + ".categories"});
            r.categories.push_back(v);
          }
          sort_unique(r.categories);
        }
        if (const YAML::Node s = get(w, "sensitive")) r.sensitive = boolean(s, what, wp + ".sensitive");
        if (const YAML::Node s = get(w, "parts")) {
          for (auto& [v, node] : strs(s, what, wp + ".parts")) {
            if (!valid_group_id(v)) err(node, "E_VALUE", what, wp + ".parts", "part kinds are lower-case names such as image, file, audio");
            else r.parts.push_back(v);
          }
          sort_unique(r.parts);
        }
      }
    }
    r.has_selector = !r.detectors.empty() || !r.categories.empty() || r.sensitive.has_value();
    const YAML::Node t = get(n, "then");
    if (!t) {
      err(n, "E_MISSING_KEY", what, path + ".then", "missing 'then' (the action)");
    } else if (is_map(t, what, path + ".then")) {
      const std::string tp = path + ".then";
      check_keys(t, {"action", "tags", "redaction"}, what, tp);
      if (auto a = required_str(t, "action", what, tp)) {
        if (auto act = parse_action(*a)) r.act = *act;
        else err(get(t, "action"), "E_VALUE", what, tp + ".action", "action is allow, tag, redact or block");
      }
      r.tags = plain_strs(t, "tags", what, tp);
      sort_unique(r.tags);
      if (const YAML::Node s = get(t, "redaction")) {
        const auto v = str(s, what, tp + ".redaction");
        if (auto st = v ? parse_redaction(*v) : std::nullopt) r.style = *st;
        else if (v) err(s, "E_VALUE", what, tp + ".redaction", "redaction is label, mask or last4");
      }
      if (r.act == action::redact && !r.has_selector)
        err(get(t, "action"), "E_REDACT_FLOW_RULE", what, tp + ".action",
            "redact needs something to redact: add detectors, categories or sensitive to 'when'");
    }
    out_.rules.push_back(std::move(r));
  }

  void read_exception(const YAML::Node& n, const std::string& path) {
    std::string what;
    exception_def e;
    e.id = take_id(n, "exception", path, what);
    if (!n.IsMap()) return;
    check_keys(n, {"id", "description", "rules", "tenants", "routes", "action", "reason", "expires"}, what, path);
    e.pack = pack_;
    e.at = at(n);
    e.description = opt_str(n, "description", what, path);
    if (const YAML::Node r = get(n, "rules")) {
      for (auto& [v, node] : strs(r, what, path + ".rules")) {
        refs_.push_back({reference::kind::rule, v, at(node), what, path + ".rules"});
        e.rules.push_back(v);
      }
    }
    sort_unique(e.rules);
    if (e.rules.empty()) err(n, "E_MISSING_KEY", what, path + ".rules", "an exception names the rules it lowers");
    e.tenants = plain_strs(n, "tenants", what, path);
    e.routes = plain_strs(n, "routes", what, path);
    sort_unique(e.tenants);
    sort_unique(e.routes);
    if (e.tenants.empty() && e.routes.empty())
      err(n, "E_EXCEPTION_SCOPE", what, path, "an exception is scoped to tenants, routes or both");
    if (const YAML::Node a = get(n, "action")) {
      const auto s = str(a, what, path + ".action");
      if (auto act = s ? parse_action(*s) : std::nullopt) e.act = *act;
      else if (s) err(a, "E_VALUE", what, path + ".action", "action is allow, tag, redact or block");
    }
    if (auto r = required_str(n, "reason", what, path)) e.reason = *r;
    if (auto x = required_str(n, "expires", what, path)) {
      e.expires = *x;
      if (auto days = parse_date(*x)) e.expires_end = (*days + 1) * 86400;
      else err(get(n, "expires"), "E_VALUE", what, path + ".expires", "expected a date YYYY-MM-DD");
    }
    out_.exceptions.push_back(std::move(e));
  }

  // A volume counter (policy/volume.hpp, docs/rules.md "Volumes").
  void read_volume(const YAML::Node& n, const std::string& path) {
    std::string what;
    volume_def v;
    v.id = take_id(n, "volume", path, what);
    if (!n.IsMap()) return;
    check_keys(n, {"id", "description", "count", "when", "per", "window", "levels", "references"}, what, path);
    v.pack = pack_;
    v.file = file_;
    const origin o = at(n);
    v.line = o.line;
    v.col = o.col;
    v.description = opt_str(n, "description", what, path);
    v.references = plain_strs(n, "references", what, path);
    if (const YAML::Node c = get(n, "count"); !c) {
      err(n, "E_MISSING_KEY", what, path + ".count", "missing 'count' (the detectors or categories whose findings count)");
    } else if (is_map(c, what, path + ".count")) {
      const std::string cp = path + ".count";
      check_keys(c, {"detectors", "categories", "sensitive"}, what, cp);
      if (const YAML::Node s = get(c, "detectors"))
        for (auto& [x, node] : strs(s, what, cp + ".detectors")) {
          refs_.push_back({reference::kind::detector, x, at(node), what, cp + ".detectors"});
          v.detectors.push_back(x);
        }
      if (const YAML::Node s = get(c, "categories"))
        for (auto& [x, node] : strs(s, what, cp + ".categories")) {
          const std::string_view base = x.ends_with(".*") ? std::string_view(x).substr(0, x.size() - 2) : std::string_view(x);
          if (!valid_category(base)) {
            err(node, "E_VALUE", what, cp + ".categories", "'" + x + "' is not a category (e.g. pi.phone or pi.*)");
            continue;
          }
          refs_.push_back({reference::kind::category, x, at(node), what, cp + ".categories"});
          v.categories.push_back(x);
        }
      if (const YAML::Node s = get(c, "sensitive")) v.sensitive = boolean(s, what, cp + ".sensitive");
      sort_unique(v.detectors);
      sort_unique(v.categories);
      if (v.detectors.empty() && v.categories.empty() && !v.sensitive)
        err(c, "E_MISSING_KEY", what, cp, "count needs detectors, categories or sensitive");
    }
    if (const YAML::Node w = get(n, "when")) {
      const std::string wp = path + ".when";
      if (is_map(w, what, wp)) {
        check_keys(w, {"src", "dst", "tenants"}, what, wp);
        value_matcher m;
        const auto copy = [](const value_matcher& from, volume_def::matcher_text& to) {
          to.any = from.any;
          to.in = from.in;
          to.not_in = from.not_in;
        };
        if (const YAML::Node s = get(w, "src")) { m = {}; read_matcher(s, m, true, what, wp + ".src"); copy(m, v.src); }
        if (const YAML::Node s = get(w, "dst")) { m = {}; read_matcher(s, m, true, what, wp + ".dst"); copy(m, v.dst); }
        if (const YAML::Node s = get(w, "tenants")) { m = {}; read_matcher(s, m, false, what, wp + ".tenants"); copy(m, v.tenants); }
      }
    }
    if (const YAML::Node p = get(n, "per")) {
      for (auto& [x, node] : strs(p, what, path + ".per")) {
        if (x == "tenant") v.per_tenant = true;
        else if (x == "src") v.per_src = true;
        else if (x == "dst") v.per_dst = true;
        else err(node, "E_VALUE", what, path + ".per", "'" + x + "': counts are split per tenant, src or dst");
      }
    }
    if (const YAML::Node w = get(n, "window"); !w) {
      err(n, "E_MISSING_KEY", what, path + ".window", "missing 'window' (calendar_year, calendar_month or rolling)");
    } else if (is_map(w, what, path + ".window")) {
      const std::string wp = path + ".window";
      check_keys(w, {"calendar_year", "calendar_month", "rolling", "time_zone"}, what, wp);
      const int kinds = (get(w, "calendar_year") ? 1 : 0) + (get(w, "calendar_month") ? 1 : 0) + (get(w, "rolling") ? 1 : 0);
      if (kinds != 1) err(w, "E_VALUE", what, wp, "give exactly one of calendar_year: true, calendar_month: true, rolling: \"N days\" / \"N months\"");
      for (const char* k : {"calendar_year", "calendar_month"})
        if (const YAML::Node b = get(w, k)) {
          if (boolean(b, what, wp + "." + k).value_or(false)) {
            v.window = std::string_view(k) == "calendar_year" ? volume_window::calendar_year : volume_window::calendar_month;
          } else {
            err(b, "E_VALUE", what, wp + "." + k, "write true (or use another window)");
          }
        }
      if (const YAML::Node r = get(w, "rolling")) {
        v.window = volume_window::rolling;
        const auto s = str(r, what, wp + ".rolling");
        if (s) {
          v.rolling_text = *s;
          std::uint32_t num = 0;
          const auto sp = s->find(' ');
          const std::string unit = sp == std::string::npos ? std::string() : s->substr(sp + 1);
          const auto res = std::from_chars(s->data(), s->data() + (sp == std::string::npos ? s->size() : sp), num);
          const bool number_ok = res.ec == std::errc{} && res.ptr == s->data() + (sp == std::string::npos ? s->size() : sp);
          if (number_ok && (unit == "days" || unit == "day") && num >= 1 && num <= 3660) v.rolling_days = num;
          else if (number_ok && (unit == "months" || unit == "month") && num >= 1 && num <= 120) v.rolling_months = num;
          else err(r, "E_VALUE", what, wp + ".rolling", "expected \"N days\" (1 to 3660) or \"N months\" (1 to 120)");
        }
      }
      if (const YAML::Node z = get(w, "time_zone")) {
        if (auto s = str(z, what, wp + ".time_zone")) {
          v.time_zone_name = *s;
          std::string why;
          if (auto tz = time_zone::load(*s, why)) v.zone = std::make_shared<const time_zone>(std::move(*tz));
          else err(z, "E_VALUE", what, wp + ".time_zone", "time zone '" + *s + "': " + why);
        }
      } else {
        v.zone = std::make_shared<const time_zone>();
      }
    }
    if (const YAML::Node ls = get(n, "levels"); !ls) {
      err(n, "E_MISSING_KEY", what, path + ".levels", "missing 'levels' (thresholds and what happens at each)");
    } else if (!ls.IsSequence() || ls.size() == 0) {
      err(ls, "E_TYPE", what, path + ".levels", "expected a non-empty list of levels");
    } else {
      for (std::size_t i = 0; i < ls.size(); ++i) {
        const YAML::Node l = ls[i];
        const std::string lp = path + ".levels[" + std::to_string(i) + "]";
        std::string lwhat;
        volume_level_def lv;
        lv.id = take_id(l, "volume level", lp, lwhat);
        if (!l.IsMap()) continue;
        check_keys(l, {"id", "description", "reaching", "exceeding", "action", "tags", "references"}, lwhat, lp);
        const origin lo = at(l);
        lv.line = lo.line;
        lv.col = lo.col;
        lv.description = opt_str(l, "description", lwhat, lp);
        const YAML::Node reach = get(l, "reaching");
        const YAML::Node exceed = get(l, "exceeding");
        if ((reach ? 1 : 0) + (exceed ? 1 : 0) != 1) {
          err(l, "E_VALUE", lwhat, lp, "give exactly one of 'reaching: N' (count >= N) and 'exceeding: N' (count > N)");
        } else if (reach) {
          if (auto c = count(reach, lwhat, lp + ".reaching", std::size_t{1} << 40)) {
            if (*c == 0) err(reach, "E_VALUE", lwhat, lp + ".reaching", "a threshold is at least 1");
            lv.at_least = *c;
            lv.threshold_text = "reaching " + std::to_string(*c);
          }
        } else if (auto c = count(exceed, lwhat, lp + ".exceeding", std::size_t{1} << 40)) {
          lv.at_least = *c + 1;
          lv.threshold_text = "exceeding " + std::to_string(*c);
        }
        if (auto a = required_str(l, "action", lwhat, lp)) {
          if (*a == "require_exception") {
            lv.act = action::block;
            lv.require_exception = true;
          } else if (auto act = parse_action(*a); act && *act != action::allow) {
            lv.act = *act;
          } else {
            err(get(l, "action"), "E_VALUE", lwhat, lp + ".action", "a level's action is tag, redact, block or require_exception");
          }
        }
        lv.tags = plain_strs(l, "tags", lwhat, lp);
        sort_unique(lv.tags);
        lv.references = plain_strs(l, "references", lwhat, lp);
        v.levels.push_back(std::move(lv));
      }
      std::stable_sort(v.levels.begin(), v.levels.end(), [](const auto& a, const auto& b) { return a.at_least < b.at_least; });
      for (std::size_t i = 1; i < v.levels.size(); ++i)
        if (v.levels[i].at_least == v.levels[i - 1].at_least)
          err(ls, "E_VALUE", what, path + ".levels", "levels '" + v.levels[i - 1].id + "' and '" + v.levels[i].id + "' have the same threshold");
    }
    out_.volumes.push_back(std::move(v));
  }

  void read_test(const YAML::Node& n, const std::string& path) {
    std::string what;
    test_def t;
    t.id = take_id(n, "test", path, what);
    if (!n.IsMap()) return;
    check_keys(n, {"id", "description", "input", "chunks", "src", "dst", "direction", "tenant", "route",
                   "parts", "now", "volumes", "expect"},
               what, path);
    t.pack = pack_;
    t.at = at(n);
    const YAML::Node in = get(n, "input");
    const YAML::Node ch = get(n, "chunks");
    if (in && ch) {
      err(ch, "E_TEST", what, path, "give either 'input' or 'chunks', not both");
    } else if (in) {
      t.input = str(in, what, path + ".input").value_or("");
    } else if (ch) {
      t.chunked = true;
      if (!ch.IsSequence()) err(ch, "E_TYPE", what, path + ".chunks", "expected a list of strings");
      for (auto& [c, node] : strs(ch, what, path + ".chunks")) {
        t.chunks.push_back(c);
        t.input += c;
      }
    } else {
      err(n, "E_TEST", what, path, "a test needs 'input' or 'chunks'");
    }
    for (const char* key : {"src", "dst"}) {
      if (const YAML::Node c = get(n, key)) {
        const auto v = str(c, what, path + "." + key);
        if (v && !is_country_code(*v)) err(c, "E_UNKNOWN_JURISDICTION", what, path + "." + key, unknown_country(*v));
        (std::string_view(key) == "src" ? t.ctx.src : t.ctx.dst) = v.value_or("");
      }
    }
    t.ctx.dir = direction::request;
    if (const YAML::Node d = get(n, "direction")) {
      const auto s = str(d, what, path + ".direction");
      if (auto dir = s ? parse_direction(*s) : std::nullopt) t.ctx.dir = *dir;
      else if (s) err(d, "E_VALUE", what, path + ".direction", "direction is request or response");
    }
    t.ctx.tenant = opt_str(n, "tenant", what, path);
    t.ctx.route = opt_str(n, "route", what, path);
    if (const YAML::Node p = get(n, "parts")) {
      if (is_map(p, what, path + ".parts"))
        for (auto it = p.begin(); it != p.end(); ++it) {
          const std::string kind = it->first.IsScalar() ? it->first.Scalar() : "?";
          if (auto c = count(it->second, what, path + ".parts." + kind, 1000000))
            t.ctx.non_text_parts[kind] = static_cast<std::uint32_t>(*c);
        }
    }
    if (const YAML::Node vs = get(n, "volumes")) {
      // Counter state before the test: {counter id: subjects already counted}.
      if (is_map(vs, what, path + ".volumes"))
        for (auto it = vs.begin(); it != vs.end(); ++it) {
          const std::string counter = it->first.IsScalar() ? it->first.Scalar() : "?";
          refs_.push_back({reference::kind::volume, counter, at(it->first), what, path + ".volumes"});
          if (auto c = count(it->second, what, path + ".volumes." + counter, std::size_t{1} << 40))
            t.volumes[counter] = *c;
        }
    }
    if (const YAML::Node w = get(n, "now")) {
      const auto s = str(w, what, path + ".now");
      if (auto days = s ? parse_date(*s) : std::nullopt)
        t.ctx.now = std::chrono::system_clock::time_point(std::chrono::seconds(*days * 86400 + 43200));
      else if (s) err(w, "E_VALUE", what, path + ".now", "expected a date YYYY-MM-DD");
    }
    const YAML::Node x = get(n, "expect");
    if (!x) {
      err(n, "E_MISSING_KEY", what, path + ".expect", "a test needs 'expect' (action, findings, ...)");
    } else if (is_map(x, what, path + ".expect")) {
      const std::string xp = path + ".expect";
      check_keys(x, {"action", "findings", "absent", "rules", "tags", "redacted"}, what, xp);
      if (const YAML::Node a = get(x, "action")) {
        const auto s = str(a, what, xp + ".action");
        if (auto act = s ? parse_action(*s) : std::nullopt) t.expect_action = *act;
        else if (s) err(a, "E_VALUE", what, xp + ".action", "action is allow, tag, redact or block");
      }
      if (const YAML::Node f = get(x, "findings")) {
        t.expect_findings.emplace();
        if (!f.IsSequence()) {
          err(f, "E_TYPE", what, xp + ".findings", "expected a list of {detector, text}");
        } else {
          for (std::size_t i = 0; i < f.size(); ++i) {
            const YAML::Node e = f[i];
            const std::string ep = xp + ".findings[" + std::to_string(i) + "]";
            if (!is_map(e, what, ep)) continue;
            check_keys(e, {"detector", "text"}, what, ep);
            test_def::expected_finding ef;
            if (auto d = required_str(e, "detector", what, ep)) {
              ef.detector = *d;
              refs_.push_back({reference::kind::detector, *d, at(get(e, "detector")), what, ep + ".detector"});
            }
            if (const YAML::Node tx = get(e, "text")) ef.text = str(tx, what, ep + ".text");
            t.expect_findings->push_back(std::move(ef));
          }
        }
      }
      if (const YAML::Node a = get(x, "absent")) {
        for (auto& [v, node] : strs(a, what, xp + ".absent")) {
          refs_.push_back({reference::kind::detector, v, at(node), what, xp + ".absent"});
          t.expect_absent.push_back(v);
        }
      }
      if (const YAML::Node r = get(x, "rules")) {
        t.expect_rules.emplace();
        for (auto& [v, node] : strs(r, what, xp + ".rules")) {
          refs_.push_back({reference::kind::rule, v, at(node), what, xp + ".rules"});
          t.expect_rules->push_back(v);
        }
        sort_unique(*t.expect_rules);
      }
      if (get(x, "tags")) {
        t.expect_tags = plain_strs(x, "tags", what, xp);
        sort_unique(*t.expect_tags);
      }
      if (const YAML::Node r = get(x, "redacted")) t.expect_redacted = str(r, what, xp + ".redacted");
    }
    out_.tests.push_back(std::move(t));
  }

  std::string file_;
  sink& sink_;
  compiled_rule_set& out_;
  std::vector<reference>& refs_;
  std::string pack_;
};

// ---------------------------------------------------------------------------
// The whole set

bool category_matches(std::string_view pattern, std::string_view category) {
  if (pattern.ends_with(".*")) {
    const auto base = pattern.substr(0, pattern.size() - 2);
    return category == base || (category.size() > base.size() && category.starts_with(base) && category[base.size()] == '.');
  }
  return pattern == category;
}

template <class T>
void check_duplicates(const std::vector<T>& items, const char* kind, sink& s) {
  std::map<std::string, const T*> first;
  for (const auto& it : items) {
    if (it.id.empty()) continue;
    auto [pos, inserted] = first.emplace(it.id, &it);
    if (!inserted) {
      const origin& o = pos->second->at;
      s.error(it.at, "E_DUPLICATE_ID",
              std::string(kind) + " '" + it.id + "': the id is already used at " + o.file + ":" +
                  std::to_string(o.line) + ":" + std::to_string(o.col));
    }
  }
}

// A character class that holds what looks like the rest of a pattern: a
// quantifier "{n}", a group or an alternation, as when a ']' was left out or
// put too late ("[0-9{6}]", "[A-Z(\d+)]"). Valid, but surely not meant. Returns
// the class as written, or empty.
std::string swallowing_class(std::string_view p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      ++i;
      continue;
    }
    if (p[i] != '[') continue;
    const std::size_t start = i++;
    if (i < p.size() && p[i] == '^') ++i;
    if (i < p.size() && p[i] == ']') ++i;  // a literal ']' first
    bool suspicious = false;
    for (; i < p.size() && p[i] != ']'; ++i) {
      if (p[i] == '\\') {
        ++i;
        // \x{2010}, \p{Han}: the braces belong to the escape.
        if (i + 1 < p.size() && (p[i] == 'x' || p[i] == 'p' || p[i] == 'P') && p[i + 1] == '{') {
          const auto end = p.find('}', i + 2);
          if (end != std::string_view::npos) i = end;
        }
        continue;
      }
      if (p[i] == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // [:alpha:]
        const auto end = p.find(":]", i + 2);
        if (end != std::string_view::npos) i = end + 1;
        continue;
      }
      // '(' and ')' are common separators in a class ("[ ().-]"): only a
      // group-like "(x...)" with a pattern character after the '(' counts.
      if (p[i] == '|') suspicious = true;
      if (p[i] == '(' && i + 2 < p.size() && p[i + 1] != ')' && p[i + 1] != ' ' && p[i + 1] != ']' &&
          p.substr(i + 1, p.find(']', i + 1) - i - 1).find(')') != std::string_view::npos)
        suspicious = true;
      if (p[i] == '{' && i + 1 < p.size() && p[i + 1] >= '0' && p[i + 1] <= '9') suspicious = true;
    }
    if (suspicious && i < p.size()) return std::string(p.substr(start, i - start + 1));
  }
  return {};
}

// Ordinary words and short phrases a detector without context words should not
// find (W_DETECTOR_COMMON_WORDS): frequent English words, each also with a
// capital first letter, a few phrases, and frequent Chinese words. Scanned as
// they are, one at a time, with the data plane's rules (boundaries, allow-list,
// validators). No identifiers, no security vocabulary ("password", "secret")
// that keyword detectors legitimately look for, no digits.
const std::vector<std::string>& common_texts() {
  static const std::vector<std::string> texts = [] {
    static constexpr const char* english[] = {
        "the", "be", "to", "of", "and", "in", "that", "have", "it", "for", "not", "on", "with", "he", "as", "you",
        "do", "at", "this", "but", "his", "by", "from", "they", "we", "say", "her", "she", "or", "an", "will", "my",
        "one", "all", "would", "there", "their", "what", "so", "up", "out", "if", "about", "who", "get", "which",
        "go", "me", "when", "make", "can", "like", "time", "no", "just", "him", "know", "take", "people", "into",
        "year", "your", "good", "some", "could", "them", "see", "other", "than", "then", "now", "look", "only",
        "come", "its", "over", "think", "also", "back", "after", "use", "two", "how", "our", "work", "first", "well",
        "way", "even", "new", "want", "because", "any", "these", "give", "day", "most", "us", "is", "are", "was",
        "were", "been", "has", "had", "did", "does", "said", "very", "much", "more", "many", "here", "where",
        "why", "should", "must", "may", "might", "need", "help", "please", "thanks", "hello", "yes", "today",
        "tomorrow", "week", "month", "morning", "evening", "name", "address", "phone", "email", "number",
        "account", "customer", "order", "report", "document", "message", "meeting", "project", "company", "team",
        "office", "house", "home", "city", "country", "world", "water", "money", "price", "question", "answer",
        "problem", "example", "system", "service", "information", "data", "file", "user", "code", "text", "page",
        "book", "school", "student", "family", "friend", "child", "woman", "man", "life", "hand", "part", "place",
        "case", "point", "group", "fact", "right", "left", "high", "small", "large", "great", "little", "old",
        "long", "same", "different", "next", "last", "early", "late", "open", "close", "start", "stop", "find",
        "tell", "ask", "call", "try", "feel", "leave", "put", "mean", "keep", "let", "begin", "seem", "show",
        "hear", "play", "run", "move", "live", "believe", "bring", "write", "read", "send", "pay", "buy", "meet",
        "include", "continue", "change", "lead", "understand", "watch", "follow", "learn", "speak", "spend",
    };
    static constexpr const char* phrases[] = {
        "thank you", "for example", "of the", "in the", "to be", "as well", "good morning", "next week",
        "how are you", "see you soon", "by the way", "let me know",
    };
    static constexpr const char* chinese[] = {
        "我们", "你们", "他们", "你好", "谢谢", "今天", "明天", "时间", "问题", "工作", "公司", "中国",
        "可以", "没有", "什么", "这个", "一个", "因为", "所以", "但是", "如果", "已经", "现在", "需要",
        "知道", "朋友", "学生", "老师", "东西", "地方", "电话", "地址", "名字", "客户", "报告", "会议",
    };
    std::vector<std::string> v;
    for (const char* w : english) {
      v.emplace_back(w);
      std::string cap = w;
      cap[0] = static_cast<char>(cap[0] - 'a' + 'A');
      v.push_back(std::move(cap));
    }
    for (const char* w : phrases) v.emplace_back(w);
    for (const char* w : chinese) v.emplace_back(w);
    return v;
  }();
  return texts;
}

// The number of ISO 3166-1 codes (is_country_code), for "not: every code".
std::size_t country_code_count() {
  static const std::size_t n = [] {
    std::size_t k = 0;
    for (char a = 'A'; a <= 'Z'; ++a)
      for (char b = 'A'; b <= 'Z'; ++b)
        if (const char c[2] = {a, b}; is_country_code(std::string_view(c, 2))) ++k;
    return k;
  }();
  return n;
}

// Why a jurisdiction or tenant condition holds for no flow (W_RULE_NEVER_FIRES),
// or empty. Flows carry an assigned ISO 3166-1 code on both sides (customsd
// refuses a flow whose source it cannot resolve; routes name a code).
std::string unsatisfiable(const value_matcher& m, bool jurisdiction) {
  if (m.not_in_expanded.empty()) return {};
  const auto excluded = [&](const std::string& v) {
    return std::binary_search(m.not_in_expanded.begin(), m.not_in_expanded.end(), v);
  };
  if (!m.any) {
    if (!m.in_expanded.empty() && std::all_of(m.in_expanded.begin(), m.in_expanded.end(), excluded))
      return jurisdiction ? "'not' excludes every jurisdiction 'in' names" : "'not' excludes every tenant 'in' names";
    return {};
  }
  if (!jurisdiction) return {};  // tenants are open-ended: some other tenant remains
  const auto codes = std::count_if(m.not_in_expanded.begin(), m.not_in_expanded.end(),
                                   [](const std::string& c) { return is_country_code(c); });
  if (static_cast<std::size_t>(codes) >= country_code_count()) return "'not' excludes every ISO 3166-1 code";
  return {};
}

// RE2's error for a pattern, said about the pattern as the author wrote it:
// RE2 reports the rewritten pattern (full-width digit classes spliced in), and
// its error() already ends with the fragment. When the written pattern fails
// the same way, its own fragment is named, with where it starts.
std::string regex_error(const RE2& rewritten, const std::string& authored, const RE2::Options& o) {
  const RE2 written(authored, o);
  const RE2& re = written.ok() ? rewritten : written;
  std::string text = re.error();
  const std::string& arg = re.error_arg();
  if (!arg.empty() && text.size() > arg.size() + 2 && text.ends_with(": " + arg)) text.resize(text.size() - arg.size() - 2);
  if (arg.empty()) return text;
  if (written.ok()) return text + " (in the pattern as rewritten for full-width digits): " + arg;
  const auto at = authored.find(arg);
  if (at == std::string::npos || arg == authored) return text + ": " + arg;
  return text + ": " + arg + " (at character " + std::to_string(at + 1) + " of the pattern)";
}

void compile_detector(detector_def& d, std::size_t index, pattern::nfa& nfa, std::vector<std::uint32_t>& starts,
                      const load_options& opts, sink& s) {
  const std::string what = "detector '" + d.id + "'";
  const std::string field = d.keywords.empty() ? "pattern" : "keywords";
  auto fail = [&](const std::string& code, const std::string& msg) {
    s.error(d.pattern_at, code, what + " (" + field + "): " + msg);
  };
  std::string authored;
  if (!d.keywords.empty()) {
    // Longest first, so that leftmost-first matching takes the longest keyword
    // that starts at a position.
    std::vector<std::string> k = d.keywords;
    std::stable_sort(k.begin(), k.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    authored = "(?:";
    for (std::size_t i = 0; i < k.size(); ++i) authored += (i ? "|" : "") + pattern::literal(k[i], d.ignore_case);
    authored += ")";
  } else {
    authored = d.ignore_case ? "(?i:" + d.pattern + ")" : d.pattern;
  }
  auto rw = pattern::rewrite(authored, d.fullwidth_digits && d.keywords.empty());
  if (!rw.error.empty()) return fail("E_REGEX", rw.error);
  d.re2_pattern = std::move(rw.re2);
  RE2::Options o;
  o.set_log_errors(false);
  o.set_encoding(RE2::Options::EncodingUTF8);
  o.set_max_mem(static_cast<int64_t>(opts.regex_max_mem));
  auto re = std::make_shared<RE2>(d.re2_pattern, o);
  if (!re->ok()) {
    if (re->error_code() == RE2::ErrorPatternTooLarge)
      return fail("E_REGEX_TOO_BIG", "the pattern is over the regex memory limit (" + re->error() + ")");
    return fail("E_REGEX", regex_error(*re, authored, o));
  }
  if (d.keywords.empty()) {
    if (const auto cls = swallowing_class(d.pattern); !cls.empty())
      s.warning(d.pattern_at, "W_PATTERN_CLASS",
                what + " (pattern): the character class " + cls +
                    " holds a quantifier, group or '|', which match as plain characters there; was a ']' "
                    "meant earlier?");
  }
  // max_length is about the pattern as written; separators between digits come on top.
  std::size_t written_max = 0;
  {
    pattern::nfa scratch;
    const auto c = pattern::compile(d.re2_pattern, 0, scratch, opts.max_pattern_states);
    if (!c.code.empty()) return fail(c.code, c.error);
    written_max = c.max_len;
  }
  if (d.declared_max && *d.declared_max < written_max)
    return fail("E_MAX_LENGTH", "the pattern can match up to " + std::to_string(written_max) +
                                    " bytes (full-width digits take 3), more than max_length " +
                                    std::to_string(*d.declared_max));
  if (d.digit_separators != detector_def::separators::off && d.keywords.empty()) {
    auto loose = pattern::loosen(d.re2_pattern);
    if (!loose.error.empty()) return fail("E_PATTERN_UNSUPPORTED", loose.error);
    if (loose.re2 != d.re2_pattern) {  // else the pattern has no two digits in a row
      d.strict_re = re;
      d.re2_pattern = std::move(loose.re2);
      re = std::make_shared<RE2>(d.re2_pattern, o);
    }
    if (!re->ok()) {
      if (re->error_code() == RE2::ErrorPatternTooLarge)
        return fail("E_REGEX_TOO_BIG", "with separators between digits, the pattern is over the regex memory limit (" +
                                           re->error() + "); set digit_separators: false or simplify it");
      return fail("E_REGEX", "with separators between digits: " + re->error());
    }
  }
  if (static_cast<std::size_t>(re->ProgramSize()) > opts.max_program_size)
    return fail("E_REGEX_TOO_BIG", "the compiled pattern has " + std::to_string(re->ProgramSize()) +
                                       " instructions, over the limit of " + std::to_string(opts.max_program_size));
  const auto c = pattern::compile(d.re2_pattern, static_cast<std::int32_t>(index), nfa, opts.max_pattern_states,
                                  opts.stream_counted_repeats);
  if (!c.code.empty()) return fail(c.code, c.error);
  d.min_len = c.min_len;
  d.max_len = c.max_len;
  if (d.max_len > opts.max_match_length)
    return fail("E_PATTERN_TOO_LONG", "a match can be " + std::to_string(d.max_len) + " bytes long, over the limit of " +
                                          std::to_string(opts.max_match_length));
  d.re = std::move(re);
  starts[index] = c.start;
}

std::vector<fs::path> collect(std::span<const fs::path> paths, sink& s) {
  std::vector<fs::path> files;
  for (const auto& p : paths) {
    std::error_code ec;
    const auto st = fs::status(p, ec);
    origin o;
    o.file = p.string();
    if (ec || !fs::exists(st)) {
      s.error(o, "E_IO", "no such file or folder");
      continue;
    }
    if (fs::is_directory(st)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        const auto ext = it->path().extension();
        if (it->is_regular_file() && (ext == ".yaml" || ext == ".yml")) found.push_back(it->path());
      }
      if (ec) s.error(o, "E_IO", "cannot list the folder: " + ec.message());
      std::sort(found.begin(), found.end());
      if (found.empty() && !ec) s.error(o, "E_NO_RULE_FILES", "the folder holds no *.yaml or *.yml file");
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(p);
    }
  }
  return files;
}

}  // namespace

namespace {
load_result load(std::span<const std::filesystem::path> paths, const load_options& opts);
}

load_result load_rule_set(std::span<const std::filesystem::path> paths, const load_options& opts) {
  try {
    return load(paths, opts);
  } catch (const std::exception& e) {  // out of memory, a file system error mid-way
    load_result r;
    diagnostic d;
    d.file = paths.empty() ? std::string() : paths.front().string();
    d.code = "E_INTERNAL";
    d.message = std::string("loading stopped: ") + e.what();
    r.diagnostics.push_back(std::move(d));
    return r;
  }
}

namespace {
load_result load(std::span<const std::filesystem::path> paths, const load_options& opts) {
  load_result result;
  sink s;
  auto rs = std::make_shared<compiled_rule_set>();
  std::vector<reference> refs;
  const auto files = collect(paths, s);
  if (paths.empty()) s.error({}, "E_IO", "no rule files given");
  std::vector<std::string> file_order;
  for (const auto& f : files) {
    const std::string name = f.string();
    file_order.push_back(name);
    origin o;
    o.file = name;
    // Regular files only, at most max_file_size bytes: a FIFO or a device named
    // as a rule file is refused without blocking or reading it.
    std::string text;
    try {
      text = read_input_file(f, opts.max_file_size);
    } catch (const input_file_error& e) {
      s.error(o, "E_IO", e.why());
      continue;
    }
    std::vector<YAML::Node> docs;
    if (const auto bad = check_yaml_top_level(text)) {
      o.line = bad->line;
      o.col = 1;
      s.error(o, "E_YAML", bad->message);
      continue;
    }
    try {
      docs = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
      o.line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
      o.col = e.mark.column >= 0 ? e.mark.column + 1 : 0;
      s.error(o, "E_YAML", e.msg);
      continue;
    }
    if (docs.empty()) {
      s.error(o, "E_SCHEMA", "the file is empty");
      continue;
    }
    if (const auto big = check_yaml_expansion(docs[0], {opts.max_expanded_bytes, opts.max_expanded_nodes})) {
      o.line = big->line;
      o.col = 1;
      s.error(o, "E_YAML", big->message);
      continue;
    }
    if (docs.size() > 1) {
      origin o2 = o;
      o2.line = docs[1].Mark().line + 1;
      s.error(o2, "E_YAML", "one rule file holds one YAML document");
    }
    file_reader(name, s, *rs, refs).read(docs[0]);
  }

  compiled_rule_set& set = *rs;
  check_duplicates(set.packs, "pack", s);
  check_duplicates(set.groups, "group", s);
  check_duplicates(set.schemes, "check-digit scheme", s);
  check_duplicates(set.detectors, "detector", s);
  check_duplicates(set.rules, "rule", s);
  check_duplicates(set.exceptions, "exception", s);
  check_duplicates(set.tests, "test", s);

  auto by_id = [](const auto& a, const auto& b) { return a.id < b.id; };
  std::stable_sort(set.detectors.begin(), set.detectors.end(), by_id);
  std::stable_sort(set.rules.begin(), set.rules.end(), by_id);
  std::stable_sort(set.exceptions.begin(), set.exceptions.end(), by_id);
  std::stable_sort(set.groups.begin(), set.groups.end(), by_id);
  std::stable_sort(set.schemes.begin(), set.schemes.end(), by_id);
  std::stable_sort(set.packs.begin(), set.packs.end(), by_id);

  std::map<std::string, const group_def*> groups;
  for (const auto& g : set.groups) groups.emplace(g.id, &g);
  std::map<std::string, std::size_t> detector_index;
  for (std::size_t i = 0; i < set.detectors.size(); ++i) detector_index.emplace(set.detectors[i].id, i);
  std::map<std::string, std::size_t> scheme_index;
  for (std::size_t i = 0; i < set.schemes.size(); ++i) scheme_index.emplace(set.schemes[i].id, i);
  std::map<std::string, std::uint32_t> rule_index;
  for (std::size_t i = 0; i < set.rules.size(); ++i) rule_index.emplace(set.rules[i].id, static_cast<std::uint32_t>(i));
  std::stable_sort(set.volumes.begin(), set.volumes.end(), by_id);
  // Volume levels share the rules' ids: exceptions name them like rules.
  std::set<std::string> level_ids, volume_ids;
  for (const auto& v : set.volumes) {
    volume_ids.insert(v.id);
    for (const auto& l : v.levels) {
      origin lo;
      lo.file = v.file;
      lo.line = l.line;
      lo.col = l.col;
      if (rule_index.count(l.id) || !level_ids.insert(l.id).second)
        s.error(lo, "E_DUPLICATE_ID", "volume level '" + l.id + "': the id is already used by a rule or another level");
    }
  }

  // References.
  for (const auto& r : refs) {
    const std::string head = r.what + " (" + r.path + "): ";
    switch (r.k) {
      case reference::kind::group:
        if (!groups.count(r.name)) s.error(r.at, "E_UNKNOWN_GROUP", head + "no jurisdiction group '" + r.name + "' in this rule set");
        break;
      case reference::kind::detector:
        if (!detector_index.count(r.name)) s.error(r.at, "E_UNKNOWN_DETECTOR", head + "no detector '" + r.name + "' in this rule set");
        break;
      case reference::kind::category: {
        const bool any = std::any_of(set.detectors.begin(), set.detectors.end(),
                                     [&](const auto& d) { return category_matches(r.name, d.category); });
        if (!any) s.error(r.at, "E_UNKNOWN_CATEGORY", head + "no detector in this rule set has category '" + r.name + "'");
        break;
      }
      case reference::kind::volume:
        if (!volume_ids.count(r.name)) s.error(r.at, "E_UNKNOWN_VOLUME", head + "no volume counter '" + r.name + "' in this rule set");
        break;
      case reference::kind::rule:
        if (!rule_index.count(r.name) && !level_ids.count(r.name)) s.error(r.at, "E_UNKNOWN_RULE", head + "no rule '" + r.name + "' in this rule set");
        break;
      case reference::kind::scheme:
        if (!scheme_index.count(r.name))
          s.error(r.at, "E_UNKNOWN_VALIDATOR", head + "unknown validator '" + r.name + "' (built in: " +
                                                   std::string(validator_names()) + "; or the id of a check_digits scheme of the set)");
        break;
    }
  }

  // Validators that name a scheme of the set.
  for (auto& d : set.detectors)
    for (auto& v : d.validators)
      if (!v.builtin)
        if (auto it = scheme_index.find(v.name); it != scheme_index.end()) v.scheme = it->second;

  // Rules: expand groups, compute the detectors each selects.
  auto expand = [&](const std::vector<std::string>& names, std::vector<std::string>& into) {
    for (const auto& n : names) {
      if (auto it = groups.find(n); it != groups.end()) into.insert(into.end(), it->second->members.begin(), it->second->members.end());
      else into.push_back(n);
    }
    sort_unique(into);
  };
  for (auto& r : set.rules) {
    for (value_matcher* m : {&r.src, &r.dst}) {
      expand(m->in, m->in_expanded);
      expand(m->not_in, m->not_in_expanded);
    }
    r.tenants.in_expanded = r.tenants.in;
    r.tenants.not_in_expanded = r.tenants.not_in;
    r.selects.assign(set.detectors.size(), false);
    if (!r.has_selector) continue;
    for (std::size_t i = 0; i < set.detectors.size(); ++i) {
      const auto& d = set.detectors[i];
      bool named = r.detectors.empty() && r.categories.empty();
      named = named || std::binary_search(r.detectors.begin(), r.detectors.end(), d.id);
      named = named || std::any_of(r.categories.begin(), r.categories.end(), [&](const auto& c) { return category_matches(c, d.category); });
      r.selects[i] = named && (!r.sensitive || *r.sensitive == d.sensitive);
    }
  }

  // Exceptions.
  const std::int64_t now = unix_seconds(opts.now.value_or(std::chrono::system_clock::now()));
  for (auto& e : set.exceptions) {
    for (const auto& id : e.rules) {
      auto it = rule_index.find(id);
      if (it == rule_index.end()) continue;
      e.rule_index.push_back(it->second);
      const auto& r = set.rules[it->second];
      if (e.act == action::redact && !r.has_selector)
        s.error(e.at, "E_REDACT_FLOW_RULE", "exception '" + e.id + "' (action): rule '" + id +
                                               "' matches no findings, so it cannot be lowered to redact");
    }
    if (e.expires_end != 0 && e.expires_end <= now)
      s.warning(e.at, "W_EXCEPTION_EXPIRED", "exception '" + e.id + "' (expires): expired on " + e.expires +
                                                  "; it no longer lowers anything");
  }

  for (auto& [o, code, message] : compile_volumes(set)) s.error(o, std::move(code), std::move(message));

  // Detectors: compile patterns, then the set and the streaming automaton.
  pattern::nfa nfa;
  std::vector<std::uint32_t> starts(set.detectors.size(), 0);
  for (std::size_t i = 0; i < set.detectors.size(); ++i)
    if (!set.detectors[i].broken) compile_detector(set.detectors[i], i, nfa, starts, opts, s);

  if (s.errors == 0 && !set.detectors.empty()) {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_encoding(RE2::Options::EncodingUTF8);
    o.set_max_mem(static_cast<int64_t>(opts.set_max_mem));
    set.set = std::make_unique<RE2::Set>(o, RE2::UNANCHORED);
    for (const auto& d : set.detectors) {
      std::string e;
      if (set.set->Add(d.re2_pattern, &e) < 0)
        s.error(d.pattern_at, "E_REGEX", "detector '" + d.id + "' (pattern): " + e);
    }
    origin o0;
    o0.file = set.packs.empty() ? std::string() : set.packs.front().at.file;
    if (s.errors == 0 && !set.set->Compile())
      s.error(o0, "E_SET_TOO_BIG", "the detectors together are over the multi-pattern memory limit (set_max_mem)");
    std::string why;
    if (s.errors == 0 && !set.automaton.build(nfa, starts, set.detectors.size(), opts.max_stream_states, why))
      s.error(o0, "E_STREAM_AUTOMATON", why + "; simplify the patterns (fewer optional parts, smaller counts)");
    set.nfa_states = nfa.states.size();
  }
  for (const auto& d : set.detectors) {
    set.max_match_ = std::max(set.max_match_, d.max_len);
    set.max_context_ = std::max(set.max_context_, d.context_window);
  }
  // A candidate is decided once the bytes after it hold the next character (for
  // the boundary rule) and the context window.
  set.lookahead_ = std::max<std::size_t>(4, set.max_context_);
  // Of N (normalize.hpp): the oldest undecided candidate and a redacted finding
  // before it; each byte of N stands for at most max_expansion bytes of the
  // text; an open base64 run holds up to base64_max_run bytes; the normalizer
  // keeps back at most max_kept_back bytes (an escape, or a row of Chinese
  // numerals being decided).
  set.max_hold_back_ = (2 * set.max_match_ + set.lookahead_ + 4) * text::max_expansion + text::base64_max_run +
                       text::max_kept_back + 4;

  // Lint, for sets that are otherwise valid: rules whose 'when' no flow can
  // satisfy, detectors without context words that find ordinary words.
  if (s.errors == 0) {
    for (const auto& r : set.rules) {
      const std::string what = "rule '" + r.id + "'";
      const std::pair<const value_matcher*, const char*> sides[] = {{&r.src, "src"}, {&r.dst, "dst"}, {&r.tenants, "tenants"}};
      for (const auto& [m, key] : sides)
        if (const std::string why = unsatisfiable(*m, std::string_view(key) != "tenants"); !why.empty())
          s.warning(m->at, "W_RULE_NEVER_FIRES", what + " (when." + key + "): " + why + ", so the rule never fires");
      if (r.has_selector && r.sensitive && std::none_of(r.selects.begin(), r.selects.end(), [](bool b) { return b; })) {
        const std::string which = r.detectors.empty() && r.categories.empty() ? "no detector of the set"
                                                                              : "none of the detectors it names";
        s.warning(r.at, "W_RULE_NEVER_FIRES", what + " (when.sensitive): " + which + " is sensitive: " +
                                                   (*r.sensitive ? "true" : "false") +
                                                   ", so it selects no finding and never fires");
      }
    }
  }
  std::vector<std::string> common_word(set.detectors.size());  // per detector: the text, the word
  std::vector<std::string> common_found(set.detectors.size());
  if (s.errors == 0 && set.set &&
      std::any_of(set.detectors.begin(), set.detectors.end(), [](const auto& d) { return d.context_words.empty(); })) {
    for (const auto& w : common_texts()) {
      for (const auto& f : set.scan(w, 0)) {
        const auto it = detector_index.find(f.detector);
        if (it == detector_index.end() || !set.detectors[it->second].context_words.empty()) continue;
        if (!common_word[it->second].empty()) continue;
        common_word[it->second] = w;
        common_found[it->second] = f.text;
      }
    }
  }

  // Warnings about coverage, for sets that are otherwise valid.
  for (std::size_t i = 0; i < set.detectors.size() && s.errors == 0; ++i) {
    const auto& d = set.detectors[i];
    if (!common_word[i].empty()) {
      const std::string& w = common_word[i];
      const std::string& found = common_found[i];
      const std::string kind = w.find(' ') == std::string::npos ? "word" : "phrase";
      s.warning(d.pattern_at, "W_DETECTOR_COMMON_WORDS",
                "detector '" + d.id + "' (" + (d.keywords.empty() ? "pattern" : "keywords") +
                    "): without context words it finds " +
                    (found == w ? "the common " + kind + " '" + w + "'"
                                : "'" + found + "' in the common " + kind + " '" + w + "'") +
                    " in ordinary text; add context (words, window), a validator, or narrow it");
    }
    const bool used = std::any_of(set.rules.begin(), set.rules.end(), [&](const auto& r) { return r.selects[i]; }) ||
                      std::any_of(set.volumes.begin(), set.volumes.end(), [&](const auto& v) { return v.selects[i]; });
    if (!used) s.warning(d.at, "W_DETECTOR_UNUSED", "detector '" + d.id + "': no rule selects it");
    bool pos = false, neg = false;
    for (const auto& t : set.tests) {
      if (t.expect_findings)
        pos = pos || std::any_of(t.expect_findings->begin(), t.expect_findings->end(), [&](const auto& f) { return f.detector == d.id; });
      neg = neg || std::find(t.expect_absent.begin(), t.expect_absent.end(), d.id) != t.expect_absent.end();
    }
    if (!pos) s.warning(d.at, "W_DETECTOR_UNTESTED", "detector '" + d.id + "': no test expects a finding of it");
    if (!neg) s.warning(d.at, "W_DETECTOR_NO_NEGATIVE_TEST", "detector '" + d.id + "': no test lists it under expect.absent (a near miss)");
  }

  // Diagnostics in file order.
  auto rank = [&](const diagnostic& d) {
    const auto it = std::find(file_order.begin(), file_order.end(), d.file);
    return std::make_tuple(static_cast<std::size_t>(it - file_order.begin()), d.line, d.col);
  };
  std::stable_sort(s.diags.begin(), s.diags.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  result.diagnostics = std::move(s.diags);
  if (s.errors > 0) return result;

  for (const auto& p : set.packs) {
    set.id_ += (set.id_.empty() ? "" : "+") + p.id;
    set.version_ += (set.version_.empty() ? "" : "+") + p.version;
  }
  set.hash_ = canonical_hash(set);
  result.rules = std::move(rs);
  return result;
}
}  // namespace

}  // namespace customs::policy
