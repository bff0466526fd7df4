// Replay's core, with a fake evaluator standing in for the policy engine.
#include <catch2/catch.hpp>

#include "audit/replay.hpp"
#include "audit_test_support.hpp"

using namespace customs::audit;
using namespace customs::audit::testing;
namespace crypto = customs::crypto;

namespace {

// Blocks any flow whose request or response text mentions "passport".
replay_outcome fake_rules(const replay_input& in) {
  for (const auto* texts : {&in.request_texts, &in.response_texts})
    for (const auto& t : *texts)
      if (t.find("passport") != std::string::npos) return {"block", {"id.passport"}};
  return {"allow", {}};
}

void write_flow(store& s, ack_counter& acks, const std::string& id, const std::string& request,
                const std::string& response, const std::string& recorded_action,
                const std::string& payload_mode = "full") {
  record o;
  o.kind = record_kind::flow_opened;
  o.flow_id = id;
  o.index.src = "CN";
  o.index.dst = "US";
  o.index.action = recorded_action;
  o.payload = payload_mode == "full" ? "{\"request_texts\":[\"" + request + "\"]}" : "{\"findings\":[]}";
  record c = o;
  c.kind = record_kind::flow_closed;
  c.index.rules = recorded_action == "allow" ? std::vector<std::string>{} : std::vector<std::string>{"old.rule"};
  c.payload = payload_mode == "full" ? "{\"response_texts\":[\"" + response + "\"]}" : "{}";
  REQUIRE_FALSE(s.append(std::move(o), acks.handler()));
  REQUIRE_FALSE(s.append(std::move(c), acks.handler()));
}

}  // namespace

TEST_CASE("replay lists exactly the flows whose action would change", "[audit][replay]") {
  trail t;
  {
    auto s = store::open_store(t.opts);
    ack_counter acks;
    write_flow(*s, acks, "a", "my passport is X123", "ok", "allow");     // allow -> block
    write_flow(*s, acks, "b", "hello", "your passport?", "allow");        // response text -> block
    write_flow(*s, acks, "c", "hello", "hi", "allow");                    // unchanged
    write_flow(*s, acks, "d", "card 4111", "ok", "block");                // block -> allow
    write_flow(*s, acks, "e", "passport", "ok", "block");                 // unchanged
    write_flow(*s, acks, "f", "passport", "ok", "allow", "findings");     // no text recorded
    acks.wait_for(12);
  }
  reader r(t.db);
  r.set_auditor_key(crypto::load_auditor_secret(t.keys / "auditor.key"));
  const auto sum = replay(r, {}, fake_rules);
  CHECK(sum.flows == 6);
  CHECK(sum.replayed == 5);
  CHECK(sum.not_replayable == 1);
  REQUIRE(sum.skipped.size() == 1);
  CHECK(sum.skipped[0].flow_id == "f");
  REQUIRE(sum.changed == 3);
  REQUIRE(sum.changes.size() == 3);
  CHECK(sum.changes[0].flow_id == "a");
  CHECK(sum.changes[0].old_action == "allow");
  CHECK(sum.changes[0].new_action == "block");
  CHECK(sum.changes[0].new_rules == std::vector<std::string>{"id.passport"});
  CHECK(sum.changes[1].flow_id == "b");
  CHECK(sum.changes[2].flow_id == "d");
  CHECK(sum.changes[2].old_rules == std::vector<std::string>{"old.rule"});
  CHECK(sum.changes[2].new_action == "allow");
}

TEST_CASE("replay passes the flow's context and all its texts to the evaluator", "[audit][replay]") {
  trail t;
  {
    auto s = store::open_store(t.opts);
    ack_counter acks;
    write_flow(*s, acks, "x", "req text", "resp text", "allow");
    acks.wait_for(2);
  }
  reader r(t.db);
  r.set_auditor_key(crypto::load_auditor_secret(t.keys2 / "auditor.key"));
  replay_input seen;
  const auto sum = replay(r, {}, [&](const replay_input& in) {
    seen = in;
    return replay_outcome{"allow", {}};
  });
  CHECK(sum.changed == 0);
  CHECK(seen.flow_id == "x");
  CHECK(seen.src == "CN");
  CHECK(seen.dst == "US");
  CHECK(seen.request_texts == std::vector<std::string>{"req text"});
  CHECK(seen.response_texts == std::vector<std::string>{"resp text"});
  CHECK(seen.time_us > 0);
}

TEST_CASE("replay without the right key replays nothing and says why", "[audit][replay]") {
  trail t;
  {
    auto s = store::open_store(t.opts);
    ack_counter acks;
    write_flow(*s, acks, "a", "passport", "ok", "allow");
    acks.wait_for(2);
  }
  temp_dir other;
  (void)crypto::generate_key_set(other.path, crypto::key_set::auditor);
  reader r(t.db);
  r.set_auditor_key(crypto::load_auditor_secret(other.path / "auditor.key"));
  const auto sum = replay(r, {}, fake_rules);
  CHECK(sum.replayed == 0);
  CHECK(sum.not_replayable == 1);
  REQUIRE(sum.skipped.size() == 1);
  CHECK_THAT(sum.skipped[0].reason, Catch::Contains("not sealed"));
}

TEST_CASE("replay takes flows one at a time, in the order of each flow's last record, closed or not", "[audit][replay]") {
  trail t;
  {
    auto s = store::open_store(t.opts);
    ack_counter acks;
    const auto opened = [&](const std::string& id) {
      record o;
      o.kind = record_kind::flow_opened;
      o.flow_id = id;
      o.index.action = "allow";
      o.payload = "{\"request_texts\":[\"passport of " + id + "\"]}";
      REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
    };
    const auto closed = [&](const std::string& id) {
      record c;
      c.kind = record_kind::flow_closed;
      c.flow_id = id;
      c.index.action = "allow";
      c.payload = "{\"response_texts\":[\"ok\"]}";
      REQUIRE_FALSE(s->append(std::move(c), acks.handler()));
    };
    opened("a");
    opened("b");  // never closed
    closed("a");
    opened("c");
    closed("c");
    acks.wait_for(5);
  }
  reader r(t.db);
  r.set_auditor_key(crypto::load_auditor_secret(t.keys / "auditor.key"));
  std::vector<std::string> seen;
  const auto sum = replay(r, {}, [&](const replay_input& in) {
    seen.push_back(in.flow_id);
    return fake_rules(in);
  });
  CHECK(seen == std::vector<std::string>{"b", "a", "c"});
  CHECK(sum.changed == 3);
}

TEST_CASE("replay skips a flow with more flow records than customsd writes for one", "[audit][replay]") {
  trail t;
  t.opts.epoch_records = 1000;
  {
    auto s = store::open_store(t.opts);
    ack_counter acks;
    for (int i = 0; i < 20; ++i) {
      record o;
      o.kind = record_kind::flow_opened;
      o.flow_id = "x";
      o.index.action = "allow";
      o.payload = "{\"request_texts\":[\"passport\"]}";
      REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
    }
    write_flow(*s, acks, "y", "passport", "ok", "allow");
    acks.wait_for(22);
  }
  reader r(t.db);
  r.set_auditor_key(crypto::load_auditor_secret(t.keys / "auditor.key"));
  const auto sum = replay(r, {}, fake_rules);
  CHECK(sum.flows == 2);
  CHECK(sum.replayed == 1);
  REQUIRE(sum.skipped.size() == 1);
  CHECK(sum.skipped[0].flow_id == "x");
  CHECK_THAT(sum.skipped[0].reason, Catch::Contains("more than 16 flow records"));
}
