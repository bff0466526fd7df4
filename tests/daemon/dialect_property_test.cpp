// Property: for generated request bodies (random shapes per dialect, unknown
// fields, nesting, escapes, unicode, repeated keys), every string and every key
// that a provider would read was handed to the scanner, and what a rewrite
// forwards holds only scanned texts or their replacements. Deterministic seed,
// bounded count.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/dialect/request.hpp"
#include "tests/daemon/dialect_test_support.hpp"
#include "tests/daemon/request_bodies.hpp"

namespace json = boost::json;
using namespace customs::daemon;
namespace gen = customs::testing::gen;

namespace {

constexpr std::uint32_t seed = 20250611;
constexpr int bodies = 1200;

struct seen_texts {
  std::unordered_multiset<std::string> texts;
  std::string keys;  // the key slot's text

  bool has(std::string_view s) const { return texts.count(std::string(s)) > 0; }
};

seen_texts scanned(const request_extraction& ex) {
  seen_texts out;
  for (const auto& s : ex.slots) {
    out.texts.emplace(s.text);
    if (s.role == slot_role::key) out.keys = std::string(s.text);
  }
  return out;
}

// Every string value is a scanned text, every key is in the key slot.
void check_covered(const json::value& v, const seen_texts& seen, const std::string& where, std::size_t& strings) {
  if (v.is_string()) {
    ++strings;
    INFO("string at " << where << ": " << json::serialize(v));
    CHECK(seen.has(std::string_view(v.get_string().data(), v.get_string().size())));
  } else if (v.is_object()) {
    for (const auto& kv : v.get_object()) {
      const std::string_view k(kv.key().data(), kv.key().size());
      INFO("key at " << where << ": " << json::serialize(json::string(kv.key())));
      CHECK(seen.keys.find(k) != std::string::npos);
      check_covered(kv.value(), seen, where + "/" + std::string(k), strings);
    }
  } else if (v.is_array()) {
    std::size_t i = 0;
    for (const auto& e : v.get_array()) check_covered(e, seen, where + "/" + std::to_string(i++), strings);
  }
}

}  // namespace

TEST_CASE("property: every string and key of a generated request body is scanned", "[dialect][property]") {
  gen::generator g(seed);
  std::size_t accepted = 0, refused_repeats = 0, strings = 0;
  for (int i = 0; i < bodies; ++i) {
    auto c = gen::any_request(g);
    const bool repeat = g.chance(0.1) && g.repeat_a_key(c.body);
    const std::string body = g.write(c.body);
    INFO("body " << i << ": " << body);
    auto ex = extract_request(c.api, c.path, body);
    if (repeat) {
      // A repeated key is never taken: the provider might read the other value.
      REQUIRE_FALSE(ex.has_value());
      CHECK(ex.error().code == codec_errc::duplicate_key);
      ++refused_repeats;
      continue;
    }
    REQUIRE_OK(ex);
    ++accepted;
    const auto seen = scanned(*ex);
    check_covered(json::parse(body), seen, "", strings);
  }
  CHECK(accepted > bodies * 8 / 10);
  CHECK(refused_repeats > 0);
  CHECK(strings > static_cast<std::size_t>(bodies) * 5);
}

TEST_CASE("property: a rewritten body holds only scanned texts and their replacements", "[dialect][property]") {
  gen::generator g(seed + 1);
  for (int i = 0; i < bodies / 2; ++i) {
    auto c = gen::any_request(g);
    const std::string body = g.write(c.body);
    INFO("body " << i << ": " << body);
    auto ex = extract_request(c.api, c.path, body);
    REQUIRE_OK(ex);
    // Replace every writable text, as a redaction of everything would.
    std::vector<text_replacement> changes;
    for (std::size_t k = 0; k < ex->slots.size(); ++k) {
      if (ex->slots[k].writable() && g.chance(0.7)) changes.push_back({k, "[R]"});
    }
    auto out = rewrite_request(*ex, changes);
    REQUIRE_OK(out);
    // The extraction now describes what is forwarded: every string of the
    // output is one of its slot texts (the replacements included).
    std::size_t strings = 0;
    check_covered(json::parse(*out), scanned(*ex), "", strings);
    // And a fresh extraction of the output agrees (nothing new appeared).
    auto again = extract_request(c.api, c.path, *out);
    REQUIRE_OK(again);
  }
}

