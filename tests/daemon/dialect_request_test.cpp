#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/dialect/request.hpp"
#include "tests/daemon/dialect_test_support.hpp"

namespace json = boost::json;
using namespace customs::daemon;
using customs::daemon::test::parse;

namespace {

// The texts the dialect reads as conversation (the other strings of the body,
// its keys, the target and the headers are slots too: see dialect_content_test).
bool conversation(slot_role r) {
  switch (r) {
    case slot_role::prose:
    case slot_role::tool_arguments:
    case slot_role::structured_leaf:
    case slot_role::tool_definition:
    case slot_role::reasoning:
    case slot_role::refusal:
      return true;
    default:
      return false;
  }
}

std::vector<std::string> texts(const request_extraction& ex) {
  std::vector<std::string> out;
  for (const auto& s : ex.slots) {
    if (conversation(s.role)) out.emplace_back(s.text);
  }
  return out;
}

bool has_slot(const request_extraction& ex, std::string_view where) {
  for (const auto& s : ex.slots) {
    if (s.where == where) return true;
  }
  return false;
}

// The slot at `where`; fails the test case when there is none.
const text_slot& slot_at(const request_extraction& ex, std::string_view where) {
  for (const auto& s : ex.slots) {
    if (s.where == where) return s;
  }
  FAIL("no slot at " << where);
  throw std::logic_error("unreachable");
}

// The index of the slot at `where`.
std::size_t index_at(const request_extraction& ex, std::string_view where) {
  for (std::size_t i = 0; i < ex.slots.size(); ++i) {
    if (ex.slots[i].where == where) return i;
  }
  FAIL("no slot at " << where);
  return 0;
}

// Rewrites `changes` and checks the output equals the original with exactly
// those strings replaced (compared after parsing).
void check_rewrite(std::string_view body, request_extraction& ex, const std::vector<text_replacement>& changes) {
  auto expected = parse(body);
  for (const auto& c : changes) expected.at_pointer(ex.slots.at(c.slot).where) = json::string(c.text);
  auto out = rewrite_request(ex, changes);
  REQUIRE_OK(out);
  auto got = parse(*out);  // throws (fails the test) if not valid JSON
  CHECK(got == expected);
  for (const auto& c : changes) CHECK(ex.slots[c.slot].text == c.text);
}

constexpr std::string_view chat_body = R"({
  "model": "gpt-4o",
  "stream": true,
  "stream_options": {"include_usage": true},
  "temperature": 0.7,
  "messages": [
    {"role": "system", "content": "You are helpful."},
    {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
    {"role": "user", "name": "zhang_san", "content": [
      {"type": "text", "text": "My ID is 11010519491231002X"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}},
      {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
      {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
    ]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\":\"11010519491231002X\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Found: Zhang San, phone 13800138000"},
    {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't share that."}]}
  ],
  "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up a resident by ID",
    "parameters": {"type": "object", "properties": {"id": {"type": "string", "description": "Resident ID number"}},
    "required": ["id"]}}}]
})";

}  // namespace

TEST_CASE("openai chat request: every message text, tool arguments and tool descriptions", "[dialect][request]") {
  auto ex = extract_request(dialect::openai, "/v1/chat/completions", chat_body);
  REQUIRE_OK(ex);
  CHECK(ex->endpoint == endpoint_kind::openai_chat);
  CHECK(ex->stream);
  CHECK(ex->framing == response_framing::sse);
  CHECK(ex->include_usage);
  CHECK_FALSE(ex->logprobs_requested);
  CHECK(ex->model == "gpt-4o");
  CHECK(texts(*ex) == std::vector<std::string>{
                          "You are helpful.", "Be brief.", "My ID is 11010519491231002X",
                          R"({"id":"11010519491231002X"})", "Found: Zhang San, phone 13800138000",
                          "I can't share that.", "Look up a resident by ID", "Resident ID number"});
  CHECK(slot_at(*ex, "/messages/3/tool_calls/0/function/arguments").role == slot_role::tool_arguments);
  CHECK(has_slot(*ex, "/messages/2/content/0/text"));
  CHECK(slot_at(*ex, "/messages/5/content/0/refusal").role == slot_role::refusal);
  CHECK(slot_at(*ex, "/tools/0/function/parameters/properties/id/description").role == slot_role::tool_definition);
  // name is an identifier: scanned, but nothing can be written into it
  CHECK(slot_at(*ex, "/messages/2/name").role == slot_role::identifier);
  CHECK_FALSE(slot_at(*ex, "/messages/2/name").writable());
  CHECK(ex->non_text[media_kind::image] == 1);
  CHECK(ex->non_text[media_kind::audio] == 1);
  CHECK(ex->non_text[media_kind::file] == 1);
  CHECK(ex->non_text.total() == 3);
}

