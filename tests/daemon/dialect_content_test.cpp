// What the codecs hand to the scanner beyond the conversation: every other
// string of a body, its keys, the request target and headers, inline files,
// repeated keys, and on the response side tool names and provider errors.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/dialect/blob.hpp"
#include "daemon/dialect/request.hpp"
#include "daemon/dialect/response.hpp"
#include "daemon/dialect/stream_codec.hpp"
#include "tests/daemon/dialect_test_support.hpp"

namespace json = boost::json;
using namespace customs::daemon;
using customs::daemon::test::decode_ok;
using customs::daemon::test::make_stream_codec;
using customs::daemon::test::parse;

namespace {

const text_slot* find_slot(const std::vector<text_slot>& slots, std::string_view where) {
  for (const auto& s : slots) {
    if (s.where == where) return &s;
  }
  return nullptr;
}

const text_slot& slot_at(const std::vector<text_slot>& slots, std::string_view where) {
  const auto* s = find_slot(slots, where);
  INFO("no slot at " << where);
  REQUIRE(s != nullptr);
  return *s;
}

const text_slot* role_slot(const std::vector<text_slot>& slots, slot_role role) {
  for (const auto& s : slots) {
    if (s.role == role) return &s;
  }
  return nullptr;
}

std::vector<const text_slot*> slots_of(const std::vector<text_slot>& slots, slot_role role) {
  std::vector<const text_slot*> out;
  for (const auto& s : slots) {
    if (s.role == role) out.push_back(&s);
  }
  return out;
}

std::string b64(std::string_view s) { return detail::encode_base64(s); }

request_options body_only() {
  request_options o;
  o.scan_target = false;
  return o;
}

}  // namespace

TEST_CASE("request coverage: every string of the body is a slot, with a generic role for unknown fields", "[dialect][content]") {
  const std::string body = R"({"model":"gpt-4o","user":"u-11010519491231002X",
    "metadata":{"note":"call 13800138000"},"stop":["END 1","END 2"],
    "messages":[{"role":"user","name":"zhang_san","content":"hi"}],
    "response_format":{"type":"json_schema","json_schema":{"name":"out","schema":{"type":"object",
      "properties":{"kind":{"type":"string","enum":["resident 11010519491231002X","other"],"description":"the kind"}}}}},
    "x_vendor":{"deep":[{"v":"unknown field text"}]}})";
  auto ex = extract_request(dialect::openai, "/v1/chat/completions", body, body_only());
  REQUIRE_OK(ex);
  CHECK(slot_at(ex->slots, "/messages/0/content").role == slot_role::prose);
  for (const char* where : {"/user", "/metadata/note", "/stop/0", "/stop/1",
                            "/response_format/json_schema/schema/properties/kind/enum/0",
                            "/response_format/json_schema/schema/properties/kind/description", "/x_vendor/deep/0/v"}) {
    INFO(where);
    const auto& s = slot_at(ex->slots, where);
    CHECK(s.role == slot_role::field);
    CHECK(s.writable());
  }
  CHECK(slot_at(ex->slots, "/user").text == "u-11010519491231002X");
  CHECK(slot_at(ex->slots, "/response_format/json_schema/schema/properties/kind/enum/0").text ==
        "resident 11010519491231002X");
  for (const char* where : {"/model", "/messages/0/name", "/messages/0/role", "/response_format/type",
                            "/response_format/json_schema/name"}) {
    INFO(where);
    const auto& s = slot_at(ex->slots, where);
    CHECK(s.role == slot_role::identifier);
    CHECK_FALSE(s.writable());
  }
  // The dialect's own slots come first, then the others in document order.
  CHECK(ex->slots.front().where == "/messages/0/content");
}

