// Volume counters in rule files: syntax and its diagnostics, which subjects a
// flow carries to which counter key, what a count does to the verdict, named
// time zones for calendar windows, and the shipped packs' thresholds.
#include <catch2/catch.hpp>

#include "policy/authoring.hpp"
#include "policy/time_zone.hpp"
#include "policy/volume.hpp"
#include "support.hpp"

using namespace customs::policy;
using namespace customs::policy::testing;

namespace {

// A pack with one phone detector, a tag rule and a counter per tenant over a
// calendar year: tag at 3 subjects, block past 5.
const std::string base_pack = R"(schema: customs/v1
pack: {id: vol, version: "1"}
detectors:
  - id: vol.phone
    category: pi.phone
    pattern: '1[3-9]\d{9}'
rules:
  - id: vol.phone.tag
    when: {direction: request, src: [CN], dst: {not: [CN]}, detectors: [vol.phone]}
    then: {action: tag, tags: [phone]}
volumes:
  - id: vol.count
    count: {detectors: [vol.phone]}
    when: {src: [CN], dst: {not: [CN]}}
    per: [tenant]
    window: {calendar_year: true, time_zone: Asia/Shanghai}
    levels:
      - {id: vol.count.many, reaching: 3, action: tag, tags: [many]}
      - {id: vol.count.too_many, exceeding: 5, action: block, references: [Acme policy 7]}
)";

std::int64_t unix_at(int y, unsigned m, unsigned d, int hour = 0) {
  return civil_days(y, m, d) * 86400 + hour * 3600;
}

verdict decide(const rule_set& rs, const std::string& text, const flow_context& ctx) {
  return rs.decide(ctx, rs.scan(text, 0));
}

}  // namespace

TEST_CASE("volumes: a counter loads, and its levels are named like rules") {
  const auto r = load_yaml(base_pack);
  INFO(codes(r, false).size());
  REQUIRE(r.ok());
  CHECK(has_volumes(*r.rules));
  CHECK(volume_counter_ids(*r.rules) == std::vector<std::string>{"vol.count"});
  const auto info = describe_rule(*r.rules, "vol.count.too_many");
  REQUIRE(info.has_value());
  CHECK(info->act == action::block);
  CHECK(info->references == std::vector<std::string>{"Acme policy 7"});
}

TEST_CASE("volumes: syntax errors are reported at their line with their code") {
  auto bad = [](const std::string& from, const std::string& to) {
    std::string y = base_pack;
    const auto at = y.find(from);
    REQUIRE(at != std::string::npos);
    y.replace(at, from.size(), to);
    return codes(load_yaml(y));
  };
  CHECK(bad("{id: vol.count.many, reaching: 3,", "{id: vol.count.many, reaching: 3, exceeding: 4,") ==
        std::vector<std::string>{"18:9 E_VALUE"});
  CHECK(bad("action: tag, tags: [many]", "action: allow, tags: [many]") == std::vector<std::string>{"18:51 E_VALUE"});
  CHECK(bad("count: {detectors: [vol.phone]}", "count: {detectors: [vol.nothing]}") ==
        std::vector<std::string>{"13:25 E_UNKNOWN_DETECTOR"});
  CHECK(bad("time_zone: Asia/Shanghai", "time_zone: Mars/Olympus") == std::vector<std::string>{"16:46 E_VALUE"});
  CHECK(bad("time_zone: Asia/Shanghai", "time_zone: ../../etc/passwd") == std::vector<std::string>{"16:46 E_VALUE"});
  CHECK(bad("calendar_year: true", "rolling: \"12 weeks\"") == std::vector<std::string>{"16:23 E_VALUE"});
  CHECK(bad("per: [tenant]", "per: [tenant, route]") == std::vector<std::string>{"15:19 E_VALUE"});
  CHECK(bad("id: vol.count.too_many", "id: vol.phone.tag") == std::vector<std::string>{"19:9 E_DUPLICATE_ID"});
  CHECK(bad("    window:", "    windw:") ==
        std::vector<std::string>{"12:5 E_MISSING_KEY", "16:5 E_UNKNOWN_KEY"});
}