namespace {

// One way of carrying text past a scanner that reads one value of a repeated
// key: a dialect, the object that repeats, and the key.
struct repeat_variant {
  const char* name;
  dialect api;
  const char* path;
  gen::node (*body)(gen::generator&);
  const char* key;
  // The object that gets the repeated key (a member of the body), and its
  // JSON pointer; nullptr when the body has none.
  gen::object* (*target)(gen::generator&, gen::node&, std::string&);
};

gen::object* root(gen::generator&, gen::node& body, std::string& where) {
  where.clear();
  return body.as_object();
}

// The member `key` of object `o`, or nullptr.
gen::node* member(gen::object& o, const std::string& key) {
  for (auto& [k, v] : o) {
    if (k == key) return &v;
  }
  return nullptr;
}

// A random element of the array `key` of the root, with its pointer.
gen::object* element_of(gen::generator& g, gen::node& body, const char* key, std::string& where) {
  auto* list = member(*body.as_object(), key);
  if (list == nullptr || list->as_array() == nullptr || list->as_array()->empty()) return nullptr;
  const std::size_t i = g.pick(list->as_array()->size());
  where = std::string("/") + key + "/" + std::to_string(i);
  return (*list->as_array())[i].as_object();
}

gen::object* chat_message(gen::generator& g, gen::node& body, std::string& where) {
  return element_of(g, body, "messages", where);
}

// A Gemini part that has a text (one is added to a random content if none has).
gen::object* gemini_text_part(gen::generator& g, gen::node& body, std::string& where) {
  std::string content_where;
  auto* content = element_of(g, body, "contents", content_where);
  if (content == nullptr) return nullptr;
  auto& parts = *member(*content, "parts")->as_array();
  std::vector<std::size_t> with_text;
  for (std::size_t j = 0; j < parts.size(); ++j) {
    if (member(*parts[j].as_object(), "text") != nullptr) with_text.push_back(j);
  }
  std::size_t j = 0;
  if (with_text.empty()) {
    parts.push_back(gen::object{{"text", g.text()}});
    j = parts.size() - 1;
  } else {
    j = with_text[g.pick(with_text.size())];
  }
  where = content_where + "/parts/" + std::to_string(j);
  return parts[j].as_object();
}

gen::node anthropic_with_system(gen::generator& g) {
  gen::node b = gen::anthropic(g);
  if (member(*b.as_object(), "system") == nullptr) b.as_object()->emplace_back("system", g.text());
  return b;
}

gen::node responses_body(gen::generator& g) { return gen::responses(g); }

const repeat_variant repeat_variants[] = {
    {"openai messages", dialect::openai, "/v1/chat/completions", gen::openai_chat, "messages", root},
    {"openai content", dialect::openai, "/v1/chat/completions", gen::openai_chat, "content", chat_message},
    {"anthropic system", dialect::anthropic, "/v1/messages", anthropic_with_system, "system", root},
    {"anthropic messages", dialect::anthropic, "/v1/messages", gen::anthropic, "messages", root},
    {"gemini contents", dialect::gemini, "/v1beta/models/gemini-test:generateContent", gen::gemini, "contents", root},
    {"gemini text", dialect::gemini, "/v1beta/models/gemini-test:generateContent", gen::gemini, "text",
     gemini_text_part},
    {"responses input", dialect::openai, "/v1/responses", responses_body, "input", root},
};

}  // namespace

TEST_CASE("property: each way of repeating a key to carry text past the scanner is refused", "[dialect][property]") {
  // For every variant: generated bodies of its dialect with the key repeated
  // (before or after the original, once or twice more, with a value of the
  // same shape from another generated body or any JSON value; keys written
  // with random escapes). Each is refused at the second occurrence, and the
  // same body without the repeat is accepted.
  gen::generator g(seed + 2);
  constexpr int per_variant = 150;
  for (const auto& v : repeat_variants) {
    int refused = 0;
    for (int i = 0; i < per_variant; ++i) {
      gen::node body = v.body(g);
      std::string where;
      gen::object* target = v.target(g, body, where);
      REQUIRE(target != nullptr);
      const auto original = std::find_if(target->begin(), target->end(), [&](const auto& kv) { return kv.first == v.key; });
      REQUIRE(original != target->end());
      const std::size_t original_at = static_cast<std::size_t>(original - target->begin());

      const std::string plain = g.write(body);
      INFO(v.name << ", body " << i << " without the repeat: " << plain);
      REQUIRE_OK(extract_request(v.api, v.path, plain));

      // The repeat's value: the same member of another generated body (the
      // shape a provider would read), or any value.
      gen::node value;
      if (g.chance(0.6)) {
        gen::node other = v.body(g);
        std::string other_where;
        gen::object* o = v.target(g, other, other_where);
        const gen::node* m = o == nullptr ? nullptr : member(*o, v.key);
        value = m != nullptr ? *m : gen::node(g.text());
      } else {
        value = g.value(2);
      }
      const std::size_t copies = 1 + g.pick(2);
      const bool before = g.chance(0.5);
      for (std::size_t c = 0; c < copies; ++c) {
        const std::size_t at = before ? g.pick(original_at + 1) : original_at + 1 + g.pick(target->size() - original_at);
        target->insert(target->begin() + static_cast<std::ptrdiff_t>(at), {v.key, value});
      }
      const std::string repeated = g.write(body);
      INFO(v.name << ", body " << i << ": " << repeated);
      auto ex = extract_request(v.api, v.path, repeated);
      REQUIRE_FALSE(ex.has_value());
      CHECK(ex.error().code == codec_errc::duplicate_key);
      CHECK(ex.error().where == where + "/" + v.key);
      ++refused;
    }
    CHECK(refused == per_variant);
  }
}