TEST_CASE("request coverage: the object keys are one slot, each distinct key once in order of appearance", "[dialect][content]") {
  auto ex = extract_request(dialect::anthropic, "/v1/messages",
                            R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[)"
                            R"({"type":"tool_use","id":"t","name":"n","input":{"11010519491231002X":true,"role":"x"}}]}]})",
                            body_only());
  REQUIRE_OK(ex);
  const auto* keys = role_slot(ex->slots, slot_role::key);
  REQUIRE(keys != nullptr);
  CHECK(keys->text == "model\nmax_tokens\nmessages\nrole\ncontent\ntype\nid\nname\ninput\n11010519491231002X");
  CHECK_FALSE(keys->writable());
}

TEST_CASE("request target: the path and query are decoded, credential parameters are left out", "[dialect][content]") {
  auto ex = extract_request(dialect::gemini,
                            "/v1beta/models/id-11010519491231002X:generateContent?key=SECRET&alt=sse&q=a%20b+c&api_key=S2",
                            R"({"contents":[{"parts":[{"text":"hi"}]}]})");
  REQUIRE_OK(ex);
  const auto* t = role_slot(ex->slots, slot_role::target);
  REQUIRE(t != nullptr);
  CHECK(t->text == "/v1beta/models/id-11010519491231002X:generateContent\nalt=sse\nq=a b c");
  CHECK_FALSE(t->writable());
  auto pct = extract_request(dialect::openai, "/v1/%31%31%30%31/chat/completions", R"({"messages":[]})");
  REQUIRE_OK(pct);
  CHECK(role_slot(pct->slots, slot_role::target)->text == "/v1/1101/chat/completions");
}

TEST_CASE("request headers: every field but the credentials is scanned, as name: value lines", "[dialect][content]") {
  const std::pair<std::string_view, std::string_view> headers[] = {
      {"Authorization", "Bearer sk-1"}, {"x-api-key", "k2"}, {"api-key", "k3"}, {"X-Goog-Api-Key", "k4"},
      {"Cookie", "c=1"}, {"Proxy-Authorization", "Basic x"}, {"User-Agent", "sdk/1.0"},
      {"X-Trace", "id 11010519491231002X"}};
  request_options o;
  o.headers = headers;
  auto ex = extract_request(dialect::openai, "/v1/chat/completions", R"({"messages":[]})", o);
  REQUIRE_OK(ex);
  const auto* h = role_slot(ex->slots, slot_role::header);
  REQUIRE(h != nullptr);
  CHECK(h->text == "User-Agent: sdk/1.0\nX-Trace: id 11010519491231002X");
  CHECK_FALSE(h->writable());
  CHECK(ex->slots.back().role == slot_role::header);
  for (auto name : {"authorization", "X-API-KEY", "Api-Key", "x-goog-api-key", "cookie", "proxy-authorization"}) {
    CHECK(credential_header(name));
  }
  CHECK_FALSE(credential_header("x-trace"));
}

TEST_CASE("inline files: a data: URL of text in an image part is decoded and a replacement re-encoded", "[dialect][content]") {
  const std::string body = R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;charset=utf-8;base64,)" +
                           b64("my id 11010519491231002X") + R"("}}]}]})";
  auto ex = extract_request(dialect::openai, "/v1/chat/completions", body, body_only());
  REQUIRE_OK(ex);
  const auto atts = slots_of(ex->slots, slot_role::attachment);
  REQUIRE(atts.size() == 1);
  CHECK(atts[0]->text == "my id 11010519491231002X");
  CHECK(atts[0]->where == "/messages/0/content/0/image_url/url");
  CHECK(atts[0]->form == slot_form::data_url);
  CHECK(ex->non_text[media_kind::image] == 1);
  // Its own string is scanned too, but nothing is written into it but the re-encoding.
  bool raw_fixed = false;
  for (const auto& s : ex->slots) {
    if (s.where == "/messages/0/content/0/image_url/url" && s.role == slot_role::field) raw_fixed = !s.writable();
  }
  CHECK(raw_fixed);
  std::size_t index = 0;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) {
    if (ex->slots[i].role == slot_role::attachment) index = i;
  }
  auto out = rewrite_request(*ex, std::vector<text_replacement>{{index, "my id [REDACTED]"}});
  REQUIRE_OK(out);
  const auto v = parse(*out);
  CHECK(v.at_pointer("/messages/0/content/0/image_url/url").as_string() ==
        "data:text/plain;charset=utf-8;base64," + b64("my id [REDACTED]"));
  CHECK(ex->slots[index].text == "my id [REDACTED]");
}