TEST_CASE("volumes: a test's counter state must name a counter") {
  const auto r = load_yaml(base_pack + R"(tests:
  - id: t
    input: "13812345678"
    src: CN
    dst: US
    volumes: {vol.nope: 3}
    expect: {action: tag}
)");
  CHECK(codes(r) == std::vector<std::string>{"25:15 E_UNKNOWN_VOLUME"});
}

TEST_CASE("volumes: demands hold each subject once, normalised, per tenant and year in the window's zone") {
  const auto r = load_yaml(base_pack);
  REQUIRE(r.ok());
  auto ctx = flow("CN", "US", direction::request, "acme");
  const auto v = decide(*r.rules, "13812345678, 138 1234 5678? no: 13812345678 and 13900001111", ctx);
  // 2025-12-31 17:00 UTC is 2026-01-01 01:00 in Shanghai.
  const auto d = volume_demands(*r.rules, ctx, v, unix_at(2025, 12, 31, 17));
  REQUIRE(d.size() == 1);
  CHECK(d[0].counter_id == "vol.count");
  CHECK(d[0].scope == "tenant=acme");
  CHECK(d[0].window == "2026");
  CHECK(d[0].key == "vol.count|tenant=acme|2026");
  CHECK(d[0].zone == "Asia/Shanghai");
  CHECK(d[0].subjects == std::vector<std::string>{"pi.phone:13812345678", "pi.phone:13900001111"});
  CHECK(d[0].limit == 5);
  CHECK(d[0].expires_at == unix_at(2026, 12, 31, 16));  // 2027-01-01 00:00 in Shanghai
  // 16:00 UTC is still 2025 there.
  CHECK(volume_demands(*r.rules, ctx, v, unix_at(2025, 12, 31, 15))[0].window == "2025");
}

TEST_CASE("volumes: flows outside the counter's when, responses and blocked flows carry nothing") {
  const auto r = load_yaml(base_pack);
  REQUIRE(r.ok());
  const auto now = unix_at(2026, 3, 1);
  auto in_cn = flow("CN", "CN", direction::request, "acme");
  CHECK(volume_demands(*r.rules, in_cn, decide(*r.rules, "13812345678", in_cn), now).empty());
  auto resp = flow("CN", "US", direction::response, "acme");
  CHECK(volume_demands(*r.rules, resp, decide(*r.rules, "13812345678", resp), now).empty());
  auto out = flow("CN", "US", direction::request, "acme");
  auto v = decide(*r.rules, "13812345678", out);
  v.act = action::block;
  CHECK(volume_demands(*r.rules, out, v, now).empty());
}

TEST_CASE("volumes: a tag level is reached and passed, and the flow is counted") {
  const auto r = load_yaml(base_pack);
  REQUIRE(r.ok());
  auto ctx = flow("CN", "US", direction::request, "acme");
  auto v = decide(*r.rules, "13812345678", ctx);
  evaluate_volumes_in_memory(*r.rules, ctx, v, {{"vol.count", 2}}, unix_at(2026, 3, 1));
  CHECK(v.act == action::tag);
  CHECK(v.rules == std::vector<std::string>{"vol.count.many", "vol.phone.tag"});
  CHECK(v.tags == std::vector<std::string>{"many", "phone"});
  REQUIRE(v.volumes.size() == 1);
  CHECK(v.volumes[0].count == 3);
  CHECK(v.volumes[0].added == 1);
  CHECK(v.volumes[0].level == "vol.count.many");
}

TEST_CASE("volumes: a flow whose new subjects would pass a block level is blocked and adds nothing") {
  const auto r = load_yaml(base_pack);
  REQUIRE(r.ok());
  auto ctx = flow("CN", "US", direction::request, "acme");
  auto v = decide(*r.rules, "13812345678 13900001111", ctx);
  evaluate_volumes_in_memory(*r.rules, ctx, v, {{"vol.count", 4}}, unix_at(2026, 3, 1));
  CHECK(v.act == action::block);
  REQUIRE(v.volumes.size() == 1);
  CHECK(v.volumes[0].count == 6);
  CHECK(v.volumes[0].added == 0);
  CHECK(v.volumes[0].level == "vol.count.too_many");
  // One subject fits: count 5 is not past 5.
  auto one = decide(*r.rules, "13812345678", ctx);
  evaluate_volumes_in_memory(*r.rules, ctx, one, {{"vol.count", 4}}, unix_at(2026, 3, 1));
  CHECK(one.act == action::tag);
}