TEST_CASE("openai chat request rewrite replaces the text and re-encodes tool arguments", "[dialect][request]") {
  auto ex = extract_request(dialect::openai, "/v1/chat/completions", chat_body);
  REQUIRE_OK(ex);
  const std::string new_args = R"({"id":"[REDACTED \"ID\"]"})";
  check_rewrite(chat_body, *ex,
                {{index_at(*ex, "/messages/2/content/0/text"), "My ID is [REDACTED]"},
                 {index_at(*ex, "/messages/3/tool_calls/0/function/arguments"), new_args}});
  // The arguments stay a JSON string holding a JSON document.
  auto v = parse(boost::json::serialize(ex->document));
  auto& a = v.at_pointer("/messages/3/tool_calls/0/function/arguments");
  REQUIRE(a.is_string());
  CHECK(parse(std::string_view(a.as_string())).at("id").as_string() == "[REDACTED \"ID\"]");
}

TEST_CASE("rewrite with no changes keeps the JSON and a bad slot index changes nothing", "[dialect][request]") {
  auto ex = extract_request(dialect::openai, "/v1/chat/completions", chat_body);
  REQUIRE_OK(ex);
  auto same = rewrite_request(*ex, {});
  REQUIRE_OK(same);
  CHECK(parse(*same) == parse(chat_body));
  std::vector<text_replacement> bad{{0, "x"}, {ex->slots.size(), "y"}};
  auto r = rewrite_request(*ex, bad);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == codec_errc::slot_out_of_range);
  CHECK(ex->slots[0].text == "You are helpful.");
}

TEST_CASE("an extraction assigned from another keeps slots into its own document", "[dialect][request]") {
  // Each document has its own storage: assignment must take the other's
  // document along (a json::value move-assigned into another storage is
  // copied, and the slots would point into the source, freed below).
  auto a = extract_request(dialect::openai, "/v1/chat/completions", R"({"model":"m","messages":[{"role":"user","content":"first"}]})");
  REQUIRE_OK(a);
  {
    auto b = extract_request(dialect::openai, "/v1/chat/completions", chat_body);
    REQUIRE_OK(b);
    *a = std::move(*b);
  }
  CHECK(a->slots[0].text == "You are helpful.");
  check_rewrite(chat_body, *a, {{0, "You are kind."}});
}

TEST_CASE("openai chat request: legacy function_call, prediction, custom tools, logprobs", "[dialect][request]") {
  constexpr std::string_view body = R"({"model":"gpt-4o","logprobs":true,"messages":[
    {"role":"assistant","content":"","function_call":{"name":"f","arguments":"{\"q\":\"x\"}"}},
    {"role":"assistant","tool_calls":[{"id":"c","type":"custom","custom":{"name":"sql","input":"SELECT 1"}}]},
    {"role":"function","name":"f","content":"result"}],
    "prediction":{"type":"content","content":"predicted text"}})";
  auto ex = extract_request(dialect::openai, "/v1/chat/completions", body);
  REQUIRE_OK(ex);
  CHECK(texts(*ex) == std::vector<std::string>{"", R"({"q":"x"})", "SELECT 1", "result", "predicted text"});
  CHECK(ex->logprobs_requested);
  CHECK_FALSE(ex->stream);
  CHECK(ex->framing == response_framing::json);
}

