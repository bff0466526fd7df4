#pragma once
// Structured logs of customsd: one line per event on stderr, in logfmt
// (key=value pairs separated by spaces; values with spaces, quotes, '=' or control
// characters are double-quoted with \" \\ \n \r \t escapes). Every line starts with
//   ts=<UTC RFC 3339 with milliseconds> level=<debug|info|warn|error> event=<name>
// and lines about one flow carry flow=<id>.
//
// A line is written with a single write(2), so lines from different threads never
// interleave. Known weakness: the write is blocking; a stderr pipe that nobody
// drains would stall the thread that logs. Per-flow lines can be turned off
// (log.flows: false) where that matters.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace customs::daemon {

enum class log_level : std::uint8_t { debug = 0, info = 1, warn = 2, error = 3 };

[[nodiscard]] std::string_view to_string(log_level l) noexcept;
[[nodiscard]] bool parse_log_level(std::string_view s, log_level& out) noexcept;

// The least severe level that is written (process-wide; changed by reload).
void set_log_level(log_level l) noexcept;
[[nodiscard]] bool log_enabled(log_level l) noexcept;

// Builds one line and writes it when destroyed. Cheap when the level is off.
class log_line {
 public:
  log_line(log_level level, std::string_view event);
  ~log_line();
  log_line(const log_line&) = delete;
  log_line& operator=(const log_line&) = delete;

  log_line& kv(std::string_view key, std::string_view value);
  log_line& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  log_line& kv(std::string_view key, const std::string& value) { return kv(key, std::string_view(value)); }
  log_line& kv(std::string_view key, std::uint64_t value);
  log_line& kv(std::string_view key, std::int64_t value);
  log_line& kv(std::string_view key, unsigned value) { return kv(key, std::uint64_t{value}); }
  log_line& kv(std::string_view key, int value) { return kv(key, std::int64_t{value}); }
  log_line& kv(std::string_view key, bool value) { return kv(key, value ? "true" : "false"); }
  // Milliseconds with three decimals, from nanoseconds.
  log_line& ms(std::string_view key, std::int64_t nanoseconds);

 private:
  bool on_;
  std::string line_;
};

}  // namespace customs::daemon