TEST_CASE("volumes: an exception lowers a level like a rule, for its tenants only") {
  const auto r = load_yaml(base_pack + R"(exceptions:
  - id: vol.assessed
    rules: [vol.count.too_many]
    tenants: [acme]
    action: tag
    reason: Security assessment passed
    expires: 2099-12-31
)");
  REQUIRE(r.ok());
  for (const std::string tenant : {"acme", "other"}) {
    auto ctx = flow("CN", "US", direction::request, tenant);
    auto v = decide(*r.rules, "13812345678", ctx);
    evaluate_volumes_in_memory(*r.rules, ctx, v, {{"vol.count", 10}}, unix_at(2026, 3, 1));
    INFO(tenant);
    CHECK(v.act == (tenant == "acme" ? action::tag : action::block));
    CHECK((v.exceptions == std::vector<std::string>{"vol.assessed"}) == (tenant == "acme"));
  }
}

TEST_CASE("volumes: a redact level redacts the counter's findings and the flow goes on") {
  std::string y = base_pack;
  y.replace(y.find("action: block, references"), std::string("action: block").size(), "action: redact");
  const auto r = load_yaml(y);
  REQUIRE(r.ok());
  auto ctx = flow("CN", "US", direction::request, "acme");
  const std::string text = "call 13812345678";
  auto v = decide(*r.rules, text, ctx);
  evaluate_volumes_in_memory(*r.rules, ctx, v, {{"vol.count", 5}}, unix_at(2026, 3, 1));
  CHECK(v.act == action::redact);
  CHECK(r.rules->redact(text, v.findings, 0) == "call [REDACTED:pi.phone]");
  REQUIRE(v.volumes.size() == 1);
  CHECK(v.volumes[0].added == 0);
}

TEST_CASE("volumes: rolling windows look back whole months in the window's zone") {
  std::string y = base_pack;
  y.replace(y.find("{calendar_year: true, time_zone: Asia/Shanghai}"),
            std::string("{calendar_year: true, time_zone: Asia/Shanghai}").size(), "{rolling: \"12 months\"}");
  const auto r = load_yaml(y);
  REQUIRE(r.ok());
  auto ctx = flow("CN", "US", direction::request, "acme");
  const auto v = decide(*r.rules, "13812345678", ctx);
  const auto d = volume_demands(*r.rules, ctx, v, unix_at(2024, 2, 29, 10));
  REQUIRE(d.size() == 1);
  CHECK(d[0].window == "rolling-12m");
  CHECK(d[0].expire_before == unix_at(2023, 2, 28, 10));  // no 29 February in 2023
  CHECK(d[0].zone == "UTC");
  // In Shanghai: 2024-02-29 17:00 UTC is 1 March 01:00 there, so the window
  // starts 2023-03-01 01:00 there (2023-02-28 17:00 UTC), the instant the
  // function customsctl audit volumes recounts with gives.
  std::string z = base_pack;
  z.replace(z.find("{calendar_year: true, time_zone: Asia/Shanghai}"),
            std::string("{calendar_year: true, time_zone: Asia/Shanghai}").size(),
            "{rolling: \"12 months\", time_zone: Asia/Shanghai}");
  const auto rz = load_yaml(z);
  REQUIRE(rz.ok());
  const auto dz = volume_demands(*rz.rules, ctx, decide(*rz.rules, "13812345678", ctx), unix_at(2024, 2, 29, 17));
  REQUIRE(dz.size() == 1);
  CHECK(dz[0].zone == "Asia/Shanghai");
  CHECK(dz[0].expire_before == unix_at(2023, 2, 28, 17));
  std::string why;
  const auto sh = time_zone::load("Asia/Shanghai", why);
  REQUIRE(sh);
  CHECK(rolling_window_start(*sh, unix_at(2024, 2, 29, 17), 0, 12) == dz[0].expire_before);
  CHECK(rolling_window_start(*sh, unix_at(2024, 2, 29, 17), 30, 0) == unix_at(2024, 1, 30, 17));
}