TEST_CASE("openai chat request: unknown content part type is an error with its location", "[dialect][request]") {
  auto ex = extract_request(dialect::openai, "/v1/chat/completions",
                            R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"video_url","video_url":"x"}]}]})");
  REQUIRE_FALSE(ex.has_value());
  CHECK(ex.error().code == codec_errc::unknown_part_type);
  CHECK(ex.error().where == "/messages/0/content/1/type");
}

TEST_CASE("malformed or unwalkable request bodies are errors", "[dialect][request]") {
  struct bad_case {
    std::string_view body;
    codec_errc code;
  };
  const bad_case cases[] = {
      {"", codec_errc::malformed_json},
      {R"({"model":"m","messages":[)", codec_errc::malformed_json},
      {R"({"model":"m","messages":[]} trailing)", codec_errc::malformed_json},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", codec_errc::malformed_json},
      // Numbers beyond the range of a double: no rewritten body could carry
      // them on (they would serialize as the non-JSON "Infinity").
      {R"({"model":"m","temperature":1e400,"messages":[]})", codec_errc::malformed_json},
      {R"({"model":"m","temperature":-31e4002,"messages":[]})", codec_errc::malformed_json},
      {R"([{"role":"user"}])", codec_errc::not_an_object},
      {R"({"model":"m"})", codec_errc::unexpected_shape},
      {R"({"model":"m","messages":{"role":"user"}})", codec_errc::unexpected_shape},
      {R"({"model":"m","messages":[{"role":"user","content":42}]})", codec_errc::unexpected_shape},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})", codec_errc::unexpected_shape},
      {R"({"model":"m","stream":"yes","messages":[]})", codec_errc::unexpected_shape},
      {R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"arguments":{"a":1}}}]}]})",
       codec_errc::unexpected_shape},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    auto ex = extract_request(dialect::openai, "/v1/chat/completions", c.body);
    REQUIRE_FALSE(ex.has_value());
    CHECK(ex.error().code == c.code);
  }
}

TEST_CASE("nesting beyond the depth limit is malformed, not a crash", "[dialect][request]") {
  std::string deep = R"({"model":"m","messages":[],"x":)";
  for (int i = 0; i < 200; ++i) deep += '[';
  for (int i = 0; i < 200; ++i) deep += ']';
  deep += '}';
  auto ex = extract_request(dialect::openai, "/v1/chat/completions", deep);
  REQUIRE_FALSE(ex.has_value());
  CHECK(ex.error().code == codec_errc::malformed_json);
}

TEST_CASE("duplicate keys: a request repeating a key is an error at the second occurrence", "[dialect][request]") {
  auto ex = extract_request(dialect::openai, "/v1/chat/completions",
                            R"({"model":"m","messages":[{"role":"user","content":"secret 13800138000","content":"harmless"}]})");
  REQUIRE_FALSE(ex.has_value());
  CHECK(ex.error().code == codec_errc::duplicate_key);
  CHECK(ex.error().where == "/messages/0/content");
}