TEST_CASE("inline files: each dialect's text files are decoded", "[dialect][content]") {
  const std::string id = "11010519491231002X";
  struct file_case {
    const char* name;
    dialect d;
    std::string path;
    std::string body;
    std::string where;
  };
  const file_case cases[] = {
      {"anthropic base64 text document", dialect::anthropic, "/v1/messages",
       R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"text/plain","data":")" +
           b64("doc " + id) + R"("}}]}]})",
       "/messages/0/content/0/source/data"},
      {"gemini inlineData json", dialect::gemini, "/v1beta/models/g:generateContent",
       R"({"contents":[{"parts":[{"inlineData":{"mimeType":"application/json","data":")" + b64("{\"id\":\"" + id + "\"}") +
           R"("}}]}]})",
       "/contents/0/parts/0/inlineData/data"},
      {"openai file part", dialect::openai, "/v1/chat/completions",
       R"({"messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.txt","file_data":"data:text/plain;base64,)" +
           b64("file " + id) + R"("}}]}]})",
       "/messages/0/content/0/file/file_data"},
      {"openai audio that is text", dialect::openai, "/v1/chat/completions",
       R"({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"format":"wav","data":")" +
           b64("audio " + id) + R"("}}]}]})",
       "/messages/0/content/0/input_audio/data"},
      {"responses input_file by file name", dialect::openai, "/v1/responses",
       R"({"input":[{"role":"user","content":[{"type":"input_file","filename":"notes.md","file_data":")" + b64("notes " + id) +
           R"("}]}]})",
       "/input/0/content/0/file_data"},
      {"a data: URL in an unknown field", dialect::openai, "/v1/chat/completions",
       R"({"messages":[],"x":{"y":"data:,plain%20)" + id + R"("}})", "/x/y"},
      {"base64 beside a media type in an unknown field", dialect::anthropic, "/v1/messages",
       R"({"model":"m","max_tokens":5,"messages":[],"x":{"media_type":"text/csv","data":")" + b64("a,b\n1," + id) + R"("}})",
       "/x/data"},
  };
  for (const auto& c : cases) {
    INFO(c.name << ": " << c.body);
    auto ex = extract_request(c.d, c.path, c.body, body_only());
    REQUIRE_OK(ex);
    const auto& s = slot_at(ex->slots, c.where);  // the first slot there: the decoded text
    CHECK(s.role == slot_role::attachment);
    CHECK(s.text.find(id) != std::string_view::npos);
  }
}

// Found by fuzz_dialect_rewrite: with "format" writable, a redaction that
// emptied it left the data beside it unread on the next extraction (a file
// whose text was scanned turned into an opaque string).
TEST_CASE("inline files: an audio format says how the data is read and takes no replacement", "[dialect][content]") {
  const std::string data = b64("audio 11010519491231002X");
  const std::string part = R"({"format":"wav","data":")" + data + R"("})";
  for (const std::string& body : {R"({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":)" + part + "}]}]}",
                                 R"({"messages":[{"role":"user","conte.t":[{"type":"input_audio","input_audio":)" + part + "}]}]}"}) {
    INFO(body);
    auto ex = extract_request(dialect::openai, "/v1/chat/completions", body, body_only());
    REQUIRE_OK(ex);
    CHECK(slots_of(ex->slots, slot_role::attachment).size() == 1);
    std::size_t format = ex->slots.size();
    for (std::size_t i = 0; i < ex->slots.size(); ++i)
      if (ex->slots[i].where.ends_with("/input_audio/format")) format = i;
    REQUIRE(format < ex->slots.size());
    CHECK(ex->slots[format].role == slot_role::identifier);
    CHECK_FALSE(ex->slots[format].writable());
    auto out = rewrite_request(*ex, std::vector<text_replacement>{{format, ""}});
    REQUIRE_FALSE(out.has_value());
    CHECK(out.error().code == codec_errc::slot_not_writable);
  }
}

