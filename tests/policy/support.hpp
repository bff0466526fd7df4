#pragma once
// Helpers for the policy tests: loading the shipped packs once, rule files
// written to a fresh temporary folder.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "policy/model.hpp"
#include "policy/policy.hpp"

namespace customs::policy::testing {

[[nodiscard]] std::filesystem::path source_dir();
// A rule set that must load (the test process aborts with its diagnostics if not).
[[nodiscard]] rule_set_ptr load_or_abort(const std::filesystem::path& path);
// The shipped packs (rules/), loaded once per test process.
[[nodiscard]] const rule_set_ptr& shipped();
[[nodiscard]] const detail::compiled_rule_set& compiled(const rule_set& rs);

// A temporary folder removed at the end of its scope.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// Loads one rule file with the given content.
[[nodiscard]] load_result load_yaml(const std::string& content, const load_options& opts = {});

// A flow context in one line.
[[nodiscard]] flow_context flow(const std::string& src, const std::string& dst,
                                direction dir = direction::request, const std::string& tenant = {},
                                const std::string& route = {});

// Diagnostics as "line:col CODE" strings (errors only or all).
[[nodiscard]] std::vector<std::string> codes(const load_result& r, bool errors_only = true);

// A time point for YYYY-MM-DD, at noon UTC.
[[nodiscard]] std::chrono::system_clock::time_point day(int y, unsigned m, unsigned d);

// Whether s is valid UTF-8.
[[nodiscard]] bool valid_utf8(std::string_view s);

// The whole-text evaluation of a text, and its blocking finding if any.
struct expected {
  rule_set::evaluation whole;
  const finding* block = nullptr;
};
[[nodiscard]] expected expect_of(const rule_set& rs, const std::string& text, const flow_context& ctx);

// Feeds text to a stream_scanner cut at the given (sorted) offsets and checks
// the result against the whole-text evaluation: the same releases (redacted),
// findings, verdict; when blocked, nothing of the blocking match released; no
// release splitting a UTF-8 character; held() within max_hold_back(). Returns
// false (after reporting with UNSCOPED_INFO) on the first difference.
[[nodiscard]] bool stream_agrees(const rule_set_ptr& rs, const flow_context& ctx, const std::string& text,
                                 const std::vector<std::size_t>& cuts, const expected& e);

}  // namespace customs::policy::testing