TEST_CASE("volumes: counters change the rule-set hash, and sets without counters keep theirs") {
  const auto a = load_yaml(base_pack);
  std::string y = base_pack;
  y.replace(y.find("exceeding: 5"), std::string("exceeding: 5").size(), "exceeding: 6");
  const auto b = load_yaml(y);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a.rules->hash() != b.rules->hash());
}

TEST_CASE("volumes: embedded tests set counter state and check thresholds") {
  const auto r = load_yaml(base_pack + R"(tests:
  - id: below
    input: "13812345678"
    src: CN
    dst: US
    tenant: acme
    volumes: {vol.count: 1}
    expect: {action: tag, rules: [vol.phone.tag]}
  - id: past
    input: "13812345678"
    src: CN
    dst: US
    tenant: acme
    volumes: {vol.count: 5}
    expect: {action: block, rules: [vol.count.many, vol.count.too_many, vol.phone.tag]}
  - id: wrong
    input: "13812345678"
    src: CN
    dst: US
    volumes: {vol.count: 5}
    expect: {action: tag}
)");
  REQUIRE(r.ok());
  const auto rep = run_rule_tests(*r.rules);
  CHECK(rep.passed == 2);
  REQUIRE(rep.failed == 1);
  CHECK(rep.results[2].id == "wrong");
  // The command line's state applies to tests that set none.
  const auto all = run_rule_tests(*r.rules, {{"vol.count", 100}});
  CHECK(all.failed == 1);
}

TEST_CASE("volumes: the shipped packs' threshold tests pass") {
  const auto rep = run_rule_tests(*shipped());
  for (const auto& t : rep.results)
    for (const auto& f : t.failures) FAIL_CHECK(t.id << ": " << f);
  CHECK(rep.failed == 0);
}

TEST_CASE("volumes: the CAC counters count a consented tenant's individuals since 1 January in Beijing") {
  temp_dir d;
  const auto extra = d.write("consent.yaml", R"(schema: customs/v1
pack: {id: consent, version: "1"}
exceptions:
  - id: consent.acme
    rules: [cn.pipl.personal.redact]
    tenants: [acme]
    action: tag
    reason: Separate consent collected (test)
    expires: 2099-12-31
)");
  const std::vector<std::filesystem::path> paths{source_dir() / "rules", extra};
  const auto r = load_rule_set(paths);
  REQUIRE(r.ok());
  auto ctx = flow("CN", "US", direction::request, "acme");
  auto v = decide(*r.rules, "电话 13812345678", ctx);
  REQUIRE(v.act == action::tag);
  evaluate_volumes_in_memory(*r.rules, ctx, v, {{"cn.cac.personal", 99999}}, unix_at(2026, 6, 1));
  // The 100,000th individual needs a standard contract: blocked without one.
  CHECK(v.act == action::block);
  CHECK(std::find(v.rules.begin(), v.rules.end(), "cn.cac.personal.standard_contract") != v.rules.end());
  auto below = decide(*r.rules, "电话 13812345678", ctx);
  evaluate_volumes_in_memory(*r.rules, ctx, below, {{"cn.cac.personal", 99998}}, unix_at(2026, 6, 1));
  CHECK(below.act == action::tag);
}

TEST_CASE("time zones: TZif offsets and local midnights") {
  std::string why;
  const auto sh = time_zone::load("Asia/Shanghai", why);
  REQUIRE(sh.has_value());
  CHECK(sh->offset_at(unix_at(2026, 1, 1)) == 8 * 3600);
  CHECK(sh->local_midnight(2026, 1, 1) == unix_at(2025, 12, 31, 16));
  const auto ny = time_zone::load("America/New_York", why);
  REQUIRE(ny.has_value());
  CHECK(ny->offset_at(unix_at(2026, 1, 15)) == -5 * 3600);
  CHECK(ny->offset_at(unix_at(2026, 7, 15)) == -4 * 3600);
  CHECK(ny->date_at(unix_at(2026, 1, 1, 3)).year == 2025);
  CHECK_FALSE(time_zone::load("Nowhere/City", why).has_value());
  CHECK_FALSE(time_zone::parse("x", "TZif2 but short", why).has_value());
  CHECK_FALSE(time_zone::parse("x", "", why).has_value());
}
