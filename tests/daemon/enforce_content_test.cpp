// Hostile request and response content end to end: bodies shaped to carry text
// past the scanner (duplicate JSON keys, fields the codecs did not read, text
// split across messages, text carried as files), each checked for what the
// client gets and for what reached the fake provider.
#include "enforce_harness.hpp"
#include "tests/daemon/request_bodies.hpp"
#include "daemon/enforce/inspect_pool.hpp"
#include "daemon/enforce/kept_texts.hpp"
#include "daemon/dialect/request.hpp"
#include "crypto/crypto.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <functional>
#include <set>
#include <thread>

using namespace customs::testing;
using namespace customs::testing::enforce;
using customs::daemon::audit_content;

namespace {

const std::string resident_id = "11010519491231002X";

struct hostile_body {
  std::string name;
  std::string target;  // with the /<dialect>-us/ route prefix
  std::string body;
};

// Each body repeats one key: the first occurrence carries the resident ID, the
// last an innocent text (a JSON parser that keeps the last value sees only that).
std::vector<hostile_body> duplicate_key_bodies() {
  const std::string id = resident_id;
  return {
      {"openai messages", "/openai-us/v1/chat/completions",
       R"({"model":"gpt-test","messages":[{"role":"user","content":"id )" + id +
           R"("}],"messages":[{"role":"user","content":"hello"}]})"},
      {"openai content", "/openai-us/v1/chat/completions",
       R"({"model":"gpt-test","messages":[{"role":"user","content":"id )" + id + R"(","content":"hello"}]})"},
      {"anthropic system", "/anthropic-us/v1/messages",
       R"({"model":"claude-test","max_tokens":10,"system":"id )" + id +
           R"(","system":"be brief","messages":[{"role":"user","content":"hello"}]})"},
      {"anthropic messages", "/anthropic-us/v1/messages",
       R"({"model":"claude-test","max_tokens":10,"messages":[{"role":"user","content":"id )" + id +
           R"("}],"messages":[{"role":"user","content":"hello"}]})"},
      {"gemini contents", "/gemini-us/v1beta/models/gemini-test:generateContent",
       R"({"contents":[{"role":"user","parts":[{"text":"id )" + id +
           R"("}]}],"contents":[{"role":"user","parts":[{"text":"hello"}]}]})"},
      {"gemini text", "/gemini-us/v1beta/models/gemini-test:generateContent",
       R"({"contents":[{"role":"user","parts":[{"text":"id )" + id + R"(","text":"hello"}]}]})"},
      {"responses input", "/openai-us/v1/responses",
       R"({"model":"gpt-test","input":"id )" + id + R"(","input":"hello"})"},
  };
}

}  // namespace

TEST_CASE("enforce content: a request repeating a JSON key is refused as unscannable in every dialect and nothing reaches the provider") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  for (const auto& b : duplicate_key_bodies()) {
    INFO(b.name << ": " << b.body);
    const auto r = post(s.port(), b.target, b.body);
    INFO(r.body);
    CHECK(r.status == 451);
    CHECK(r.header("X-Customs-Verdict") == "unscannable");
    CHECK(r.body.find("customs_unscannable") != std::string::npos);
    CHECK(r.body.find("duplicate") != std::string::npos);
    const auto recs = flow_records(t, r.header("X-Customs-Flow"));
    REQUIRE(recs.size() == 2);
    CHECK(recs[0].index.action == "unscannable");
    CHECK(std::string(recs[0].payload.at("detail").as_string()).find("duplicate") != std::string::npos);
  }
  CHECK(provider.request_count() == 0);
}

TEST_CASE("enforce content: without the repeated key the same requests are blocked for the resident ID") {
  // The control of the case above: the texts themselves are caught.
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  for (const auto& b : duplicate_key_bodies()) {
    json::value v = json::parse(b.body);  // keeps the last value of each key
    // Put the ID where the parser kept the innocent text.
    std::string single = json::serialize(v);
    const auto at = single.find("hello");
    const auto at2 = single.find("be brief");
    if (at != std::string::npos) single.replace(at, 5, "id " + resident_id);
    else if (at2 != std::string::npos) single.replace(at2, 8, "id " + resident_id);
    INFO(b.name << ": " << single);
    const auto r = post(s.port(), b.target, single);
    CHECK(r.status == 451);
    CHECK(r.header("X-Customs-Verdict") == "block");
  }
  CHECK(provider.request_count() == 0);
}

// ---- fields the codecs did not read before ------------------------------------