TEST_CASE("unknown endpoints are errors and model listings carry no text", "[dialect][request]") {
  auto a = extract_request(dialect::openai, "/v1/audio/speech", R"({"input":"hi"})");
  REQUIRE_FALSE(a.has_value());
  CHECK(a.error().code == codec_errc::unknown_endpoint);
  auto b = extract_request(dialect::anthropic, "/v1/complete", R"({"prompt":"hi"})");
  REQUIRE_FALSE(b.has_value());
  CHECK(b.error().code == codec_errc::unknown_endpoint);
  auto c = extract_request(dialect::gemini, "/v1beta/models/gemini-2.0-flash:predict", R"({})");
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code == codec_errc::unknown_endpoint);
  auto m = extract_request(dialect::openai, "/v1/models", "");
  REQUIRE_OK(m);
  CHECK(m->endpoint == endpoint_kind::model_info);
  REQUIRE(m->slots.size() == 1);  // the target only
  CHECK(m->slots[0].role == slot_role::target);
  CHECK(m->slots[0].text == "/v1/models");
  CHECK(extract_request(dialect::gemini, "/v1beta/models/gemini-2.0-flash", "").has_value());
  CHECK(extract_request(dialect::anthropic, "/v1/models?limit=20", "").has_value());
  auto with_body = extract_request(dialect::openai, "/v1/models", R"({"x":"smuggled"})");
  REQUIRE_FALSE(with_body.has_value());
}

TEST_CASE("endpoint classification by dialect and path", "[dialect][request]") {
  CHECK(classify_endpoint(dialect::openai, "/openai/deployments/gpt4/chat/completions?api-version=2024-10-21")->kind ==
        endpoint_kind::openai_chat);
  CHECK(classify_endpoint(dialect::openai, "/v1/responses")->kind == endpoint_kind::openai_responses);
  CHECK(classify_endpoint(dialect::openai, "/v1/embeddings")->kind == endpoint_kind::openai_embeddings);
  CHECK(classify_endpoint(dialect::openai, "/v1/models/ft:gpt-4o:org:abc")->kind == endpoint_kind::model_info);
  CHECK_FALSE(classify_endpoint(dialect::openai, "/v1/responses/resp_1"));
  CHECK(classify_endpoint(dialect::anthropic, "/v1/messages?beta=true")->kind == endpoint_kind::anthropic_messages);
  CHECK(classify_endpoint(dialect::anthropic, "/v1/messages/count_tokens")->kind == endpoint_kind::anthropic_count_tokens);
  CHECK_FALSE(classify_endpoint(dialect::anthropic, "/v1/messages/batches"));
  auto g = classify_endpoint(dialect::gemini, "/v1beta/models/gemini-2.5-pro:streamGenerateContent?key=k&alt=sse");
  REQUIRE(g.has_value());
  CHECK(g->kind == endpoint_kind::gemini_stream_generate);
  CHECK(g->model == "gemini-2.5-pro");
  CHECK(g->alt_sse);
  CHECK(classify_endpoint(dialect::gemini, "/v1beta/tunedModels/my-model:generateContent")->kind ==
        endpoint_kind::gemini_generate);
  CHECK_FALSE(classify_endpoint(dialect::gemini, "/v1beta/files/abc:download"));
}

// --- Responses API ------------------------------------------------------------

TEST_CASE("openai responses request: instructions, input items, tool outputs, reasoning", "[dialect][request]") {
  constexpr std::string_view body = R"({"model":"gpt-4.1","instructions":"Answer in Chinese.","stream":true,
    "include":["message.output_text.logprobs"],
    "input":[
      {"role":"user","content":[{"type":"input_text","text":"Call 13800138000"},
                                {"type":"input_image","image_url":"https://example.com/a.png","detail":"auto"},
                                {"type":"input_file","file_id":"file-abc"}]},
      {"type":"function_call","call_id":"call_1","name":"dial","arguments":"{\"n\":\"13800138000\"}"},
      {"type":"function_call_output","call_id":"call_1","output":"dialled 13800138000"},
      {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Thinking about the call"}],"encrypted_content":"gAAAAB"},
      {"type":"item_reference","id":"msg_123"},
      {"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok","annotations":[]}]},
      {"role":"user","content":"plain string"}
    ],
    "tools":[{"type":"function","name":"dial","description":"Dial a number","parameters":{"type":"object","properties":{"n":{"type":"string"}}}},
             {"type":"web_search_preview"}]})";
  auto ex = extract_request(dialect::openai, "/v1/responses", body);
  REQUIRE_OK(ex);
  CHECK(ex->endpoint == endpoint_kind::openai_responses);
  CHECK(ex->stream);
  CHECK(ex->logprobs_requested);
  CHECK(texts(*ex) == std::vector<std::string>{"Answer in Chinese.", "Call 13800138000", R"({"n":"13800138000"})",
                                                "dialled 13800138000", "Thinking about the call", "ok",
                                                "plain string", "Dial a number"});
  CHECK(slot_at(*ex, "/input/1/arguments").role == slot_role::tool_arguments);
  CHECK(slot_at(*ex, "/input/3/summary/0/text").role == slot_role::reasoning);
  CHECK(ex->non_text[media_kind::image] == 1);
  CHECK(ex->non_text[media_kind::file] == 1);
  CHECK(ex->non_text[media_kind::opaque] == 1);
  check_rewrite(body, *ex, {{1, "Call [PHONE]"}, {3, "dialled [PHONE]"}});
}

