#include "daemon/log.hpp"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <ctime>

namespace customs::daemon {
namespace {

std::atomic<log_level> g_level{log_level::info};

bool needs_quotes(std::string_view v) noexcept {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void append_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  for (unsigned char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void append_timestamp(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - secs).count();
  const std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  out.append(buf, n);
  char frac[8];
  frac[0] = '.';
  frac[1] = static_cast<char>('0' + ms / 100);
  frac[2] = static_cast<char>('0' + ms / 10 % 10);
  frac[3] = static_cast<char>('0' + ms % 10);
  frac[4] = 'Z';
  out.append(frac, 5);
}

}  // namespace

std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
  }
  return "info";
}

bool parse_log_level(std::string_view s, log_level& out) noexcept {
  if (s == "debug") out = log_level::debug;
  else if (s == "info") out = log_level::info;
  else if (s == "warn") out = log_level::warn;
  else if (s == "error") out = log_level::error;
  else return false;
  return true;
}

void set_log_level(log_level l) noexcept { g_level.store(l, std::memory_order_relaxed); }

bool log_enabled(log_level l) noexcept {
  return l >= g_level.load(std::memory_order_relaxed);
}

log_line::log_line(log_level level, std::string_view event) : on_(log_enabled(level)) {
  if (!on_) return;
  line_.reserve(256);
  line_ += "ts=";
  append_timestamp(line_);
  line_ += " level=";
  line_ += to_string(level);
  line_ += " event=";
  append_value(line_, event);
}

log_line::~log_line() {
  if (!on_) return;
  line_ += '\n';
  const char* p = line_.data();
  std::size_t left = line_.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere to report a failing stderr
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

log_line& log_line::kv(std::string_view key, std::string_view value) {
  if (!on_) return *this;
  line_ += ' ';
  line_ += key;
  line_ += '=';
  append_value(line_, value);
  return *this;
}

namespace {

template <class Integer>
void append_number(std::string& line, std::string_view key, Integer value) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  line += ' ';
  line += key;
  line += '=';
  line.append(buf, r.ptr);
}

}  // namespace

log_line& log_line::kv(std::string_view key, std::uint64_t value) {
  if (on_) append_number(line_, key, value);
  return *this;
}

log_line& log_line::kv(std::string_view key, std::int64_t value) {
  if (on_) append_number(line_, key, value);
  return *this;
}

log_line& log_line::ms(std::string_view key, std::int64_t nanoseconds) {
  if (!on_) return *this;
  const bool neg = nanoseconds < 0;
  std::uint64_t us = static_cast<std::uint64_t>(neg ? -nanoseconds : nanoseconds) / 1000;
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, us / 1000);
  line_ += ' ';
  line_ += key;
  line_ += '=';
  if (neg) line_ += '-';
  line_.append(buf, r.ptr);
  line_ += '.';
  const auto frac = us % 1000;
  line_ += static_cast<char>('0' + frac / 100);
  line_ += static_cast<char>('0' + frac / 10 % 10);
  line_ += static_cast<char>('0' + frac % 10);
  return *this;
}

}  // namespace customs::daemon