namespace {

// customsd enforcing the shipped packs, every client in CN, tenant demo.
struct content_fixture {
  temp_dir dir;
  trail_files t{dir.path()};
  fake_provider provider;
  std::unique_ptr<enforced_server> s;

  explicit content_fixture(const std::function<void(customs::daemon::config&)>& tweak = {}) {
    auto c = enforcing_config(t, provider.port());
    if (tweak) tweak(c);
    s = std::make_unique<enforced_server>(std::move(c));
  }
  [[nodiscard]] std::uint16_t port() const { return s->port(); }
};

struct blocked_case {
  std::string name;
  std::string target;
  std::string body;
  header_list headers;
};

std::string b64(std::string_view s) { return customs::testing::gen::base64(s); }

std::string b64_decode(std::string_view in) {
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = -1;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

void expect_blocked(content_fixture& f, const std::vector<blocked_case>& cases) {
  for (const auto& c : cases) {
    INFO(c.name << ": " << c.target << " " << c.body);
    const auto r = post(f.port(), c.target, c.body, c.headers);
    INFO(r.body);
    CHECK(r.status == 451);
    CHECK(r.header("X-Customs-Verdict") == "block");
    CHECK(r.header("X-Customs-Rule") == "cn.pipl.sensitive.block");
  }
  CHECK(f.provider.request_count() == 0);
}

}  // namespace

TEST_CASE("enforce content: a resident ID in fields the codecs did not read before is blocked") {
  content_fixture f;
  const std::string id = resident_id;
  expect_blocked(f, {
      {"message name", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","name":")" + id + R"(","content":"hi"}]})", {}},
      {"user", "/openai-us/v1/chat/completions",
       R"({"model":"m","user":"u )" + id + R"(","messages":[{"role":"user","content":"hi"}]})", {}},
      {"metadata", "/openai-us/v1/chat/completions",
       R"({"model":"m","metadata":{"k":")" + id + R"("},"messages":[{"role":"user","content":"hi"}]})", {}},
      {"stop", "/openai-us/v1/chat/completions",
       R"({"model":"m","stop":[")" + id + R"("],"messages":[{"role":"user","content":"hi"}]})", {}},
      {"response_format enum", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"string","enum":[")" +
           id + R"("]}}}})",
       {}},
      {"unknown field", "/anthropic-us/v1/messages",
       R"({"model":"m","max_tokens":5,"x_extra":{"deep":[")" + id + R"("]},"messages":[{"role":"user","content":"hi"}]})", {}},
      {"an object key", "/gemini-us/v1beta/models/g:generateContent",
       R"({"contents":[{"parts":[{"functionCall":{"name":"f","args":{")" + id + R"(":true}}}]}]})", {}},
      {"Gemini model path", "/gemini-us/v1beta/models/m-" + id + ":generateContent",
       R"({"contents":[{"parts":[{"text":"hi"}]}]})", {}},
      {"query string", "/openai-us/v1/chat/completions?note=" + id,
       R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", {}},
      {"percent-encoded query", "/openai-us/v1/chat/completions?note=%31%31%30%31%30%35%31%39%34%39%31%32%33%31%30%30%32X",
       R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", {}},
      {"header", "/openai-us/v1/chat/completions", R"({"model":"m","messages":[{"role":"user","content":"hi"}]})",
       {{"X-Note", "id " + id}}},
  });
}

TEST_CASE("enforce content: credentials are not scanned, and reach the provider as sent") {
  content_fixture f;
  // An API key that happens to contain an identifier is a credential, not text.
  const auto r = post(f.port(), "/openai-us/v1/chat/completions",
                      R"({"model":"m","messages":[{"role":"user","content":"hi"}]})",
                      {{"Authorization", "Bearer sk-" + resident_id}, {"x-api-key", resident_id}});
  CHECK(r.status == 200);
  REQUIRE(f.provider.request_count() == 1);
  const auto req = f.provider.requests().back();
  bool auth = false;
  for (const auto& [k, v] : req.headers) auth = auth || (k == "Authorization" && v == "Bearer sk-" + resident_id);
  CHECK(auth);
  const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  // Not in the recorded texts either.
  for (const auto& text : recs[0].payload.at("request_texts").as_array()) {
    CHECK(std::string(text.as_string()).find("sk-") == std::string::npos);
  }
}

