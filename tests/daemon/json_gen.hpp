#pragma once
// Random request bodies for the property tests of request coverage: a small
// JSON tree of our own (so that it can hold repeated keys) written with random
// escapes (\uXXXX for any character, surrogate pairs above U+FFFF, the short
// escapes), random unicode (CJK, emoji, invisible characters), and per dialect
// a valid conversation with unknown fields sprinkled anywhere. Deterministic
// for a given seed.

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace customs::testing::gen {

struct node;
using object = std::vector<std::pair<std::string, node>>;
using array = std::vector<node>;

struct node {
  std::variant<std::nullptr_t, bool, double, std::string, std::shared_ptr<array>, std::shared_ptr<object>> v;
  node() : v(nullptr) {}
  node(std::string s) : v(std::move(s)) {}  // NOLINT: implicit on purpose (brevity in builders)
  node(const char* s) : v(std::string(s)) {}  // NOLINT
  node(double d) : v(d) {}  // NOLINT
  node(bool b) : v(b) {}  // NOLINT
  node(array a) : v(std::make_shared<array>(std::move(a))) {}  // NOLINT
  node(object o) : v(std::make_shared<object>(std::move(o))) {}  // NOLINT
  [[nodiscard]] object* as_object() {
    auto* p = std::get_if<std::shared_ptr<object>>(&v);
    return p ? p->get() : nullptr;
  }
  [[nodiscard]] array* as_array() {
    auto* p = std::get_if<std::shared_ptr<array>>(&v);
    return p ? p->get() : nullptr;
  }
};

class generator {
 public:
  explicit generator(std::uint32_t seed) : rng_(seed) {}

  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  // Text: words, digits, punctuation, quotes, backslashes, control characters,
  // CJK, emoji, invisible format characters.
  std::string text(std::size_t max_len = 40) {
    static const char* const pieces[] = {
        "hello", "world", " ", " ", "1380013", "8000", "110105", "19491231002X", "\"", "\\", "/", "\n", "\t",
        "\x01", "{", "}", "[", "]", ":", ",", "\xe4\xbd\xa0\xe5\xa5\xbd", "\xf0\x9f\x98\x80", "\xe2\x80\x8b",
        "\xc2\xad", "caf\xc3\xa9", "data", "name", "id", "x", "-", "_", "0", "9"};
    std::string s;
    const std::size_t n = pick(max_len + 1);
    for (std::size_t i = 0; i < n && s.size() < max_len * 4; ++i) s += pieces[pick(std::size(pieces))];
    return s;
  }
  std::string key() {
    static const char* const keys[] = {"x", "extra", "vendor_data", "note", "meta", "k\"q", "tab\tkey", "\xe9\x94\xae",
                                       "11010519491231002X", "a/b", "a~b", "", "nested", "list", "\xf0\x9f\x94\x91"};
    return chance(0.7) ? keys[pick(std::size(keys))] : text(8);
  }
  // Any JSON value, up to `depth` levels of nesting.
  node value(int depth) {
    switch (pick(depth > 0 ? 8 : 5)) {
      case 0: return node();
      case 1: return node(chance(0.5));
      case 2: return node(static_cast<double>(pick(1000000)) / (chance(0.5) ? 1.0 : 7.0));
      case 3:
      case 4: return node(text());
      case 5:
      case 6: {
        object o;
        const std::size_t n = pick(4);
        for (std::size_t i = 0; i < n; ++i) add_unique(o, key(), value(depth - 1));
        return node(std::move(o));
      }
      default: {
        array a;
        const std::size_t n = pick(4);
        for (std::size_t i = 0; i < n; ++i) a.push_back(value(depth - 1));
        return node(std::move(a));
      }
    }
  }
  // Adds a member unless the key is taken (the generator makes repeats on purpose only).
  static void add_unique(object& o, const std::string& k, node v) {
    for (const auto& [ok, ov] : o) {
      if (ok == k) return;
    }
    o.emplace_back(k, std::move(v));
  }
  // Unknown fields into `o` (0 to 2).
  void sprinkle(object& o, int depth = 2) {
    const std::size_t n = pick(3);
    for (std::size_t i = 0; i < n; ++i) add_unique(o, "u_" + key(), value(depth));
  }
  // Repeats one key of some object in the tree (with another value); false
  // when the tree has no object with a member.
  bool repeat_a_key(node& root) {
    std::vector<object*> objects;
    collect(root, objects);
    std::vector<object*> with_members;
    for (auto* o : objects) {
      if (!o->empty()) with_members.push_back(o);
    }
    if (with_members.empty()) return false;
    object& o = *with_members[pick(with_members.size())];
    const std::string k = o[pick(o.size())].first;
    o.insert(o.begin() + static_cast<std::ptrdiff_t>(pick(o.size() + 1)), {k, node(text())});
    return true;
  }

  // JSON text with random escapes.
  std::string write(const node& n) {
    std::string out;
    write(n, out);
    return out;
  }

  std::mt19937& rng() { return rng_; }

 private:
  static void collect(node& n, std::vector<object*>& out) {
    if (auto* o = n.as_object()) {
      out.push_back(o);
      for (auto& [k, v] : *o) collect(v, out);
    } else if (auto* a = n.as_array()) {
      for (auto& v : *a) collect(v, out);
    }
  }

  static void hex4(unsigned v, std::string& out) {
    static constexpr char hex[] = "0123456789abcdef";
    out += "\\u";
    for (int s = 12; s >= 0; s -= 4) out += hex[(v >> s) & 15];
  }

  void write_string(const std::string& s, std::string& out) {
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
      const auto c = static_cast<unsigned char>(s[i]);
      std::size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      if (i + len > s.size()) len = 1;
      if (c < 0x80) {
        if (c == '"' || c == '\\' || c < 0x20 || chance(0.05)) {
          if (c == '\n' && chance(0.5)) out += "\\n";
          else if (c == '"' && chance(0.5)) out += "\\\"";
          else if (c == '\\' && chance(0.5)) out += "\\\\";
          else if (c == '/' && chance(0.5)) out += "\\/";
          else hex4(c, out);
        } else {
          out += static_cast<char>(c);
        }
      } else if (chance(0.3)) {
        // The code point as \u escapes (a surrogate pair above U+FFFF).
        unsigned cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
        for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        if (cp > 0xFFFF) {
          cp -= 0x10000;
          hex4(0xD800 + (cp >> 10), out);
          hex4(0xDC00 + (cp & 0x3FF), out);
        } else {
          hex4(cp, out);
        }
      } else {
        out.append(s, i, len);
      }
      i += len;
    }
    out += '"';
  }

  void write(const node& n, std::string& out) {
    if (std::holds_alternative<std::nullptr_t>(n.v)) {
      out += "null";
    } else if (const auto* b = std::get_if<bool>(&n.v)) {
      out += *b ? "true" : "false";
    } else if (const auto* d = std::get_if<double>(&n.v)) {
      std::string num = std::to_string(*d);
      out += num;
    } else if (const auto* s = std::get_if<std::string>(&n.v)) {
      write_string(*s, out);
    } else if (const auto* a = std::get_if<std::shared_ptr<array>>(&n.v)) {
      out += '[';
      for (std::size_t i = 0; i < (*a)->size(); ++i) {
        if (i > 0) out += chance(0.2) ? " , " : ",";
        write((**a)[i], out);
      }
      out += ']';
    } else if (const auto* o = std::get_if<std::shared_ptr<object>>(&n.v)) {
      out += chance(0.2) ? "{ " : "{";
      for (std::size_t i = 0; i < (*o)->size(); ++i) {
        if (i > 0) out += ',';
        write_string((**o)[i].first, out);
        out += chance(0.2) ? " : " : ":";
        write((**o)[i].second, out);
      }
      out += '}';
    }
  }

  std::mt19937 rng_;
};

}  // namespace customs::testing::gen