TEST_CASE("inline files: binary media is not decoded as text, its string is still scanned", "[dialect][content]") {
  const std::string png = b64(std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
  const std::string body = R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":")" +
                           png + R"("}}]}]})";
  auto ex = extract_request(dialect::anthropic, "/v1/messages", body, body_only());
  REQUIRE_OK(ex);
  CHECK(slots_of(ex->slots, slot_role::attachment).empty());
  CHECK(slot_at(ex->slots, "/messages/0/content/0/source/data").role == slot_role::field);
  CHECK(ex->non_text[media_kind::image] == 1);
}

TEST_CASE("inline files: a declared text that does not decode is undecodable", "[dialect][content]") {
  auto bad64 = extract_request(dialect::gemini, "/v1beta/models/g:generateContent",
                               R"({"contents":[{"parts":[{"inlineData":{"mimeType":"text/plain","data":"a*b"}}]}]})", body_only());
  REQUIRE_FALSE(bad64.has_value());
  CHECK(bad64.error().code == codec_errc::undecodable_text);
  CHECK(bad64.error().where == "/contents/0/parts/0/inlineData/data");
  auto latin1 = extract_request(dialect::gemini, "/v1beta/models/g:generateContent",
                                R"({"contents":[{"parts":[{"inlineData":{"mimeType":"text/plain","data":")" + b64("caf\xe9") +
                                    R"("}}]}]})",
                                body_only());
  REQUIRE_FALSE(latin1.has_value());
  CHECK(latin1.error().code == codec_errc::undecodable_text);
}

TEST_CASE("inline files: decoded text is bounded per request, at and past the bound", "[dialect][content]") {
  auto body = [](std::size_t a, std::size_t b) {
    return R"({"contents":[{"parts":[{"inlineData":{"mimeType":"text/plain","data":")" + b64(std::string(a, 'x')) +
           R"("}},{"inlineData":{"mimeType":"text/plain","data":")" + b64(std::string(b, 'y')) + R"("}}]}]})";
  };
  request_options o = body_only();
  o.max_decoded_text = 100;
  auto at = extract_request(dialect::gemini, "/v1beta/models/g:generateContent", body(60, 40), o);
  REQUIRE_OK(at);
  CHECK(slots_of(at->slots, slot_role::attachment).size() == 2);
  auto past = extract_request(dialect::gemini, "/v1beta/models/g:generateContent", body(60, 41), o);
  REQUIRE_FALSE(past.has_value());
  CHECK(past.error().code == codec_errc::too_much_text);
  CHECK(past.error().where == "/contents/0/parts/1/inlineData/data");
}

TEST_CASE("gemini: a part naming two members, or one under both spellings, is read under each", "[dialect][content]") {
  const std::string body = R"({"contents":[{"parts":[{"text":"hi","inlineData":{"mimeType":"text/plain","data":")" +
                           b64("one 11010519491231002X") + R"("},"inline_data":{"mime_type":"text/plain","data":")" +
                           b64("two 11010519491231002X") + R"("}}]}]})";
  auto ex = extract_request(dialect::gemini, "/v1beta/models/g:generateContent", body, body_only());
  REQUIRE_OK(ex);
  CHECK(slot_at(ex->slots, "/contents/0/parts/0/text").text == "hi");
  CHECK(slot_at(ex->slots, "/contents/0/parts/0/inlineData/data").text == "one 11010519491231002X");
  CHECK(slot_at(ex->slots, "/contents/0/parts/0/inline_data/data").text == "two 11010519491231002X");
}

