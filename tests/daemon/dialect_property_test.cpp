// Property: for generated request bodies (random shapes per dialect, unknown
// fields, nesting, escapes, unicode, repeated keys), every string and every key
// that a provider would read was handed to the scanner, and what a rewrite
// forwards holds only scanned texts or their replacements. Deterministic seed,
// bounded count.
#include <catch2/catch.hpp>

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