TEST_CASE("enforce content: the opened record lists the target and the header fields as texts kept apart") {
  // They are joined with each other only, not with the conversation; replay
  // reads the list to judge the recorded texts the same way.
  content_fixture f;
  const auto r = post(f.port(), "/openai-us/v1/chat/completions?note=n",
                      R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", {{"X-Note", "a note"}});
  REQUIRE(r.status == 200);
  const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  const auto& texts = recs[0].payload.at("request_texts").as_array();
  const auto& apart = recs[0].payload.at("request_texts_apart").as_array();
  REQUIRE(apart.size() == 2);
  std::vector<std::string> listed;
  for (const auto& i : apart) listed.emplace_back(texts.at(i.to_number<std::size_t>()).as_string());
  CHECK(listed[0] == "/v1/chat/completions\nnote=n");  // the path, then the query's parameters
  CHECK(listed[1].find("X-Note: a note") != std::string::npos);
  // The conversation's texts are not in the list.
  for (const auto& i : apart) CHECK(texts.at(i.to_number<std::size_t>()).as_string() != "hi");
}

TEST_CASE("enforce content: a target or header that is not UTF-8 leaves a record that parses") {
  // A percent-decoded %FF in the query and a Latin-1 header value: each byte
  // outside UTF-8 is kept as U+FFFD, as the scanner read it (before, the
  // opened record's payload was not JSON: no replay, no export).
  content_fixture f;
  const auto r = post(f.port(), "/openai-us/v1/chat/completions?note=%FF",
                      R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", {{"X-Note", "caf\xe9"}});
  REQUIRE(r.status == 200);
  const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));  // parses each payload
  REQUIRE(recs.size() == 2);
  bool target = false, header = false;
  for (const auto& t : recs[0].payload.at("request_texts").as_array()) {
    const std::string text(t.as_string());
    target = target || text.find("note=\xEF\xBF\xBD") != std::string::npos;
    header = header || text.find("X-Note: caf\xEF\xBF\xBD") != std::string::npos;
  }
  CHECK(target);
  CHECK(header);
}

TEST_CASE("enforce content: an identifier split between two messages or two parts is blocked") {
  content_fixture f;
  expect_blocked(f, {
      {"two chat messages", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":"check 1101051949"},{"role":"user","content":"1231002X please"}]})",
       {}},
      {"two anthropic blocks", "/anthropic-us/v1/messages",
       R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"check 1101051949"},{"type":"text","text":"1231002X"}]}]})",
       {}},
      {"two gemini parts", "/gemini-us/v1beta/models/g:generateContent",
       R"({"contents":[{"role":"user","parts":[{"text":"check 11010519"},{"text":"491231002X"}]}]})", {}},
      {"two responses items", "/openai-us/v1/responses",
       R"({"model":"m","input":[{"role":"user","content":"check 110105"},{"role":"user","content":"19491231002X"}]})", {}},
  });
}

TEST_CASE("enforce content: a phone number split between two messages is redacted in both") {
  content_fixture f;
  const auto r = post(f.port(), "/openai-us/v1/chat/completions",
                      R"({"model":"m","messages":[{"role":"user","content":"call 138 0013"},{"role":"user","content":" 8000 tomorrow"}]})");
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK(r.header("X-Customs-Verdict") == "redact");
  REQUIRE(f.provider.request_count() == 1);
  const auto sent = json::parse(f.provider.requests().back().body);
  CHECK(sent.at_pointer("/messages/0/content").as_string() == "call [REDACTED:pi.phone]");
  CHECK(sent.at_pointer("/messages/1/content").as_string() == " tomorrow");
}

TEST_CASE("enforce content: text carried as files is decoded and blocked") {
  content_fixture f;
  const std::string id = resident_id;
  expect_blocked(f, {
      {"data: URL in an image part", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;base64,)" +
           b64("id " + id) + R"("}}]}]})",
       {}},
      {"data: URL in a file part", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.txt","file_data":"data:text/plain;base64,)" +
           b64("id " + id) + R"("}}]}]})",
       {}},
      {"audio part that is text", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"format":"mp3","data":")" +
           b64("id " + id) + R"("}}]}]})",
       {}},
      {"anthropic base64 text document", "/anthropic-us/v1/messages",
       R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"text/plain","data":")" +
           b64("id " + id) + R"("}}]}]})",
       {}},
      {"gemini inlineData", "/gemini-us/v1beta/models/g:generateContent",
       R"({"contents":[{"parts":[{"inlineData":{"mimeType":"application/json","data":")" + b64(R"({"id":")" + id + R"("})") +
           R"("}}]}]})",
       {}},
  });
}