TEST_CASE("rewrite refuses a replacement in a slot that cannot take one", "[dialect][content]") {
  auto ex = extract_request(dialect::openai, "/v1/chat/completions",
                            R"({"messages":[{"role":"user","name":"n13800138000","content":"hi"}]})", body_only());
  REQUIRE_OK(ex);
  std::size_t name = ex->slots.size();
  for (std::size_t i = 0; i < ex->slots.size(); ++i) {
    if (ex->slots[i].where == "/messages/0/name") name = i;
  }
  REQUIRE(name < ex->slots.size());
  auto r = rewrite_request(*ex, std::vector<text_replacement>{{0, "x"}, {name, "[REDACTED]"}});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == codec_errc::slot_not_writable);
  CHECK(ex->slots[0].text == "hi");  // nothing changed
}

TEST_CASE("duplicate keys: the pointer names the second occurrence, also inside arrays and escaped keys", "[dialect][content]") {
  struct dup_case {
    std::string body;
    std::string where;
  };
  const dup_case cases[] = {
      {R"({"messages":[],"messages":[]})", "/messages"},
      {R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":"b","role":"x"}]})", "/messages/1/role"},
      {R"({"messages":[{"content":[{"type":"text","text":"a","te\u0078t":"b"}]}]})", "/messages/0/content/0/text"},
      {R"({"x":[[1,{"a":{"b":1,"b":2}}]],"messages":[]})", "/x/0/1/a/b"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    auto ex = extract_request(dialect::openai, "/v1/chat/completions", c.body);
    REQUIRE_FALSE(ex.has_value());
    CHECK(ex.error().code == codec_errc::duplicate_key);
    CHECK(ex.error().where == c.where);
  }
  // The same key in different objects is not a repeat.
  CHECK(extract_request(dialect::openai, "/v1/chat/completions",
                        R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]})")
            .has_value());
}

TEST_CASE("duplicate keys in a response are read once and the body is forwarded re-serialised", "[dialect][content]") {
  auto ex = extract_response(dialect::openai, endpoint_kind::openai_chat,
                             R"({"choices":[{"index":0,"message":{"role":"assistant","content":"secret","content":"fine"}}]})");
  REQUIRE_OK(ex);
  CHECK(ex->duplicate_keys);
  REQUIRE(ex->slots.size() == 1);
  CHECK(ex->slots[0].text == "fine");
  auto out = rewrite_response(*ex, {});
  REQUIRE_OK(out);
  CHECK(out->find("secret") == std::string::npos);
  auto clean = extract_response(dialect::openai, endpoint_kind::openai_chat,
                                R"({"choices":[{"index":0,"message":{"role":"assistant","content":"fine"}}]})");
  REQUIRE_OK(clean);
  CHECK_FALSE(clean->duplicate_keys);
}

TEST_CASE("duplicate keys in a stream event set duplicate_keys", "[dialect][content]") {
  auto codec = make_stream_codec(dialect::openai, endpoint_kind::openai_chat);
  auto ev = decode_ok(codec, "",
                      R"({"id":"x","choices":[{"index":0,"delta":{"content":"secret","content":"fine"},"finish_reason":null}]})");
  CHECK(ev.duplicate_keys);
  REQUIRE(ev.slots.size() == 1);
  CHECK(ev.slots[0].text == "fine");
  auto out = codec.encode(ev, {});
  REQUIRE_OK(out);
  CHECK(out->find("secret") == std::string::npos);
}

