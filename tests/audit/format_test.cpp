#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "audit/format.hpp"

using namespace customs::audit;
namespace crypto = customs::crypto;

TEST_CASE("the header encoding is fixed byte for byte", "[audit][format]") {
  format::header_fields h;
  h.kind = record_kind::flow_closed;
  h.seq = 0x0102;
  h.epoch = 3;
  h.time_us = 4;
  h.flow_id = "f";
  h.index.rules = {"a", "b"};
  h.index.tokens_out = 5;
  crypto::bytes out;
  format::encode_header(h, out);
  const crypto::bytes expected = {
      1, 2,                       // version, kind
      0x02, 0x01, 0, 0, 0, 0, 0, 0,  // seq
      3, 0, 0, 0, 0, 0, 0, 0,     // epoch
      4, 0, 0, 0, 0, 0, 0, 0,     // time
      1, 0, 0, 0, 'f',            // flow_id
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // route src dst tenant action
      3, 0, 0, 0, 'a', ',', 'b',  // rules
      0, 0, 0, 0,                 // rule_set_hash
      0, 0, 0, 0, 0, 0, 0, 0,     // tokens_in
      5, 0, 0, 0, 0, 0, 0, 0};    // tokens_out
  CHECK(out == expected);
}

TEST_CASE("rule lists survive the column round trip", "[audit][format]") {
  using v = std::vector<std::string>;
  const std::string a = "a", b = "b", c = "c", empty;
  for (const auto& rules : {v{}, v{a}, v{a, b}, v{a, empty}, v{empty, b}, v{a, empty, c}}) {
    const auto joined = format::join_rules(rules);
    if (joined.empty()) continue;  // {} and {""} both store "" and hash the same
    CHECK(format::split_rules(joined) == rules);
  }
}

TEST_CASE("hashes are domain separated", "[audit][format]") {
  const crypto::bytes data(32, 7);
  crypto::hash as_hash{};
  std::copy(data.begin(), data.end(), as_hash.begin());
  CHECK(format::payload_hash(data) != crypto::blake2b(data));
  crypto::mac_key k;
  CHECK(format::record_mac(k, as_hash) != format::payload_hash(data));
}

TEST_CASE("checkpoint text round trip and errors", "[audit][format]") {
  format::checkpoint cp;
  cp.seq = 42;
  cp.epoch = 3;
  cp.time_us = 1'764'327'099'123'456;
  cp.head[0] = 0xaa;
  cp.sig[63] = 0x55;
  crypto::sign_public_key pk{};
  pk[1] = 9;
  cp.signer = pk;
  const auto text = format::checkpoint_to_text(cp);
  CHECK_THAT(text, Catch::Contains("time: 2025-11-28T10:51:39.123456Z"));
  const auto back = format::checkpoint_from_text(text);
  CHECK(back.seq == 42);
  CHECK(back.epoch == 3);
  CHECK(back.time_us == cp.time_us);
  CHECK(back.head == cp.head);
  CHECK(back.sig == cp.sig);
  CHECK(back.signer == cp.signer);
  CHECK_THROWS_WITH(format::checkpoint_from_text("hello\n"), Catch::Contains("line 1"));
  CHECK_THROWS_WITH(format::checkpoint_from_text("customs audit checkpoint v1\nseq: x\n"),
                    Catch::Contains("line 2"));
}

TEST_CASE("checkpoint numbers out of range or written twice are rejected", "[audit][format]") {
  // A checkpoint is what an auditor holds against a trail: a number that
  // wraps, or a field written twice, would make it say something other than
  // what is written. Found by fuzz_audit_record: a 20-digit time_us above
  // INT64_MAX parsed to a negative time that printed as "-..." and no longer
  // parsed.
  const std::string head = std::string("head: ") + std::string(64, 'a') + "\n";
  const std::string sig = std::string("signature: ") + std::string(128, 'c') + "\n";
  const auto text = [&](std::string_view seq, std::string_view time_us, std::string_view extra = "") {
    return "customs audit checkpoint v1\nseq: " + std::string(seq) + "\nepoch: 2\ntime_us: " +
           std::string(time_us) + "\n" + head + sig + std::string(extra);
  };
  // At the bounds: the largest seq (UINT64_MAX) and time_us (INT64_MAX) parse and print back.
  const auto at_bound = format::checkpoint_from_text(text("18446744073709551615", "9223372036854775807"));
  CHECK(at_bound.seq == UINT64_MAX);
  CHECK(at_bound.time_us == INT64_MAX);
  CHECK(format::checkpoint_from_text(format::checkpoint_to_text(at_bound)).time_us == INT64_MAX);
  // Just past them.
  CHECK_THROWS_WITH(format::checkpoint_from_text(text("18446744073709551616", "1")), Catch::Contains("line 2"));
  CHECK_THROWS_WITH(format::checkpoint_from_text(text("1", "9223372036854775808")), Catch::Contains("line 4"));
  CHECK_THROWS_WITH(format::checkpoint_from_text(text("1", "17958631010101010101")), Catch::Contains("line 4"));
  // A field written twice.
  CHECK_THROWS_WITH(format::checkpoint_from_text(text("1", "1", "seq: 2\n")),
                    Catch::Contains("line 7") && Catch::Contains("seq"));
  CHECK_THROWS_WITH(format::checkpoint_from_text(text("1", "1", "time: x\ntime: y\n")), Catch::Contains("line 8"));
}

TEST_CASE("times parse as UTC", "[audit][format]") {
  CHECK(format::parse_time("1970-01-02") == 86'400'000'000);
  CHECK(format::parse_time("1970-01-01T00:01Z") == 60'000'000);
  CHECK(format::parse_time("1970-01-01T00:00:01.5Z") == 1'500'000);
  CHECK_FALSE(format::parse_time("1970-13-01"));
  CHECK_FALSE(format::parse_time("yesterday"));
  CHECK_FALSE(format::parse_time("1970-01-01T00:00"));
}

TEST_CASE("epoch_start and erasure bodies round trip and reject garbage", "[audit][format]") {
  format::epoch_start_body b;
  b.signer[0] = 1;
  b.keys.resize(2);
  b.keys[1].box[79] = 3;
  const auto enc = format::encode_epoch_start(b);
  const auto dec = format::decode_epoch_start(enc);
  REQUIRE(dec);
  CHECK(dec->keys.size() == 2);
  CHECK(dec->keys[1].box[79] == 3);
  auto cut = enc;
  cut.pop_back();
  CHECK_FALSE(format::decode_epoch_start(cut));

  const auto er = format::encode_erasure({"why", {4, 5}});
  const auto back = format::decode_erasure(er);
  REQUIRE(back);
  CHECK(back->reason == "why");
  CHECK(back->seqs == std::vector<std::uint64_t>{4, 5});
  CHECK_FALSE(format::decode_erasure(crypto::bytes{1, 0xff, 0xff, 0xff, 0xff}));
}