TEST_CASE("enforce content: a phone number in a text file is redacted and the file re-encoded") {
  content_fixture f;
  const auto r = post(f.port(), "/gemini-us/v1beta/models/g:generateContent",
                      R"({"contents":[{"parts":[{"text":"see file"},{"inlineData":{"mimeType":"text/plain","data":")" +
                          b64("call 138 0013 8000 now") + R"("}}]}]})");
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK(r.header("X-Customs-Verdict") == "redact");
  REQUIRE(f.provider.request_count() == 1);
  const auto sent = json::parse(f.provider.requests().back().body);
  CHECK(b64_decode(sent.at_pointer("/contents/0/parts/1/inlineData/data").as_string()) ==
        "call [REDACTED:pi.phone] now");
}

TEST_CASE("enforce content: a phone number in the media type or parameters of a data URL blocks and nothing reaches the provider") {
  // The decoded text holds a phone number too (a decoy): it is redacted in the
  // payload, but the URL's media type and parameters are not the payload.
  content_fixture f;
  const std::string decoy = b64("please call 13900139000");
  const std::vector<blocked_case> cases = {
      {"number in a parameter", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"see file"},{"type":"image_url","image_url":{"url":"data:text/plain;name=13800138000;base64,)" +
           decoy + R"("}}]}]})",
       {}},
      {"number in the media type", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x-13800138000/plain;base64,)" +
           decoy + R"("}}]}]})",
       {}},
      {"percent-encoded data URL in an unknown field", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":{"f":"data:text/plain;x=13800138000,call%2013900139000"}})",
       {}},
      {"image type sniffed as text", "/openai-us/v1/chat/completions",
       R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;note=13800138000;base64,)" +
           decoy + R"("}}]}]})",
       {}},
  };
  for (const auto& c : cases) {
    INFO(c.name << ": " << c.body);
    const auto r = post(f.port(), c.target, c.body);
    INFO(r.body);
    CHECK(r.status == 451);
    CHECK(r.header("X-Customs-Verdict") == "block");
    CHECK(r.body.find("cannot take a replacement") != std::string::npos);
    const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
    REQUIRE(recs.size() == 2);
    CHECK(recs[0].index.action == "block");
  }
  CHECK(f.provider.request_count() == 0);
  for (const auto& req : f.provider.requests()) CHECK(req.body.find("13800138000") == std::string::npos);
}

TEST_CASE("enforce content: a phone number in the payload of a data URL with parameters is redacted and the URL rebuilt") {
  content_fixture f;
  const auto r = post(f.port(), "/openai-us/v1/chat/completions",
                      R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;charset=utf-8;base64,)" +
                          b64("please call 13900139000") +
                          R"("}}]}],"metadata":{"f":"data:text/plain,call%2013800138000"}})");
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK(r.header("X-Customs-Verdict") == "redact");
  REQUIRE(f.provider.request_count() == 1);
  const std::string body = f.provider.requests().back().body;
  CHECK(body.find("13900139000") == std::string::npos);
  CHECK(body.find("13800138000") == std::string::npos);
  const auto sent = json::parse(body);
  CHECK(sent.at_pointer("/messages/0/content/0/image_url/url").as_string() ==
        "data:text/plain;charset=utf-8;base64," + b64("please call [REDACTED:pi.phone]"));
  CHECK(sent.at_pointer("/metadata/f").as_string() == "data:text/plain;base64," + b64("call [REDACTED:pi.phone]"));
}

TEST_CASE("enforce content: a finding to redact in a field that cannot take a replacement blocks") {
  content_fixture f;
  const auto r = post(f.port(), "/openai-us/v1/chat/completions",
                      R"({"model":"m","messages":[{"role":"user","name":"tel_13800138000","content":"hi"}]})");
  INFO(r.body);
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Verdict") == "block");
  CHECK(r.body.find("cannot take a replacement") != std::string::npos);
  CHECK(f.provider.request_count() == 0);
  const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index.action == "block");
  const auto& findings = recs[0].payload.at("findings").as_array();
  REQUIRE_FALSE(findings.empty());
  CHECK(findings[0].at("role").as_string() == "identifier");
  CHECK(findings[0].at("where").as_string() == "/messages/0/name");
}

// ---- bounds ------------------------------------------------------------------

namespace {

std::string phones_prompt(int n) {
  std::string s = "numbers:";
  for (int i = 0; i < n; ++i) s += " 138 0013 80" + std::to_string(10 + i) + ",";
  return s;
}

}  // namespace

