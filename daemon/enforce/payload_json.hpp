#pragma once
// An audit record's payload written as JSON text directly, without a tree:
// two records per flow were built as Boost.JSON objects (one hashed key
// look-up and insert per field) and then serialised; writing the text in one
// pass costs a fraction of that (docs/performance.md).
//
// For valid UTF-8 text the output is byte for byte what
// boost::json::serialize writes for the same tree (the same escapes, doubles
// in the same notation): readers, tests and earlier trails see one format.
// Text that is not valid UTF-8 (a client's percent-decoded %FF, a Latin-1
// header value) has each byte outside a valid sequence written as U+FFFD,
// the code point the scanner read it as, so every payload parses as JSON
// (serialize would copy the byte, and no reader could parse the record).
// The caller writes keys in the order it wants and never the same key twice
// in one object.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace customs::daemon::enforce {

// A key written as it is: a string literal, checked when compiled to need no
// escape (a control character, '"' or '\\' in it does not compile).
struct plain_key {
  std::string_view text;
  template <std::size_t N>
  consteval plain_key(const char (&s)[N]) : text(s, N - 1) {  // NOLINT: implicit on purpose
    for (const char c : text) {
      if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') throw "this key needs an escape: use key()";
    }
  }
};

class json_out {
 public:
  explicit json_out(std::string& out) : out_(out) {}

  json_out& begin_object() { return open('{'); }
  json_out& end_object() { return close('}'); }
  json_out& begin_array() { return open('['); }
  json_out& end_array() { return close(']'); }

  // The next member's key (inside an object); a value or begin_* follows.
  json_out& key(plain_key k);
  json_out& escaped_key(std::string_view k);  // any text

  json_out& value(std::string_view s);
  json_out& value(const char* s) { return value(std::string_view(s)); }
  json_out& value(const std::string& s) { return value(std::string_view(s)); }
  json_out& value(bool b);
  // Any integer type (one template, whatever the platform names int64_t).
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  json_out& value(I n) {
    if constexpr (std::is_signed_v<I>) return integer(static_cast<std::int64_t>(n));
    else return integer(static_cast<std::uint64_t>(n));
  }
  json_out& value(double d);

  // key(k).value(v)
  template <class T>
  json_out& member(plain_key k, const T& v) {
    key(k);
    return value(v);
  }

  // A JSON string's text between its quotes, escaped as Boost.JSON does; a
  // byte that is not part of a valid UTF-8 sequence becomes U+FFFD (Boost.JSON
  // would copy it, and the payload would not parse).
  static void escape(std::string& out, std::string_view s);

 private:
  json_out& open(char c);
  json_out& close(char c);
  json_out& end_key();
  json_out& integer(std::int64_t n);
  json_out& integer(std::uint64_t n);
  void separate();

  std::string& out_;
  bool first_ = true;      // no member or element written yet at this level
  bool after_key_ = false; // a key was written: its value comes next
};

}  // namespace customs::daemon::enforce
