// libFuzzer target: the rule pack loader (policy::load_rule_set) on one rule
// file of arbitrary bytes, as `customsctl rules check` and a reload read it.
//
// Input: the file's bytes.
//
// Properties: never crashes and never throws; every diagnostic has a code and
// names the file; a set that loads scans and evaluates a sample text (its
// compiled detectors run) and runs its embedded tests without crashing; a
// rejected set has at least one error.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/authoring.hpp"
#include "policy/policy.hpp"
#include "tests/fuzz/fuzz_files.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using customs::fuzz::check;
namespace policy = customs::policy;

constexpr std::string_view sample =
    "Call 13800138000 or +86 138 0013 8000; ID 11010519491231002X; card 4111 1111 1111 1111; "
    "SSN 078-05-1120; IBAN DE89 3704 0044 0532 0130 00; key AKIAIOSFODNN7EXAMPLE; "
    "mail john.doe@example.com \xe6\x8a\xa4\xe7\x85\xa7 E12345678";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = customs::fuzz::scratch_dir() / "pack.yaml";
  customs::fuzz::write_file(file, std::string_view(reinterpret_cast<const char*>(data), size));
  const std::array paths{file};
  // A fixed clock: expiry warnings must not depend on the day the fuzzer runs.
  policy::load_options opts;
  opts.now = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));  // 2026-01-01
  const auto r = policy::load_rule_set(paths, opts);
  bool any_error = false;
  for (const auto& d : r.diagnostics) {
    check(!d.code.empty(), "a diagnostic without a code");
    check(d.file == file.string(), "a diagnostic names another file");
    any_error = any_error || d.level == policy::diagnostic::severity::error;
  }
  if (!r.ok()) {
    check(any_error, "a rejected set without an error");
    return 0;
  }
  for (const auto dir : {policy::direction::request, policy::direction::response}) {
    policy::flow_context ctx;
    ctx.dir = dir;
    ctx.src = "CN";
    ctx.dst = "US";
    ctx.now = opts.now;
    (void)r.rules->evaluate(sample, ctx);
  }
  (void)policy::run_rule_tests(*r.rules);
  (void)policy::summarize(*r.rules);
  return 0;
}
