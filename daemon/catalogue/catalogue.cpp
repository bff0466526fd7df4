#include "daemon/catalogue/catalogue.hpp"
#include "policy/yaml_guard.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace customs::daemon {
namespace {

class reporter {
 public:
  reporter(const std::string& file, std::vector<config_diagnostic>& out) : file_(file), out_(out) {}
  void error(const YAML::Mark& m, std::string code, std::string message) {
    config_diagnostic d;
    d.file = file_;
    d.line = m.line >= 0 ? m.line + 1 : 0;
    d.col = m.column >= 0 ? m.column + 1 : 0;
    d.code = std::move(code);
    d.message = std::move(message);
    out_.push_back(std::move(d));
  }
  void error(const YAML::Node& n, std::string code, std::string message) {
    error(n.Mark(), std::move(code), std::move(message));
  }
  [[nodiscard]] std::size_t count() const noexcept { return out_.size(); }

 private:
  const std::string& file_;
  std::vector<config_diagnostic>& out_;
};

bool scalar(reporter& r, const YAML::Node& n, const std::string& path, std::string& out) {
  if (!n.IsScalar()) {
    r.error(n, "E_TYPE", path + ": expected a string");
    return false;
  }
  out = n.Scalar();
  return true;
}

// A non-empty list of strings, each checked by `why_bad` (empty: fine).
template <class Check>
void string_list(reporter& r, const YAML::Node& v, const std::string& p, std::string_view what,
                 std::vector<std::string>& out, Check why_bad) {
  if (!v.IsSequence() || v.size() == 0) {
    r.error(v, "E_VALUE", p + ": " + std::string(what));
    return;
  }
  std::size_t i = 0;
  for (const auto& item : v) {
    std::string s;
    const std::string q = p + "[" + std::to_string(i++) + "]";
    if (!scalar(r, item, q, s)) continue;
    if (const std::string bad = why_bad(s); !bad.empty()) r.error(item, "E_VALUE", q + ": " + bad);
    else out.push_back(std::move(s));
  }
}

// A host key: a DNS name or "*." followed by one.
bool host_key(std::string_view s, std::string& out) {
  if (s.starts_with("*.")) {
    std::string rest;
    if (!normalize_host(s.substr(2), rest) || rest.find('.') == std::string::npos) return false;
    out = "*." + rest;
    return true;
  }
  return normalize_host(s, out);
}

void read_entry(reporter& r, const YAML::Node& n, const std::string& path, const std::string& file,
                catalogue_entry& e, bool& ok) {
  ok = false;
  if (!n.IsMap()) {
    r.error(n, "E_TYPE", path + ": expected a mapping");
    return;
  }
  const std::size_t before = r.count();
  e.file = file;
  e.line = n.Mark().line + 1;
  std::set<std::string> seen;
  for (auto it = n.begin(); it != n.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node v = it->second;
    if (!key.IsScalar()) {
      r.error(key, "E_TYPE", path + ": keys must be plain names");
      continue;
    }
    const std::string name = key.Scalar();
    const std::string p = path + "." + name;
    if (!seen.insert(name).second) {
      r.error(key, "E_DUPLICATE", "duplicate key '" + p + "'");
      continue;
    }
    if (name == "host") {
      std::string s;
      if (scalar(r, v, p, s) && !host_key(s, e.host)) {
        r.error(v, "E_VALUE", p + ": '" + s + "' is not a host name or a '*.' pattern with a dot in its suffix");
      }
    } else if (name == "provider") {
      if (scalar(r, v, p, e.provider) && e.provider.empty()) r.error(v, "E_VALUE", p + ": empty");
    } else if (name == "dialect") {
      std::string s;
      if (!scalar(r, v, p, s)) continue;
      if (auto d = parse_dialect(s)) e.api = *d;
      else r.error(v, "E_VALUE", p + ": expected openai, anthropic or gemini");
    } else if (name == "jurisdiction") {
      if (scalar(r, v, p, e.jurisdiction) && !valid_jurisdiction(e.jurisdiction)) {
        r.error(v, "E_VALUE", p + ": expected an ISO 3166-1 alpha-2 code such as US");
      }
    } else if (name == "sources") {
      string_list(r, v, p, "a list of at least one source for the jurisdiction", e.sources,
                  [](const std::string& s) -> std::string { return s.empty() ? "empty" : ""; });
    } else if (name == "on_untrusted") {
      std::string s;
      if (!scalar(r, v, p, s)) continue;
      if (s == "tunnel") e.on_untrusted = untrusted_action::tunnel;
      else if (s == "refuse") e.on_untrusted = untrusted_action::refuse;
      else r.error(v, "E_VALUE", p + ": expected tunnel or refuse");
    } else if (name == "api_paths") {
      string_list(r, v, p, "a list of at least one path prefix", e.api_paths, [](const std::string& s) -> std::string {
        if (!s.starts_with('/') || s.find_first_of("?# \t%") != std::string::npos) {
          return "a path prefix starts with '/' and has no query, blanks or escapes";
        }
        return "";
      });
    } else if (name == "note") {
      (void)scalar(r, v, p, e.note);
    } else {
      r.error(key, "E_UNKNOWN_KEY",
              "unknown key '" + p + "' (known: host provider dialect jurisdiction sources on_untrusted api_paths note)");
    }
  }
  for (const char* required : {"host", "provider", "dialect", "jurisdiction", "sources"}) {
    if (!seen.contains(required)) r.error(n, "E_MISSING", "missing key '" + path + "." + required + "'");
  }
  ok = r.count() == before;
}

void read_document(reporter& r, const YAML::Node& root, const std::string& file, std::vector<catalogue_entry>& out) {
  if (!root.IsMap()) {
    r.error(root, "E_TYPE", "expected a mapping with schema and hosts");
    return;
  }
  bool has_schema = false, has_hosts = false;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node v = it->second;
    const std::string name = key.IsScalar() ? key.Scalar() : std::string();
    if (name == "schema") {
      has_schema = true;
      if (!v.IsScalar() || v.Scalar() != "customs/providers/v1") {
        r.error(v, "E_SCHEMA", "schema: expected customs/providers/v1");
      }
    } else if (name == "hosts") {
      has_hosts = true;
      if (!v.IsSequence()) {
        r.error(v, "E_TYPE", "hosts: expected a list");
        continue;
      }
      std::size_t i = 0;
      for (const auto& item : v) {
        if (out.size() >= catalogue_max_entries) {
          r.error(item, "E_VALUE", "hosts: more than " + std::to_string(catalogue_max_entries) + " entries");
          break;
        }
        catalogue_entry e;
        bool ok = false;
        read_entry(r, item, "hosts[" + std::to_string(i++) + "]", file, e, ok);
        if (ok) out.push_back(std::move(e));
      }
    } else {
      r.error(key, "E_UNKNOWN_KEY", "unknown key '" + name + "' (known: schema hosts)");
    }
  }
  if (!has_schema) r.error(root, "E_SCHEMA", "schema: missing (customs/providers/v1)");
  if (!has_hosts) r.error(root, "E_MISSING", "missing key 'hosts'");
}

