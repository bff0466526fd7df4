// libFuzzer target: customsd's config loader (daemon::parse_config) on
// arbitrary bytes, as `customsd --config` and a reload read the file.
//
// Input: the config file's bytes.
//
// The loader resolves relative paths against the config's folder and checks
// that named files exist. Here that folder is a scratch folder holding the
// files the seeds name (rules/, keys, certificates); an input with a value that
// could name anything outside it (an absolute path, "~", or "..") is skipped,
// except route prefixes, so that the file system outside the scratch folder is
// never touched whatever the loader does with paths.
//
// Properties: never crashes; throws nothing but config_error (with at least one
// diagnostic, each with a code and the file's name); a config that loads has at
// least one listener and every route's prefix starts and ends with '/'.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "daemon/config.hpp"
#include "policy/yaml_guard.hpp"
#include "tests/fuzz/fuzz_files.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

namespace fs = std::filesystem;
using customs::fuzz::check;

const fs::path& config_dir() {
  static const fs::path dir = [] {
    const fs::path d = customs::fuzz::scratch_dir() / "etc";
    fs::create_directories(d / "rules");
    fs::create_directories(d / "keys");
    for (const char* f : {"rules/pack.yaml", "keys/auditor.pub", "keys/sealing.key", "keys/signing.key",
                          "server.pem", "server.key", "ca.pem"}) {
      customs::fuzz::write_file(d / f, "");
    }
    return d;
  }();
  return dir;
}

// True when a scalar (not under the key `prefix`) could name a path outside the
// config folder.
bool escapes(const YAML::Node& n, std::string_view key, int depth) {
  if (depth > 64) return true;
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (key == "prefix") return false;
      return s.starts_with('/') || s.starts_with('~') || s.find("..") != std::string::npos;
    }
    case YAML::NodeType::Sequence:
      for (const auto& item : n)
        if (escapes(item, key, depth + 1)) return true;
      return false;
    case YAML::NodeType::Map:
      for (const auto& kv : n) {
        if (escapes(kv.first, {}, depth + 1)) return true;
        const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
        if (escapes(kv.second, k, depth + 1)) return true;
      }
      return false;
    default:
      return false;
  }
}

bool stays_inside(std::string_view yaml) {
  // Text the loader refuses before parsing (policy/yaml_guard.hpp) reaches no
  // path; yaml-cpp itself would never return on some of it.
  if (customs::policy::check_yaml_top_level(yaml)) return true;
  try {
    for (const auto& doc : YAML::LoadAll(std::string(yaml)))
      if (escapes(doc, {}, 0)) return false;
    return true;
  } catch (const YAML::Exception&) {
    // Not YAML: the loader fails before it looks at any path.
    return true;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  if (!stays_inside(yaml)) return 0;
  try {
    const auto c = customs::daemon::parse_config(yaml, "fuzz.yaml", config_dir());
    check(!c.listeners.empty(), "a config without listeners loaded");
    for (const auto& r : c.routes) {
      check(r.prefix.size() >= 1 && r.prefix.front() == '/' && r.prefix.back() == '/',
            "a route prefix that does not start and end with '/'");
    }
  } catch (const customs::daemon::config_error& e) {
    check(!e.diagnostics().empty(), "a config_error without diagnostics");
    for (const auto& d : e.diagnostics()) {
      check(!d.code.empty(), "a diagnostic without a code");
      check(d.file == "fuzz.yaml", "a diagnostic names another file");
      (void)d.to_string();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parse_config threw %s\n", e.what());
    customs::fuzz::fail("parse_config threw something other than config_error");
  }
  return 0;
}