TEST_CASE("enforce content: findings per flow, at the bound the request is redacted") {
  content_fixture f([](customs::daemon::config& c) { c.limits.findings_per_flow = 4; });
  const auto r = post(f.port(), "/openai-us/v1/chat/completions", chat_body(phones_prompt(4), false));
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK(r.header("X-Customs-Verdict") == "redact");
  REQUIRE(f.provider.request_count() == 1);
  CHECK(f.provider.requests().back().body.find("138 0013") == std::string::npos);
  CHECK(metric(scrape(f.s->admin_port()), R"(customs_limit_hits_total{limit="findings_per_flow"})") == 0);
}

TEST_CASE("enforce content: findings per flow, just past the bound the request is unscannable") {
  content_fixture f([](customs::daemon::config& c) { c.limits.findings_per_flow = 4; });
  const auto r = post(f.port(), "/openai-us/v1/chat/completions", chat_body(phones_prompt(5), false));
  INFO(r.body);
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Verdict") == "unscannable");
  CHECK(r.body.find("more than 4 findings") != std::string::npos);
  CHECK(f.provider.request_count() == 0);
  const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index.action == "unscannable");
  CHECK(recs[0].payload.at("findings").as_array().size() == 4);
  CHECK(recs[0].payload.at("findings_limit").to_number<std::int64_t>() == 4);
  CHECK(await_metric(f.s->admin_port(), R"(customs_limit_hits_total{limit="findings_per_flow"})", 1) == 1);
}

TEST_CASE("enforce content: past the findings bound a block among what was found still blocks") {
  content_fixture f([](customs::daemon::config& c) { c.limits.findings_per_flow = 2; });
  const auto r = post(f.port(), "/openai-us/v1/chat/completions",
                      chat_body("id " + resident_id + " " + phones_prompt(3), false));
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Verdict") == "block");
  CHECK(f.provider.request_count() == 0);
}

TEST_CASE("enforce content: past the findings bound with unscannable tag the request goes on as sent, tagged") {
  content_fixture f([](customs::daemon::config& c) {
    c.limits.findings_per_flow = 4;
    c.unscannable = customs::daemon::unscannable_mode::tag;
  });
  const std::string body = chat_body(phones_prompt(5), false);
  const auto r = post(f.port(), "/openai-us/v1/chat/completions", body);
  CHECK(r.status == 200);
  CHECK(r.header("X-Customs-Verdict") == "unscannable");
  CHECK(r.header("X-Customs-Tags") == "unscannable");
  REQUIRE(f.provider.request_count() == 1);
  CHECK(f.provider.requests().back().body == body);
}

TEST_CASE("enforce content: texts kept for the audit record past audit.content_bytes are cut with their length and hash") {
  content_fixture f([](customs::daemon::config& c) { c.audit->content_bytes = 1024; });
  const std::string long_text(3000, 'a');
  const auto r = post(f.port(), "/openai-us/v1/chat/completions", chat_body(long_text, false));
  CHECK(r.status == 200);
  const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  const auto& texts = recs[0].payload.at("request_texts").as_array();
  std::size_t kept = 0;
  for (const auto& t : texts) kept += t.as_string().size();
  CHECK(kept == 1024);
  CHECK(std::string(texts[0].as_string()) == long_text.substr(0, 1024));
  const auto& cut = recs[0].payload.at("request_texts_cut").as_array();
  REQUIRE_FALSE(cut.empty());
  CHECK(cut[0].at("part").to_number<std::int64_t>() == 0);
  CHECK(cut[0].at("bytes").to_number<std::int64_t>() == 3000);
  CHECK(cut[0].at("kept").to_number<std::int64_t>() == 1024);
  CHECK(cut[0].at("blake2b").as_string().size() == 64);
  CHECK(await_metric(f.s->admin_port(), R"(customs_limit_hits_total{limit="audit_content_bytes"})", 1) == 1);
}