std::vector<std::filesystem::path> expand(std::span<const std::filesystem::path> paths) {
  std::vector<std::filesystem::path> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::filesystem::path> found;
      for (auto it = std::filesystem::recursive_directory_iterator(p, ec);
           !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        const auto ext = it->path().extension();
        if (it->is_regular_file(ec) && (ext == ".yaml" || ext == ".yml")) found.push_back(it->path());
      }
      if (ec) throw config_io_error(p.string() + ": error: E_IO: cannot list the folder: " + ec.message());
      if (found.empty()) throw config_io_error(p.string() + ": error: E_IO: no *.yaml file in the folder");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (std::filesystem::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      throw config_io_error(p.string() + ": error: E_IO: no such file or folder");
    }
  }
  return files;
}

}  // namespace

bool catalogue_entry::is_api_path(std::string_view target) const noexcept {
  if (api_paths.empty()) return true;
  return std::any_of(api_paths.begin(), api_paths.end(), [&](const std::string& p) { return target.starts_with(p); });
}

bool normalize_host(std::string_view host, std::string& out) noexcept {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return false;
  out.clear();
  out.reserve(host.size());
  std::size_t label = 0;
  for (const char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      out += c;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return label > 0;
}

catalogue::catalogue(std::vector<catalogue_entry> entries) : entries_(std::move(entries)) {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const auto& h = entries_[i].host;
    if (entries_[i].is_pattern()) suffixes_.emplace(h.substr(2), i);
    else exact_.emplace(h, i);
  }
}

