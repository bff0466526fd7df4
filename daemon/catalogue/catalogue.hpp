#pragma once
// The provider catalogue: which AI API hosts customsd knows, the API dialect
// each speaks and the jurisdiction where it processes data, with the sources
// for that claim. In forward and transparent mode a flow to a catalogued host
// is intercepted (TLS terminated, then the same pipeline as a reverse route);
// every other host is tunnelled as bytes, never decrypted.
//
// File format (YAML, one or more files; folders: every *.yaml / *.yml inside,
// in path order; JSON Schema: config/providers/schema.json):
//
//   schema: customs/providers/v1
//   hosts:
//     - host: api.openai.com            # a DNS name, or "*.suffix" (any name under suffix)
//       provider: OpenAI                # display name
//       dialect: openai                 # openai | anthropic | gemini
//       jurisdiction: US                # ISO 3166-1 alpha-2 of the processing location
//       sources: ["..."]                # at least one: where the claim comes from
//       on_untrusted: tunnel            # optional: tunnel | refuse (see below)
//       api_paths: [/v1/]               # optional: path prefixes that are the API
//       note: "..."                     # optional free text
//
// Lookup: an exact host wins over patterns; among patterns the longest suffix
// wins. "*.openai.azure.com" matches "x.openai.azure.com" and "a.b.openai.azure.com",
// not "openai.azure.com". Host names are compared in lower case without a
// trailing dot. A host given twice (in any of the files) is an error.
//
// on_untrusted: what to do with the next connections from a client that
// rejected customsd's certificate for this host (the app pins its certificates
// or the operator's CA is not installed there): tunnel them uninspected or
// refuse them. Unset: the config's interception.on_untrusted.
//
// api_paths: on hosts that also serve a web site, requests whose path starts
// with none of the prefixes are relayed without inspection (they are not API
// calls). Unset: every request is an API call.
//
// Control plane: load_catalogue throws config_error with every problem found,
// each "file:line:col: error: CODE: message". Lookups are data plane (noexcept).

#include "daemon/config.hpp"
#include "daemon/dialect/dialect.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace customs::daemon {

struct catalogue_entry {
  std::string host;      // as the key: "api.openai.com" or "*.openai.azure.com" (lower case)
  std::string provider;
  dialect api = dialect::openai;
  std::string jurisdiction;
  std::vector<std::string> sources;
  std::optional<untrusted_action> on_untrusted;
  std::vector<std::string> api_paths;  // empty: every path
  std::string note;
  std::string file;  // where it was defined, for messages
  int line = 0;

  [[nodiscard]] bool is_pattern() const noexcept { return host.starts_with("*."); }
  // Whether a request path (query allowed) is an API call on this host.
  [[nodiscard]] bool is_api_path(std::string_view target) const noexcept;
  friend bool operator==(const catalogue_entry&, const catalogue_entry&) = default;
};

// Limits of the loader (documented constants).
inline constexpr std::size_t catalogue_max_file_bytes = 4u << 20;
inline constexpr std::size_t catalogue_max_entries = 100000;

class catalogue {
 public:
  catalogue() = default;
  explicit catalogue(std::vector<catalogue_entry> entries);

  // The entry for a host name (any case, trailing dot allowed), or null.
  [[nodiscard]] const catalogue_entry* find(std::string_view host) const noexcept;
  [[nodiscard]] const std::vector<catalogue_entry>& entries() const noexcept { return entries_; }
  // Index of an entry returned by find (its position in entries()).
  [[nodiscard]] std::size_t index_of(const catalogue_entry& e) const noexcept {
    return static_cast<std::size_t>(&e - entries_.data());
  }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }

 private:
  std::vector<catalogue_entry> entries_;
  std::unordered_map<std::string, std::size_t> exact_;     // host -> index
  std::unordered_map<std::string, std::size_t> suffixes_;  // "openai.azure.com" -> index of "*.openai.azure.com"
};

// Lower case, without one trailing dot; false when `host` is not a DNS name
// (letters, digits, '-', '_' in labels of 1..63, '.' between them, 1..253 in
// all). Data plane: used on SNI and CONNECT authorities.
[[nodiscard]] bool normalize_host(std::string_view host, std::string& out) noexcept;

// Parses one catalogue file's text; diagnostics are appended (file_name is used
// in them). Never throws; what parsed without error is appended to `out`.
void parse_catalogue(std::string_view yaml, const std::string& file_name, std::vector<catalogue_entry>& out,
                     std::vector<config_diagnostic>& diagnostics);

// Loads files and folders as one catalogue. Throws config_error listing every
// problem, config_io_error when a path cannot be read.
[[nodiscard]] std::shared_ptr<const catalogue> load_catalogue(std::span<const std::filesystem::path> paths);

}  // namespace customs::daemon