TEST_CASE("openai responses request: include entries are options that no redaction rewrites", "[dialect][request]") {
  // A redaction written into include[] would forward a request asking for
  // other output (here: no log-probs) than the one inspected.
  constexpr std::string_view body =
      R"({"model":"gpt-4.1","stream":true,"include":["message.output_text.logprobs"],"input":"Hello"})";
  auto ex = extract_request(dialect::openai, "/v1/responses", body);
  REQUIRE_OK(ex);
  CHECK(ex->logprobs_requested);
  const auto& option = slot_at(*ex, "/include/0");
  CHECK(option.role == slot_role::identifier);
  CHECK_FALSE(option.writable());
  std::vector<text_replacement> change{{index_at(*ex, "/include/0"), "[REDACTED:pi.phone]"}};
  auto r = rewrite_request(*ex, change);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == codec_errc::slot_not_writable);
}

TEST_CASE("gemini request: generationConfig's string options are fixed, no redaction rewrites them", "[dialect][request]") {
  // responseMimeType, responseModalities and mediaResolution say what the
  // answer is; a replacement there would forward a request for another answer
  // than the one inspected. Stop sequences are the user's text: writable.
  constexpr std::string_view body = R"({"contents":[{"role":"user","parts":[{"text":"Hello"}]}],
    "generationConfig":{"responseMimeType":"application/json","responseModalities":["TEXT","IMAGE"],
    "mediaResolution":"MEDIA_RESOLUTION_LOW","stopSequences":["call 138 1234 5678"]}})";
  auto ex = extract_request(dialect::gemini, "/v1beta/models/gemini-2.0-flash:generateContent", body);
  REQUIRE_OK(ex);
  for (const char* where : {"/generationConfig/responseMimeType", "/generationConfig/responseModalities/0",
                            "/generationConfig/responseModalities/1", "/generationConfig/mediaResolution"}) {
    INFO(where);
    CHECK_FALSE(slot_at(*ex, where).writable());
    std::vector<text_replacement> change{{index_at(*ex, where), "[REDACTED:pi.phone]"}};
    auto r = rewrite_request(*ex, change);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == codec_errc::slot_not_writable);
  }
  CHECK(slot_at(*ex, "/generationConfig/stopSequences/0").writable());
  // The snake_case spellings the API also accepts.
  auto snake = extract_request(dialect::gemini, "/v1beta/models/m:generateContent",
                               R"({"contents":[{"parts":[{"text":"Hi"}]}],"generation_config":{"response_modalities":["TEXT"],"media_resolution":"MEDIA_RESOLUTION_LOW"}})");
  REQUIRE_OK(snake);
  CHECK_FALSE(slot_at(*snake, "/generation_config/response_modalities/0").writable());
  CHECK_FALSE(slot_at(*snake, "/generation_config/media_resolution").writable());
}