const catalogue_entry* catalogue::find(std::string_view host) const noexcept {
  if (entries_.empty()) return nullptr;
  std::string h;
  if (!normalize_host(host, h)) return nullptr;
  if (auto it = exact_.find(h); it != exact_.end()) return &entries_[it->second];
  // Longest suffix first: strip one label at a time.
  for (std::size_t dot = h.find('.'); dot != std::string::npos; dot = h.find('.', dot + 1)) {
    if (auto it = suffixes_.find(h.substr(dot + 1)); it != suffixes_.end()) {
      return &entries_[it->second];
    }
  }
  return nullptr;
}

void parse_catalogue(std::string_view yaml, const std::string& file_name, std::vector<catalogue_entry>& out,
                     std::vector<config_diagnostic>& diagnostics) {
  reporter r(file_name, diagnostics);
  if (yaml.size() > catalogue_max_file_bytes) {
    r.error(YAML::Mark{}, "E_VALUE", "the file is larger than " + std::to_string(catalogue_max_file_bytes) + " bytes");
    return;
  }
  std::vector<catalogue_entry> parsed;
  if (const auto bad = policy::check_yaml_top_level(yaml)) {
    YAML::Mark at;
    at.line = static_cast<int>(bad->line) - 1;
    at.column = 0;
    r.error(at, "E_YAML", bad->message);
    return;
  }
  try {
    const std::vector<YAML::Node> docs = YAML::LoadAll(std::string(yaml));
    if (docs.size() != 1) {
      r.error(YAML::Mark{}, "E_YAML", docs.empty() ? "the file is empty" : "more than one YAML document");
      return;
    }
    if (const auto big = policy::check_yaml_expansion(docs.front(), policy::file_expansion_limits)) {
      YAML::Mark at;
      at.line = static_cast<int>(big->line) - 1;
      at.column = 0;
      r.error(at, "E_YAML", big->message);
      return;
    }
    read_document(r, docs.front(), file_name, parsed);
  } catch (const YAML::Exception& e) {
    r.error(e.mark, "E_YAML", e.msg);
    return;
  } catch (const std::exception& e) {
    r.error(YAML::Mark{}, "E_YAML", e.what());
    return;
  }
  for (auto& e : parsed) out.push_back(std::move(e));
}

std::shared_ptr<const catalogue> load_catalogue(std::span<const std::filesystem::path> paths) {
  std::vector<catalogue_entry> entries;
  std::vector<config_diagnostic> diagnostics;
  for (const auto& f : expand(paths)) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw config_io_error(f.string() + ": error: E_IO: cannot open the file");
    std::string text;
    text.resize(catalogue_max_file_bytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (in.bad()) throw config_io_error(f.string() + ": error: E_IO: cannot read the file");
    parse_catalogue(text, f.string(), entries, diagnostics);
  }
  // A host defined twice, in one file or two.
  std::unordered_map<std::string, const catalogue_entry*> seen;
  for (const auto& e : entries) {
    auto [it, fresh] = seen.emplace(e.host, &e);
    if (!fresh) {
      config_diagnostic d;
      d.file = e.file;
      d.line = e.line;
      d.col = 5;
      d.code = "E_DUPLICATE";
      d.message = "host " + e.host + " is also defined at " + it->second->file + ":" + std::to_string(it->second->line);
      diagnostics.push_back(std::move(d));
    }
  }
  if (!diagnostics.empty()) throw config_error(std::move(diagnostics));
  return std::make_shared<const catalogue>(std::move(entries));
}

}  // namespace customs::daemon
