#include "daemon/enforce/metering.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cctype>

namespace customs::daemon::enforce {
namespace {

namespace json = boost::json;

bool json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_space(std::string_view s, std::size_t i) {
  while (i < s.size() && json_space(s[i])) ++i;
  return i;
}

// The end of the JSON string starting at s[i] == '"' (one past its closing quote).
std::size_t string_end(std::string_view s, std::size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return s.size();
}

// The end of the JSON value starting at s[i] (validated text).
std::size_t value_end(std::string_view s, std::size_t i) {
  if (i >= s.size()) return s.size();
  if (s[i] == '"') return string_end(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '"') {
        i = string_end(s, i) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return s.size();
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !json_space(s[i])) ++i;
  return i;
}

// Whether the JSON string token s[b, e) (quotes included) spells `key`. Keys
// with escapes never equal the plain names looked for here.
bool key_is(std::string_view s, std::size_t b, std::size_t e, std::string_view key) {
  return e - b == key.size() + 2 && s.substr(b + 1, key.size()) == key;
}

bool plain_label(std::string_view v) {
  if (v.empty() || v.size() > 64) return false;
  return std::all_of(v.begin(), v.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) || c == '.' || c == '_' || c == ':' || c == '/' || c == '@' || c == '+' || c == '-';
  });
}

}  // namespace

std::optional<std::string> without_member(std::string_view s, std::string_view key) {
  std::size_t i = skip_space(s, 0);
  if (i >= s.size() || s[i] != '{') return std::nullopt;
  ++i;
  // The end of the previous member's value (or of '{'), where a removal that
  // takes the comma before the member starts.
  std::size_t prev_end = i;
  bool first = true;
  while (true) {
    i = skip_space(s, i);
    if (i >= s.size() || s[i] != '"') return std::nullopt;  // '}' or malformed
    const std::size_t kb = i;
    const std::size_t ke = string_end(s, kb);
    std::size_t v = skip_space(s, ke);
    if (v >= s.size() || s[v] != ':') return std::nullopt;
    v = skip_space(s, v + 1);
    const std::size_t ve = value_end(s, v);
    std::size_t after = skip_space(s, ve);
    if (key_is(s, kb, ke, key)) {
      std::string out;
      out.reserve(s.size());
      if (after < s.size() && s[after] == ',') {
        // "k":v, next  ->  next (the member and the comma after it)
        out.append(s.substr(0, kb));
        out.append(s.substr(skip_space(s, after + 1)));
      } else if (!first) {
        // ..., "k":v }  ->  ... } (the comma before it)
        out.append(s.substr(0, prev_end));
        out.append(s.substr(ve));
      } else {
        // { "k":v }  ->  { }
        out.append(s.substr(0, kb));
        out.append(s.substr(ve));
      }
      return out;
    }
    if (after >= s.size() || s[after] != ',') return std::nullopt;
    prev_end = ve;
    first = false;
    i = after + 1;
  }
}

bool request_stream_usage(request_extraction& ex, std::string& body) {
  if (!ex.document.is_object()) return false;
  auto& o = ex.document.get_object();
  auto* so = o.if_contains("stream_options");
  if (so == nullptr) {
    const std::size_t brace = skip_space(body, 0);
    if (brace >= body.size() || body[brace] != '{') return false;
    const bool empty = skip_space(body, brace + 1) < body.size() && body[skip_space(body, brace + 1)] == '}';
    body.insert(brace + 1, empty ? R"("stream_options":{"include_usage":true})"
                                 : R"("stream_options":{"include_usage":true},)");
    o["stream_options"] = json::object{{"include_usage", true}};
    return true;
  }
  if (!so->is_object()) *so = json::object{};
  so->get_object()["include_usage"] = true;
  body = json::serialize(ex.document);
  return true;
}

void label_bound::set_limit(std::size_t limit) {
  std::unique_lock lock(mutex_);
  limit_ = limit;
}

std::string_view label_bound::admit(std::string_view v) {
  if (v.empty()) return v;
  if (!plain_label(v)) return other;
  {
    std::shared_lock lock(mutex_);
    if (auto it = admitted_.find(std::string(v)); it != admitted_.end()) return *it;
    if (admitted_.size() >= limit_) return other;
  }
  std::unique_lock lock(mutex_);
  if (auto it = admitted_.find(std::string(v)); it != admitted_.end()) return *it;
  if (admitted_.size() >= limit_) return other;
  return *admitted_.emplace(v).first;
}

std::size_t label_bound::size() const {
  std::shared_lock lock(mutex_);
  return admitted_.size();
}

}  // namespace customs::daemon::enforce