TEST_CASE("openai responses request: string input and unknown item types", "[dialect][request]") {
  auto ex = extract_request(dialect::openai, "/v1/responses", R"({"model":"gpt-4.1","input":"Hello there"})");
  REQUIRE_OK(ex);
  CHECK(texts(*ex) == std::vector<std::string>{"Hello there"});
  CHECK_FALSE(ex->stream);
  auto bad = extract_request(dialect::openai, "/v1/responses",
                             R"({"model":"gpt-4.1","input":[{"type":"computer_call_output","call_id":"c","output":{}}]})");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == codec_errc::unknown_part_type);
  CHECK(bad.error().where == "/input/0/type");
  auto bad_part = extract_request(dialect::openai, "/v1/responses",
                                  R"({"input":[{"role":"user","content":[{"type":"input_video","url":"x"}]}]})");
  REQUIRE_FALSE(bad_part.has_value());
  CHECK(bad_part.error().where == "/input/0/content/0/type");
}

TEST_CASE("openai embeddings request: strings are text, token arrays are counted", "[dialect][request]") {
  auto a = extract_request(dialect::openai, "/v1/embeddings",
                           R"({"model":"text-embedding-3-small","input":["first 13800138000","second"]})");
  REQUIRE_OK(a);
  CHECK(texts(*a) == std::vector<std::string>{"first 13800138000", "second"});
  CHECK(a->non_text.total() == 0);
  auto b = extract_request(dialect::openai, "/v1/embeddings", R"({"model":"m","input":[[1,2,3],[4,5]]})");
  REQUIRE_OK(b);
  CHECK(texts(*b).empty());
  CHECK(b->non_text[media_kind::tokens] == 2);
  auto c = extract_request(dialect::openai, "/v1/embeddings", R"({"model":"m","input":[1,2,3]})");
  REQUIRE_OK(c);
  CHECK(c->non_text[media_kind::tokens] == 1);
  auto d = extract_request(dialect::openai, "/v1/embeddings", R"({"model":"m","input":"one string"})");
  REQUIRE_OK(d);
  CHECK(texts(*d) == std::vector<std::string>{"one string"});
  CHECK_FALSE(extract_request(dialect::openai, "/v1/embeddings", R"({"model":"m","input":5})").has_value());
  CHECK_FALSE(extract_request(dialect::openai, "/v1/embeddings", R"({"model":"m","input":["a",{"b":1}]})").has_value());
  CHECK_FALSE(extract_request(dialect::openai, "/v1/embeddings", R"({"model":"m"})").has_value());
}

// --- Anthropic -----------------------------------------------------------------

namespace {
constexpr std::string_view anthropic_body = R"({"model":"claude-sonnet-4-20250514","max_tokens":1024,"stream":true,
  "system":[{"type":"text","text":"You are a bank assistant.","cache_control":{"type":"ephemeral"}}],
  "messages":[
    {"role":"user","content":[
      {"type":"text","text":"Transfer to DE89370400440532013000"},
      {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
      {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}},
      {"type":"document","source":{"type":"text","media_type":"text/plain","data":"Account holder: Max Mustermann"},"title":"Statement"}]},
    {"role":"assistant","content":[
      {"type":"thinking","thinking":"User wants a transfer.","signature":"EqQBCgIYAhIM"},
      {"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"},
      {"type":"text","text":"Let me do that."},
      {"type":"tool_use","id":"toolu_1","name":"transfer","input":{"iban":"DE89370400440532013000","amount":100,"memo":{"note":"rent","tags":["home"]}}}]},
    {"role":"user","content":[
      {"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"Transferred to Max"}]},
      {"type":"tool_result","tool_use_id":"toolu_2","content":"plain result","is_error":false}]},
    {"role":"assistant","content":"Done."}],
  "tools":[{"name":"transfer","description":"Send money","input_schema":{"type":"object","properties":{"iban":{"type":"string","description":"Target IBAN"}}}}]})";
}

