#pragma once
// Files for the fuzz targets that load from paths: one private scratch folder
// per process (removed at exit), and the source tree's fixtures.
//
// Targets never let fuzzed input name a path outside the scratch folder (see
// fuzz_config.cpp for how a config's paths are kept inside it).

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace customs::fuzz {

// The source tree (fixtures, shipped rule packs).
[[nodiscard]] inline std::filesystem::path source_dir() { return CUSTOMS_SOURCE_DIR; }

// A folder of this process, created on first use and removed at exit.
[[nodiscard]] inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "customs-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    static std::string to_remove;
    to_remove = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(to_remove, ec);
    });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

// Writes `bytes` to `path` (replacing it).
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
}

}  // namespace customs::fuzz