TEST_CASE("responses: tool names and provider errors are slots", "[dialect][content]") {
  auto chat = extract_response(dialect::openai, endpoint_kind::openai_chat,
                               R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[)"
                               R"({"id":"c","type":"function","function":{"name":"n13800138000","arguments":"{}"}}]}}]})");
  REQUIRE_OK(chat);
  CHECK(slot_at(chat->slots, "/choices/0/message/tool_calls/0/function/name").role == slot_role::tool_name);
  auto anth = extract_response(dialect::anthropic, endpoint_kind::anthropic_messages,
                               R"({"content":[{"type":"tool_use","id":"t","name":"tool_x","input":{}}]})");
  REQUIRE_OK(anth);
  CHECK(slot_at(anth->slots, "/content/0/name").text == "tool_x");
  auto gem = extract_response(dialect::gemini, endpoint_kind::gemini_generate,
                              R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"g_tool","args":{}}}]}}]})");
  REQUIRE_OK(gem);
  CHECK(slot_at(gem->slots, "/candidates/0/content/parts/0/functionCall/name").text == "g_tool");
  auto resp = extract_response(dialect::openai, endpoint_kind::openai_responses,
                               R"({"output":[{"type":"function_call","name":"r_tool","arguments":"{}","call_id":"c"}]})");
  REQUIRE_OK(resp);
  CHECK(slot_at(resp->slots, "/output/0/name").role == slot_role::tool_name);

  auto err = extract_response(dialect::openai, endpoint_kind::openai_chat,
                              R"({"error":{"message":"bad value 13800138000","type":"invalid_request_error"}})");
  REQUIRE_OK(err);
  CHECK(err->provider_error);
  CHECK(slot_at(err->slots, "/error/message").role == slot_role::error);
  auto any = extract_error_body(R"({"detail":{"msg":"quoted 13800138000"}})");
  REQUIRE_OK(any);
  CHECK(slot_at(any->slots, "/detail/msg").text == "quoted 13800138000");
  CHECK_FALSE(extract_error_body("<html>502</html>").has_value());
}

TEST_CASE("streams: tool names are whole texts and error events carry their strings", "[dialect][content]") {
  auto chat = make_stream_codec(dialect::openai, endpoint_kind::openai_chat);
  auto call = decode_ok(chat, "",
                        R"({"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function",)"
                        R"("function":{"name":"n13800138000","arguments":""}}]},"finish_reason":null}]})");
  const auto* name = role_slot(call.slots, slot_role::tool_name);
  REQUIRE(name != nullptr);
  CHECK(name->text == "n13800138000");
  CHECK(name->channel == "c0.t0.n");
  CHECK(std::find(call.closes.begin(), call.closes.end(), "c0.t0.n") != call.closes.end());
  auto err = decode_ok(chat, "", R"({"error":{"message":"oops 13800138000","type":"server_error"}})");
  CHECK(err.kind == event_kind::error);
  REQUIRE(err.slots.size() == 2);
  CHECK(err.slots[0].role == slot_role::error);

  auto anth = make_stream_codec(dialect::anthropic, endpoint_kind::anthropic_messages);
  auto aerr = decode_ok(anth, "error", R"({"type":"error","error":{"type":"overloaded_error","message":"busy 13800138000"}})");
  CHECK(aerr.kind == event_kind::error);
  CHECK(role_slot(aerr.slots, slot_role::error) != nullptr);

  auto resp = make_stream_codec(dialect::openai, endpoint_kind::openai_responses);
  auto added = decode_ok(resp, "response.output_item.added",
                         R"({"type":"response.output_item.added","sequence_number":1,"output_index":0,)"
                         R"("item":{"type":"function_call","id":"fc","call_id":"c","name":"r13800138000","arguments":""}})");
  const auto* rname = role_slot(added.slots, slot_role::tool_name);
  REQUIRE(rname != nullptr);
  CHECK(rname->aggregate);
  CHECK(rname->channel == "o0.n");

  auto gem = make_stream_codec(dialect::gemini, endpoint_kind::gemini_stream_generate);
  auto gcall = decode_ok(gem, "", R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"g13800138000","args":{}}}]},"index":0}]})");
  const auto* gname = role_slot(gcall.slots, slot_role::tool_name);
  REQUIRE(gname != nullptr);
  CHECK(gname->text == "g13800138000");
}

