#pragma once
// Structured logs of customsd: one line per event on stderr, in one of two
// formats (log.format, process-wide, changed by reload):
//
//  - logfmt (the default): key=value pairs separated by spaces; values with
//    spaces, quotes, '=', '\\' or control characters are double-quoted with
//    \" \\ \n \r \t and \xHH escapes. Every line starts with
//      ts=<UTC RFC 3339 with milliseconds> level=<debug|info|warn|error> event=<name>
//  - json: one JSON object per line with the same keys in the same order,
//      {"ts":"...","level":"info","event":"flow_end","flow":"...",...}
//    strings escaped by Boost.JSON's serializer (control bytes as \u00XX, so a
//    value never breaks a line); bytes that are not UTF-8 become U+FFFD, so a
//    line is always valid JSON. Numbers are JSON numbers, booleans true/false,
//    milliseconds (ms()) a number with three decimals; a list (kv with a vector)
//    is a JSON array, and in logfmt one value joined with ','.
//
// Lines about one flow carry flow=<id>.
//
// A line is written with a single write(2), so lines from different threads never
// interleave. Known weakness: the write is blocking; a stderr pipe that nobody
// drains would stall the thread that logs. Per-flow lines can be turned off
// (log.flows: false) where that matters.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon {

enum class log_level : std::uint8_t { debug = 0, info = 1, warn = 2, error = 3 };
enum class log_format : std::uint8_t { logfmt = 0, json = 1 };

[[nodiscard]] std::string_view to_string(log_level l) noexcept;
[[nodiscard]] bool parse_log_level(std::string_view s, log_level& out) noexcept;

// The least severe level that is written (process-wide; changed by reload).
void set_log_level(log_level l) noexcept;
[[nodiscard]] bool log_enabled(log_level l) noexcept;

[[nodiscard]] std::string_view to_string(log_format f) noexcept;
[[nodiscard]] bool parse_log_format(std::string_view s, log_format& out) noexcept;
// The format of lines started from now on (process-wide; changed by reload).
void set_log_format(log_format f) noexcept;
[[nodiscard]] log_format current_log_format() noexcept;

// Where lines go: stderr (-1) by default. Tests point it at a pipe.
void set_log_fd(int fd) noexcept;

// Builds one line and writes it when destroyed. Cheap when the level is off.
// Never throws: it is used in catch blocks and noexcept paths, where an
// allocation may fail too; a line that cannot be built is dropped.
class log_line {
 public:
  log_line(log_level level, std::string_view event) noexcept;
  ~log_line();
  log_line(const log_line&) = delete;
  log_line& operator=(const log_line&) = delete;

  log_line& kv(std::string_view key, std::string_view value) noexcept;
  log_line& kv(std::string_view key, const char* value) noexcept { return kv(key, std::string_view(value)); }
  log_line& kv(std::string_view key, const std::string& value) noexcept { return kv(key, std::string_view(value)); }
  log_line& kv(std::string_view key, std::uint64_t value) noexcept;
  log_line& kv(std::string_view key, std::int64_t value) noexcept;
  log_line& kv(std::string_view key, unsigned value) noexcept { return kv(key, std::uint64_t{value}); }
  log_line& kv(std::string_view key, int value) noexcept { return kv(key, std::int64_t{value}); }
  log_line& kv(std::string_view key, bool value) noexcept;
  log_line& kv(std::string_view key, const std::vector<std::string>& values) noexcept;
  // Milliseconds with three decimals, from nanoseconds.
  log_line& ms(std::string_view key, std::int64_t nanoseconds) noexcept;

 private:
  template <class Append>
  log_line& append(Append&& f) noexcept;
  void start(log_level level, std::string_view event);
  void key(std::string_view k);
  void raw(std::string_view number_or_literal);
  void string(std::string_view v);

  bool on_;
  log_format format_;
  std::string line_;
};

}  // namespace customs::daemon
