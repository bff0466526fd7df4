// Runs a fuzz target's entry point over files (or every file of directories)
// given on the command line, without libFuzzer: the normal build uses it to keep
// the fuzz targets compiling and to replay the seed corpus as a test.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

int run_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", p.c_str());
    return 1;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Every selector byte, so that each seed reaches every codec / endpoint.
  for (int selector = 0; selector < 16; ++selector) {
    std::string input(1, static_cast<char>(selector));
    input += bytes;
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int failures = 0;
  std::size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        if (e.is_regular_file()) {
          failures += run_file(e.path());
          ++files;
        }
      }
    } else {
      failures += run_file(p);
      ++files;
    }
  }
  std::printf("replayed %zu files\n", files);
  return failures == 0 && files > 0 ? 0 : 1;
}