TEST_CASE("anthropic request: system, text, documents, thinking, tool_use leaves, tool_result", "[dialect][request]") {
  auto ex = extract_request(dialect::anthropic, "/v1/messages", anthropic_body);
  REQUIRE_OK(ex);
  CHECK(ex->endpoint == endpoint_kind::anthropic_messages);
  CHECK(ex->stream);
  CHECK(ex->model == "claude-sonnet-4-20250514");
  CHECK(texts(*ex) == std::vector<std::string>{
                          "You are a bank assistant.", "Transfer to DE89370400440532013000", "Statement",
                          "Account holder: Max Mustermann", "User wants a transfer.", "Let me do that.",
                          "DE89370400440532013000", "rent", "home", "Transferred to Max", "plain result", "Done.",
                          "Send money", "Target IBAN"});
  CHECK(slot_at(*ex, "/messages/1/content/3/input/iban").role == slot_role::structured_leaf);
  CHECK(has_slot(*ex, "/messages/1/content/3/input/memo/tags/0"));
  CHECK(slot_at(*ex, "/messages/1/content/0/thinking").role == slot_role::reasoning);
  CHECK(ex->non_text[media_kind::image] == 1);
  CHECK(ex->non_text[media_kind::document] == 1);
  CHECK(ex->non_text[media_kind::opaque] == 1);
  // A tool_use leaf is replaced where it is; the input stays an object.
  check_rewrite(anthropic_body, *ex, {{1, "Transfer to [IBAN]"}, {6, "[IBAN]"}});
  auto v = parse(boost::json::serialize(ex->document));
  CHECK(v.at_pointer("/messages/1/content/3/input/amount").as_int64() == 100);
}

TEST_CASE("anthropic request: string system, count_tokens, unknown block type", "[dialect][request]") {
  auto ex = extract_request(dialect::anthropic, "/v1/messages/count_tokens",
                            R"({"model":"claude-3-5-haiku-latest","system":"Be nice.","messages":[{"role":"user","content":"Hi"}]})");
  REQUIRE_OK(ex);
  CHECK(ex->endpoint == endpoint_kind::anthropic_count_tokens);
  CHECK_FALSE(ex->stream);
  CHECK(texts(*ex) == std::vector<std::string>{"Be nice.", "Hi"});
  auto bad = extract_request(dialect::anthropic, "/v1/messages",
                             R"({"model":"m","messages":[{"role":"user","content":[{"type":"video","source":{}}]}]})");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == codec_errc::unknown_part_type);
  CHECK(bad.error().where == "/messages/0/content/0/type");
  auto no_content = extract_request(dialect::anthropic, "/v1/messages", R"({"model":"m","messages":[{"role":"user"}]})");
  REQUIRE_FALSE(no_content.has_value());
  CHECK(no_content.error().where == "/messages/0/content");
}

// --- Gemini ------------------------------------------------------------------------

namespace {
constexpr std::string_view gemini_body = R"json({
  "systemInstruction": {"parts": [{"text": "Be concise."}]},
  "contents": [
    {"role": "user", "parts": [{"text": "My SSN is 078-05-1120"},
                               {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                               {"file_data": {"mime_type": "application/pdf", "file_uri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}]},
    {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"ssn": "078-05-1120", "deep": {"k": ["x"]}}}}]},
    {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"result": "John Doe"}}}]},
    {"role": "model", "parts": [{"text": "thinking...", "thought": true}, {"executableCode": {"language": "PYTHON", "code": "print(1)"}}]}
  ],
  "tools": [{"functionDeclarations": [{"name": "lookup", "description": "Find a person",
             "parameters": {"type": "OBJECT", "properties": {"ssn": {"type": "STRING", "description": "Social security number"}}}}]}],
  "generationConfig": {"temperature": 0.2, "responseLogprobs": true}
})json";
}