TEST_CASE("enforce content: audit.content_bytes, at the bound nothing is cut, just past it one byte is") {
  // The texts a request records: measured with a budget that keeps them all.
  const std::string body = chat_body("hello there " + std::string(500, 'b'), false);
  std::size_t total = 0;
  {
    content_fixture f;
    const auto r = post(f.port(), "/openai-us/v1/chat/completions", body);
    REQUIRE(r.status == 200);
    const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
    REQUIRE(recs.size() == 2);
    for (const auto& t : recs[0].payload.at("request_texts").as_array()) total += t.as_string().size();
  }
  REQUIRE(total > 500);
  for (const std::size_t budget : {total, total - 1}) {
    INFO("content_bytes " << budget << " for " << total << " bytes of text");
    content_fixture f([&](customs::daemon::config& c) { c.audit->content_bytes = budget; });
    const auto r = post(f.port(), "/openai-us/v1/chat/completions", body);
    CHECK(r.status == 200);
    const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
    REQUIRE(recs.size() == 2);
    std::size_t kept = 0;
    for (const auto& t : recs[0].payload.at("request_texts").as_array()) kept += t.as_string().size();
    CHECK(kept == budget);
    const bool past = budget < total;
    CHECK(recs[0].payload.contains("request_texts_cut") == past);
    const char* hits = R"(customs_limit_hits_total{limit="audit_content_bytes"})";
    if (past) CHECK(await_metric(f.s->admin_port(), hits, 1) == 1);
    else CHECK(metric(scrape(f.s->admin_port()), hits) == 0);
  }
}

TEST_CASE("enforce content: inline files decoding to one byte past the per-request text bound are unscannable and counted") {
  // The bound itself is exercised at and past in the codec test (request_options::max_decoded_text).
  content_fixture f;
  const std::string file(customs::daemon::default_max_decoded_text + 1, 'x');
  const std::string body = R"({"contents":[{"parts":[{"inlineData":{"mimeType":"text/plain","data":")" + b64(file) +
                           R"("}}]}]})";
  const auto r = post(f.port(), "/gemini-us/v1beta/models/g:generateContent", body);
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Verdict") == "unscannable");
  CHECK(f.provider.request_count() == 0);
  CHECK(await_metric(f.s->admin_port(), R"(customs_limit_hits_total{limit="decoded_text_bytes"})", 1) == 1);
}

TEST_CASE("kept texts: at the budget every text is whole, one byte past it the last is cut with its hash") {
  using customs::daemon::enforce::kept_texts;
  {
    kept_texts k(7);
    k.add("abc");
    k.add("defg");
    CHECK_FALSE(k.cut());
    CHECK(written_texts(k) == json::array{"abc", "defg"});
    CHECK(written_markers(k).empty());
  }
  {
    kept_texts k(6);
    k.add("abc");
    k.add("defg");
    k.add("hi");  // after the cut: kept empty, marked
    CHECK(k.cut());
    CHECK(written_texts(k) == json::array{"abc", "def", ""});
    const auto m = written_markers(k);
    REQUIRE(m.size() == 2);
    CHECK(m[0].at("part").to_number<std::int64_t>() == 1);
    CHECK(m[0].at("bytes").to_number<std::int64_t>() == 4);
    CHECK(m[0].at("kept").to_number<std::int64_t>() == 3);
    CHECK(m[0].at("blake2b").as_string() == customs::crypto::to_hex(customs::crypto::blake2b(
                                                  {reinterpret_cast<const std::uint8_t*>("defg"), 4})));
    CHECK(m[1].at("part").to_number<std::int64_t>() == 2);
    CHECK(m[1].at("kept").to_number<std::int64_t>() == 0);
  }
}

TEST_CASE("kept texts: a text appended in pieces is cut at a character boundary and hashed whole") {
  using customs::daemon::enforce::kept_texts;
  kept_texts k(4);
  const auto p = k.open();
  k.append(p, "ab");
  k.append(p, "\xe4\xbd\xa0z");  // a 3-byte character that does not fit whole
  k.append(p, "tail");
  CHECK(written_texts(k) == json::array{"ab"});
  const auto m = written_markers(k);
  REQUIRE(m.size() == 1);
  CHECK(m[0].at("bytes").to_number<std::int64_t>() == 10);
  const std::string whole = "ab\xe4\xbd\xa0ztail";
  CHECK(m[0].at("blake2b").as_string() ==
        customs::crypto::to_hex(customs::crypto::blake2b({reinterpret_cast<const std::uint8_t*>(whole.data()), whole.size()})));
  k.append(p, "more");  // sealed by write_markers()
  CHECK(written_markers(k)[0].at("bytes").to_number<std::int64_t>() == 10);
}