TEST_CASE("blob helpers: base64 both alphabets, data: URLs, text sniffing, UTF-8", "[dialect][content]") {
  CHECK(detail::decode_base64("aGk=") == std::optional<std::string>("hi"));
  CHECK(detail::decode_base64("aGk") == std::optional<std::string>("hi"));
  CHECK(detail::decode_base64("a G\nk=") == std::optional<std::string>("hi"));
  CHECK(detail::decode_base64("-_8=") == std::optional<std::string>("\xfb\xff"));
  CHECK_FALSE(detail::decode_base64("a").has_value());
  CHECK_FALSE(detail::decode_base64("aG=k").has_value());
  CHECK_FALSE(detail::decode_base64("a*").has_value());
  CHECK(detail::encode_base64("hi!") == "aGkh");
  CHECK(detail::encode_base64("h") == "aA==");
  auto u = detail::parse_data_url("data:Text/Plain;charset=utf-8;base64,aGk=");
  REQUIRE(u.has_value());
  CHECK(u->media_type == "Text/Plain");
  CHECK(u->params == ";charset=utf-8");
  CHECK(u->base64);
  CHECK(u->data == "aGk=");
  CHECK_FALSE(detail::parse_data_url("https://x/y").has_value());
  CHECK(detail::textual_media_type("application/vnd.api+json; charset=utf-8"));
  CHECK(detail::textual_media_type("TEXT/CSV"));
  CHECK_FALSE(detail::textual_media_type("image/svg"));
  CHECK(detail::looks_like_text("plain\ttext\n", false));
  CHECK_FALSE(detail::looks_like_text(std::string("a\0b", 3), false));
  CHECK_FALSE(detail::looks_like_text("\x89PNG", false));
  CHECK(detail::looks_like_text("caf\xc3", true));   // cut inside a character
  CHECK_FALSE(detail::looks_like_text("caf\xc3", false));
  CHECK(detail::valid_utf8("\xe4\xb8\xad"));
  CHECK_FALSE(detail::valid_utf8("\xed\xa0\x80"));  // a surrogate
  CHECK_FALSE(detail::valid_utf8("\xc0\xaf"));      // overlong
  CHECK(detail::percent_decode("a%20b+c%zz", true) == "a b c%zz");
}

TEST_CASE("inline files: a redaction in a binary file's base64 keeps how the body is read", "[dialect][content]") {
  // A binary image's base64 is scanned as a plain string (it does not decode to
  // text). Every redaction style writes characters that are not base64 ('[',
  // ':', '.', '*'), so the redacted string is still not a text file and the body
  // reads the same: same slots, same order. Only a replacement that is itself
  // base64 of text (no redaction writes one) turns it into a text file; the
  // rewrite fuzz target (fuzz_dialect_rewrite) therefore compares such a body by
  // its flags only.
  const std::string data = "iVBORw0KGgo5551234567AAAA";
  const std::string body = R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[)"
                           R"({"type":"image","source":{"type":"base64","media_type":"image/png","data":")" +
                           data + R"("}}]}]})";
  auto ex = extract_request(dialect::anthropic, "/v1/messages", body);
  REQUIRE_OK(ex);
  const std::string where = "/messages/0/content/0/source/data";
  std::size_t index = ex->slots.size();
  std::vector<std::string> before;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) {
    before.push_back(ex->slots[i].where);
    if (ex->slots[i].where == where) index = i;
  }
  REQUIRE(index < ex->slots.size());
  CHECK(ex->slots[index].role != slot_role::attachment);
  REQUIRE(ex->slots[index].writable());
  const auto reading = [&](const std::string& replacement) {
    auto copy = extract_request(dialect::anthropic, "/v1/messages", body);
    REQUIRE_OK(copy);
    auto out = rewrite_request(*copy, std::vector<text_replacement>{{index, replacement}});
    REQUIRE_OK(out);
    auto again = extract_request(dialect::anthropic, "/v1/messages", *out);
    REQUIRE_OK(again);
    std::vector<std::string> wheres;
    for (const auto& s : again->slots) wheres.push_back(s.where);
    return wheres;
  };
  CHECK(reading("iVBORw0KGgo[REDACTED:pi.phone]AAAA") == before);  // label
  CHECK(reading("iVBORw0KGgo**********AAAA") == before);           // mask
  CHECK(reading("iVBORw0KGgo******4567AAAA") == before);           // last4
  CHECK(reading("KG") != before);  // base64 of "(": not a redaction, read as a text file
}
