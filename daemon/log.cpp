#include "daemon/log.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/string_view.hpp>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <ctime>

namespace customs::daemon {
namespace {

std::atomic<log_level> g_level{log_level::info};
std::atomic<log_format> g_format{log_format::logfmt};
std::atomic<int> g_fd{-1};

// The length of the valid UTF-8 sequence at the start of `s`, 0 if it is not one
// (overlong forms, surrogates and code points past U+10FFFF are not valid).
std::size_t utf8_sequence(std::string_view s) noexcept {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c == 0xe0) { n = 3; lo = 0xa0; }
  else if (c == 0xed) { n = 3; hi = 0x9f; }
  else if (c >= 0xe1 && c <= 0xef) n = 3;
  else if (c == 0xf0) { n = 4; lo = 0x90; }
  else if (c == 0xf4) { n = 4; hi = 0x8f; }
  else if (c >= 0xf1 && c <= 0xf3) n = 4;
  else return 0;
  if (s.size() < n) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xbf) return 0;
  }
  return n;
}

// A JSON string: Boost.JSON escapes quotes, backslashes and control bytes;
// bytes that are not UTF-8 are replaced first (U+FFFD), since JSON text must be.
void append_json_string(std::string& out, std::string_view v) {
  bool valid = true;
  for (std::size_t i = 0; i < v.size();) {
    const std::size_t n = utf8_sequence(v.substr(i));
    if (n == 0) {
      valid = false;
      break;
    }
    i += n;
  }
  if (valid) {
    out += boost::json::serialize(boost::json::string_view(v.data(), v.size()));
    return;
  }
  std::string clean;
  clean.reserve(v.size() + 8);
  for (std::size_t i = 0; i < v.size();) {
    const std::size_t n = utf8_sequence(v.substr(i));
    if (n == 0) {
      clean += "\xEF\xBF\xBD";
      ++i;
    } else {
      clean.append(v.data() + i, n);
      i += n;
    }
  }
  out += boost::json::serialize(boost::json::string_view(clean.data(), clean.size()));
}

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

std::string_view to_string(log_format f) noexcept {
  return f == log_format::json ? "json" : "logfmt";
}

bool parse_log_format(std::string_view s, log_format& out) noexcept {
  if (s == "logfmt") out = log_format::logfmt;
  else if (s == "json") out = log_format::json;
  else return false;
  return true;
}

void set_log_format(log_format f) noexcept { g_format.store(f, std::memory_order_relaxed); }

log_format current_log_format() noexcept { return g_format.load(std::memory_order_relaxed); }

void set_log_fd(int fd) noexcept { g_fd.store(fd, std::memory_order_relaxed); }

log_line::log_line(log_level level, std::string_view event) noexcept
    : on_(log_enabled(level)), format_(g_format.load(std::memory_order_relaxed)) {
  if (!on_) return;
  try {
    start(level, event);
  } catch (...) {
    on_ = false;  // out of memory: the line is dropped, the caller goes on
  }
}

void log_line::start(log_level level, std::string_view event) {
  line_.reserve(256);
  std::string ts;
  append_timestamp(ts);
  if (format_ == log_format::json) {
    line_ += "{\"ts\":\"";
    line_ += ts;
    line_ += "\",\"level\":\"";
    line_ += to_string(level);
    line_ += "\",\"event\":";
    append_json_string(line_, event);
    return;
  }
  line_ += "ts=";
  line_ += ts;
  line_ += " level=";
  line_ += to_string(level);
  line_ += " event=";
  append_value(line_, event);
}

log_line::~log_line() {
  if (!on_) return;
  if (format_ == log_format::json) line_ += '}';
  line_ += '\n';
  const int fd = g_fd.load(std::memory_order_relaxed);
  const int out = fd >= 0 ? fd : STDERR_FILENO;
  const char* p = line_.data();
  std::size_t left = line_.size();
  while (left > 0) {
    const ssize_t n = ::write(out, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere to report a failing stderr
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void log_line::key(std::string_view k) {
  if (format_ == log_format::json) {
    line_ += ',';
    append_json_string(line_, k);
    line_ += ':';
  } else {
    line_ += ' ';
    line_ += k;
    line_ += '=';
  }
}

void log_line::raw(std::string_view number_or_literal) { line_ += number_or_literal; }

void log_line::string(std::string_view v) {
  if (format_ == log_format::json) append_json_string(line_, v);
  else append_value(line_, v);
}

// Every part of a line is appended through this: an allocation that fails
// drops the line (on_ = false), and the caller goes on.
template <class Append>
log_line& log_line::append(Append&& f) noexcept {
  if (!on_) return *this;
  try {
    f();
  } catch (...) {
    on_ = false;
  }
  return *this;
}

log_line& log_line::kv(std::string_view k, std::string_view value) noexcept {
  return append([&] {
    key(k);
    string(value);
  });
}

log_line& log_line::kv(std::string_view k, bool value) noexcept {
  return append([&] {
    key(k);
    raw(value ? "true" : "false");
  });
}

log_line& log_line::kv(std::string_view k, const std::vector<std::string>& values) noexcept {
  return append([&] {
    key(k);
    if (format_ == log_format::json) {
      line_ += '[';
      for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) line_ += ',';
        append_json_string(line_, values[i]);
      }
      line_ += ']';
      return;
    }
    std::string joined;
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i > 0) joined += ',';
      joined += values[i];
    }
    append_value(line_, joined);
  });
}

namespace {

template <class Integer>
std::string_view format_number(char (&buf)[24], Integer value) {
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  return {buf, static_cast<std::size_t>(r.ptr - buf)};
}

}  // namespace

log_line& log_line::kv(std::string_view k, std::uint64_t value) noexcept {
  return append([&] {
    char buf[24];
    key(k);
    raw(format_number(buf, value));
  });
}

log_line& log_line::kv(std::string_view k, std::int64_t value) noexcept {
  return append([&] {
    char buf[24];
    key(k);
    raw(format_number(buf, value));
  });
}

log_line& log_line::ms(std::string_view k, std::int64_t nanoseconds) noexcept {
  return append([&] {
    const bool neg = nanoseconds < 0;
    std::uint64_t us = static_cast<std::uint64_t>(neg ? -nanoseconds : nanoseconds) / 1000;
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, us / 1000);
    key(k);
    if (neg) line_ += '-';
    line_.append(buf, r.ptr);
    line_ += '.';
    const auto frac = us % 1000;
    line_ += static_cast<char>('0' + frac / 100);
    line_ += static_cast<char>('0' + frac / 10 % 10);
    line_ += static_cast<char>('0' + frac % 10);
  });
}

}  // namespace customs::daemon