namespace {

// The sequence number of a flow's record of `kind` in the trail (0 if none).
std::uint64_t seq_of(const trail_files& t, const std::string& flow, customs::audit::record_kind kind) {
  for (int i = 0; i < 250; ++i) {
    std::uint64_t seq = 0;
    customs::audit::reader r(t.db);
    customs::audit::record_filter f;
    f.flow = flow;
    r.for_each(f, [&](const customs::audit::read_record& rec) {
      if (rec.kind == kind) seq = rec.seq;
      return true;
    });
    if (seq != 0) return seq;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

}  // namespace

TEST_CASE("enforce content: a large request is inspected off the worker, a small one on the same worker finishes first") {
  // One worker. The large body takes its inspection a while; a small request
  // sent once the large one is being inspected completes, and is recorded as
  // closed in the trail, before the large one is even opened (decided).
  content_fixture f;
  // Near misses (IBAN-shaped numbers whose check digits fail) cost the scanner
  // about a second per MiB in a release build, and are no finding.
  std::string big;
  // (No digit run in it is a Luhn-valid card number of any issuer range.)
  while (big.size() < (768u << 10)) big += "acct DE00 1234 5678 9012 3457 78 no. ";
  const std::string big_body = chat_body(big, false);
  std::atomic<bool> big_done{false};
  unsigned big_status = 0;
  std::string big_flow;
  std::thread t([&] {
    http_client c(f.port(), std::chrono::seconds(300));
    const auto r = c.request("POST", "/openai-us/v1/chat/completions", big_body, {{"Content-Type", "application/json"}});
    big_status = r.status;
    big_flow = r.header("X-Customs-Flow");
    big_done = true;
  });
  // Wait until customsd is inspecting the large body (the pool has it).
  bool inspecting = false;
  for (int i = 0; i < 5000 && !inspecting && !big_done; ++i) {
    inspecting = f.s->enforcer().inspecting() > 0;
    if (!inspecting) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto small = post(f.port(), "/openai-us/v1/chat/completions", chat_body("hello", false));
  t.join();
  CHECK(inspecting);
  CHECK(small.status == 200);
  CHECK(big_status == 200);
  const auto small_closed = seq_of(f.t, small.header("X-Customs-Flow"), customs::audit::record_kind::flow_closed);
  const auto big_opened = seq_of(f.t, big_flow, customs::audit::record_kind::flow_opened);
  CHECK(small_closed != 0);
  CHECK(big_opened != 0);
  CHECK(small_closed < big_opened);
}

TEST_CASE("enforce content: the inspection pool takes at most max_jobs, at and just past the bound") {
  customs::daemon::enforce::inspect_pool pool(1, 2);
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> ran{0};
  auto job = [&] {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return release; });
    ++ran;
  };
  CHECK(pool.try_post(job));
  CHECK(pool.try_post(job));   // at the bound: one running, one queued
  CHECK_FALSE(pool.try_post(job));  // just past it
  CHECK(pool.jobs() == 2);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  pool.stop();
  CHECK(ran == 2);
  CHECK_FALSE(pool.try_post(job));  // stopped
}

// ---- non-streamed answers from a scripted upstream -------------------------------

namespace {

// An upstream that answers every request with one canned response (status,
// JSON body), on a loopback port, until destroyed.
class canned_upstream {
 public:
  canned_upstream(unsigned status, std::string body)
      : acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}), status_(status), body_(std::move(body)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~canned_upstream() {
    stop_ = true;
    boost::system::error_code ec;
    // Wake the blocking accept with a connection of our own.
    boost::asio::ip::tcp::socket s(ioc_);
    s.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  void serve() {
    while (!stop_) {
      boost::asio::ip::tcp::socket s(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      std::string in;
      char buf[4096];
      std::size_t need = std::string::npos;
      while (true) {
        const std::size_t n = s.read_some(boost::asio::buffer(buf), ec);
        if (ec) break;
        in.append(buf, n);
        const auto head_end = in.find("\r\n\r\n");
        if (head_end == std::string::npos) continue;
        if (need == std::string::npos) {
          std::size_t len = 0;
          const auto cl = in.find("Content-Length: ");
          if (cl != std::string::npos && cl < head_end) len = std::stoul(in.substr(cl + 16));
          need = head_end + 4 + len;
        }
        if (in.size() >= need) break;
      }
      std::string out = "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n" + body_;
      boost::asio::write(s, boost::asio::buffer(out), ec);
    }
  }

  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned status_;
  std::string body_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// customsd in front of a canned upstream: /openai-us/ to it, clients CN / demo.
struct canned_fixture {
  temp_dir dir;
  trail_files t{dir.path()};
  canned_upstream up;
  std::unique_ptr<enforced_server> s;
  canned_fixture(unsigned status, std::string body) : up(status, std::move(body)) {
    s = std::make_unique<enforced_server>(enforcing_config(t, up.port()));
  }
};

}  // namespace

TEST_CASE("enforce content: a provider error that quotes a secret is not relayed") {
  canned_fixture f(400, R"({"error":{"message":"invalid key AKIAUJZDE8GXD6NCF10E in input","type":"invalid_request_error"}})");
  const auto r = post(f.s->port(), "/openai-us/v1/chat/completions", chat_body("hi", false));
  INFO(r.body);
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Response-Verdict") == "block");
  CHECK(r.body.find("AKIA") == std::string::npos);
}

TEST_CASE("enforce content: a provider error that quotes a phone number is redacted, and a non-JSON error is scanned as text") {
  {
    canned_fixture f(422, R"({"error":{"message":"cannot call 138 1234 5678","type":"invalid_request_error"}})");
    const auto r = post(f.s->port(), "/openai-us/v1/chat/completions", chat_body("hi", false));
    INFO(r.body);
    CHECK(r.status == 422);
    CHECK(r.header("X-Customs-Response-Verdict") == "redact");
    CHECK(json::parse(r.body).at_pointer("/error/message").as_string() == "cannot call [REDACTED:pi.phone]");
  }
  {
    canned_fixture f(502, "<html>upstream says 138 1234 5678</html>");
    const auto r = post(f.s->port(), "/openai-us/v1/chat/completions", chat_body("hi", false));
    CHECK(r.status == 502);
    CHECK(r.body == "<html>upstream says [REDACTED:pi.phone]</html>");
  }
}

TEST_CASE("enforce content: a non-streamed answer that repeats a key is forwarded re-serialised from what was scanned") {
  canned_fixture f(200, R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",)"
                        R"("content":"AKIAUJZDE8GXD6NCF10E","content":"fine"},"finish_reason":"stop"}]})");
  const auto r = post(f.s->port(), "/openai-us/v1/chat/completions", chat_body("hi", false));
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK(r.body.find("AKIA") == std::string::npos);
  CHECK(json::parse(r.body).at_pointer("/choices/0/message/content").as_string() == "fine");
}

namespace {

// A chat request body of exactly `size` bytes (one prompt of 'a's).
std::string chat_body_of_size(std::size_t size) {
  const std::size_t overhead = chat_body("", false).size();
  REQUIRE(size >= overhead);
  std::string body = chat_body(std::string(size - overhead, 'a'), false);
  REQUIRE(body.size() == size);
  return body;
}

}  // namespace

TEST_CASE("enforce content: a body one byte below offload_bytes is inspected on its worker, one of offload_bytes on the pool") {
  using customs::daemon::enforce::inspect_pool;
  content_fixture f;
  const char* offloaded = "customs_inspect_offloaded_total";
  auto r = post(f.port(), "/openai-us/v1/chat/completions", chat_body_of_size(inspect_pool::offload_bytes - 1));
  CHECK(r.status == 200);
  CHECK(metric(scrape(f.s->admin_port()), offloaded) == 0);
  r = post(f.port(), "/openai-us/v1/chat/completions", chat_body_of_size(inspect_pool::offload_bytes));
  CHECK(r.status == 200);
  CHECK(metric(scrape(f.s->admin_port()), offloaded) == 1);
  CHECK(f.provider.request_count() == 2);
}

TEST_CASE("enforce content: with the inspection pool full a large request is refused with 503 and counted, nothing forwarded") {
  using customs::daemon::enforce::inspect_pool;
  content_fixture f;
  // Fill the pool with jobs that wait for us.
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  auto hold = [&] {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return release; });
  };
  std::size_t held = 0;
  while (f.s->enforcer().pool().try_post(hold)) ++held;
  REQUIRE(held > 0);
  const std::string large = chat_body_of_size(inspect_pool::offload_bytes);
  const auto r = post(f.port(), "/openai-us/v1/chat/completions", large);
  CHECK(r.status == 503);
  CHECK(r.header("Retry-After") == "1");
  CHECK(r.header("X-Customs-Verdict") == "refused");
  CHECK(r.body.find("customs_busy") != std::string::npos);
  CHECK(await_metric(f.s->admin_port(), R"(customs_limit_hits_total{limit="inspect_queue"})", 1) == 1);
  const auto recs = flow_records(f.t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index.action == "refused");
  // A small request is inspected on its worker meanwhile.
  CHECK(post(f.port(), "/openai-us/v1/chat/completions", chat_body("hello", false)).status == 200);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  // Once the pool has room again, the same request goes through.
  for (int i = 0; i < 5000 && f.s->enforcer().inspecting() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(post(f.port(), "/openai-us/v1/chat/completions", large).status == 200);
  CHECK(f.provider.request_count() == 2);
}