TEST_CASE("gemini request: parts text, function call and response leaves, media by MIME type", "[dialect][request]") {
  auto ex = extract_request(dialect::gemini, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", gemini_body);
  REQUIRE_OK(ex);
  CHECK(ex->endpoint == endpoint_kind::gemini_stream_generate);
  CHECK(ex->stream);
  CHECK(ex->framing == response_framing::sse);
  CHECK(ex->model == "gemini-2.0-flash");
  CHECK(ex->logprobs_requested);
  CHECK(texts(*ex) == std::vector<std::string>{"My SSN is 078-05-1120", "078-05-1120", "x", "John Doe", "thinking...",
                                                "print(1)", "Be concise.", "Find a person", "Social security number"});
  CHECK(slot_at(*ex, "/contents/1/parts/0/functionCall/args/ssn").role == slot_role::structured_leaf);
  CHECK(slot_at(*ex, "/contents/3/parts/0/text").role == slot_role::reasoning);
  CHECK(has_slot(*ex, "/systemInstruction/parts/0/text"));
  CHECK(ex->non_text[media_kind::image] == 1);
  CHECK(ex->non_text[media_kind::document] == 1);
  check_rewrite(gemini_body, *ex, {{0, "My SSN is [SSN]"}, {1, "[SSN]"}});
}

TEST_CASE("gemini request: framing from the path, snake_case fields, other methods", "[dialect][request]") {
  constexpr std::string_view body =
      R"({"system_instruction":{"parts":[{"text":"sys"}]},"contents":[{"role":"user","parts":[{"text":"hi"}]}]})";
  auto array = extract_request(dialect::gemini, "/v1beta/models/gemini-2.0-flash:streamGenerateContent", body);
  REQUIRE_OK(array);
  CHECK(array->framing == response_framing::json_array);
  CHECK(texts(*array) == std::vector<std::string>{"hi", "sys"});
  auto plain = extract_request(dialect::gemini, "/v1/models/gemini-1.5-pro:generateContent", body);
  REQUIRE_OK(plain);
  CHECK_FALSE(plain->stream);
  CHECK(plain->framing == response_framing::json);

  auto count = extract_request(dialect::gemini, "/v1beta/models/gemini-2.0-flash:countTokens",
                               R"({"generateContentRequest":{"model":"models/gemini-2.0-flash","contents":[{"parts":[{"text":"count me"}]}]}})");
  REQUIRE_OK(count);
  CHECK(texts(*count) == std::vector<std::string>{"count me"});
  auto embed = extract_request(dialect::gemini, "/v1beta/models/text-embedding-004:embedContent",
                               R"({"model":"models/text-embedding-004","content":{"parts":[{"text":"embed me"}]},"title":"Doc title"})");
  REQUIRE_OK(embed);
  CHECK(texts(*embed) == std::vector<std::string>{"embed me", "Doc title"});
  auto batch = extract_request(dialect::gemini, "/v1beta/models/text-embedding-004:batchEmbedContents",
                               R"({"requests":[{"content":{"parts":[{"text":"one"}]}},{"content":{"parts":[{"text":"two"}]}}]})");
  REQUIRE_OK(batch);
  CHECK(texts(*batch) == std::vector<std::string>{"one", "two"});
}

TEST_CASE("gemini request: a part with no known data field is an error", "[dialect][request]") {
  auto ex = extract_request(dialect::gemini, "/v1beta/models/gemini-2.0-flash:generateContent",
                            R"({"contents":[{"role":"user","parts":[{"text":"a"},{"videoMetadata":{"fps":1}}]}]})");
  REQUIRE_FALSE(ex.has_value());
  CHECK(ex.error().code == codec_errc::unknown_part_type);
  CHECK(ex.error().where == "/contents/0/parts/1");
  auto no_parts = extract_request(dialect::gemini, "/v1beta/models/gemini-2.0-flash:generateContent",
                                  R"({"contents":[{"role":"user"}]})");
  REQUIRE_FALSE(no_parts.has_value());
  CHECK(no_parts.error().where == "/contents/0/parts");
}
