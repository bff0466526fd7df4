// libFuzzer target: the provider catalogue loader (daemon/catalogue). Input:
// byte 0 is ignored (the replay runner's selector), the rest is a catalogue
// file. Properties: never crashes or throws; every entry it accepts has a
// valid jurisdiction, sources and a host key that finds itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/catalogue/catalogue.hpp"

using namespace customs::daemon;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<catalogue_entry> entries;
  std::vector<config_diagnostic> diagnostics;
  parse_catalogue(in, "fuzz.yaml", entries, diagnostics);
  for (const auto& d : diagnostics) {
    if (d.code.empty() || d.message.empty()) std::abort();
  }
  for (const auto& e : entries) {
    if (!valid_jurisdiction(e.jurisdiction) || e.sources.empty() || e.provider.empty()) std::abort();
  }
  // Distinct hosts only (duplicates are the loader's error across files).
  std::vector<catalogue_entry> unique;
  for (auto& e : entries) {
    bool seen = false;
    for (const auto& u : unique) seen = seen || u.host == e.host;
    if (!seen) unique.push_back(e);
  }
  const catalogue c(std::move(unique));
  for (const auto& e : c.entries()) {
    const std::string probe = e.is_pattern() ? "x" + e.host.substr(1) : e.host;
    const catalogue_entry* f = c.find(probe);
    if (f == nullptr) std::abort();
    if (!e.is_pattern() && f->host != e.host) std::abort();
  }
  return 0;
}
