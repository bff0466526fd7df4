// Wire formats of the fake provider, per API. Field names, event names and
// framing follow what the providers send and what their official SDKs parse
// (openai-node's Stream: `data:` JSON until `data: [DONE]`, event names starting
// with "response." for the Responses API; anthropic-sdk-typescript's Stream:
// `event:` names message_start ... message_stop, `ping` skipped; Gemini
// `alt=sse`: `data:` lines with CRLF framing, one GenerateContentResponse each).

#include "tests/support/provider_wire.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>

namespace customs::testing {

std::vector<std::string> cut_utf8(const std::string& text, std::size_t max_bytes) {
  const std::size_t max = std::max<std::size_t>(max_bytes, 1);
  const auto continuation = [&](std::size_t i) {
    return (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80;
  };
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = std::min(i + max, text.size());
    if (end < text.size()) {
      std::size_t e = end;
      while (e > i && continuation(e)) --e;
      if (e == i) {  // one character longer than max: it goes whole
        e = i + 1;
        while (e < text.size() && continuation(e)) ++e;
      }
      end = e;
    }
    out.push_back(text.substr(i, end - i));
    i = end;
  }
  return out;
}

namespace detail {
namespace {

namespace json = boost::json;

constexpr std::string_view openai_sse_type = "text/event-stream; charset=utf-8";
constexpr std::string_view gemini_sse_type = "text/event-stream";
constexpr std::string_view json_type = "application/json";

std::string_view openai_error_type(unsigned status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "invalid_request_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string_view anthropic_error_type(unsigned status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

std::string_view gemini_error_status(unsigned status) {
  switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 429: return "RESOURCE_EXHAUSTED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
}

planned_reply error_reply(error_shape shape, unsigned status, std::string_view message) {
  planned_reply r;
  r.status = status;
  r.content_type = json_type;
  r.body = error_body(shape, status, message);
  return r;
}

// What every API builder needs from the request and the script.
struct answer {
  const json::object& request;
  const script& s;
  std::uint64_t serial;
  std::vector<std::string> deltas;
  std::string text;  // the deltas concatenated
  std::uint64_t prompt_tokens;
  std::uint64_t completion_tokens;
  std::int64_t created;  // Unix seconds

  std::string id(std::string_view prefix) const { return std::string(prefix) + "fake" + std::to_string(serial); }
};

std::string string_member(const json::object& o, std::string_view key, std::string_view fallback) {
  if (const auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->get_string());
  return std::string(fallback);
}

bool true_member(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_bool() && v->get_bool();
}

// The first tool's name when the request offers tools; empty otherwise. OpenAI
// chat nests it in "function", Anthropic has it at the top of the tool.
std::string offered_tool(const json::object& request) {
  const auto* tools = request.if_contains("tools");
  if (!tools || !tools->is_array() || tools->get_array().empty()) return {};
  const auto* first = tools->get_array()[0].if_object();
  if (!first) return "fake_tool";
  if (const auto* fn = first->if_contains("function"); fn && fn->is_object())
    return string_member(fn->get_object(), "name", "fake_tool");
  return string_member(*first, "name", "fake_tool");
}

wire_event sse(const json::value& data, std::string_view event_name, bool stampable,
               std::string_view eol = "\n") {
  wire_event e;
  if (!event_name.empty()) {
    e.bytes += "event: ";
    e.bytes += event_name;
    e.bytes += eol;
  }
  e.bytes += "data: ";
  if (stampable) e.stamp_at = e.bytes.size();
  e.bytes += json::serialize(data);
  e.bytes += eol;
  e.bytes += eol;
  return e;
}

// Named events whose name is the data's "type", as the Responses API and
// Anthropic send them.
wire_event typed_sse(const json::object& data, bool stampable = false) {
  return sse(data, data.at("type").get_string(), stampable);
}

planned_reply json_reply(const json::value& v) {
  planned_reply r;
  r.content_type = json_type;
  r.body = json::serialize(v);
  return r;
}

// --- OpenAI chat completions -------------------------------------------------

json::object chat_usage(const answer& a) {
  return {{"prompt_tokens", a.prompt_tokens},
          {"completion_tokens", a.completion_tokens},
          {"total_tokens", a.prompt_tokens + a.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", 0}}},
          {"completion_tokens_details", {{"reasoning_tokens", 0}}}};
}

planned_reply openai_chat(const answer& a) {
  const std::string model = string_member(a.request, "model", "gpt-4o-mini");
  const std::string tool = offered_tool(a.request);
  const std::string call_id = a.id("call_");
  const bool tools = !tool.empty();
  const std::string finish = tools ? "tool_calls" : "stop";

  if (!true_member(a.request, "stream")) {
    json::object message{{"role", "assistant"}};
    if (tools) {
      message["content"] = nullptr;
      message["tool_calls"] = json::array{json::object{
          {"id", call_id},
          {"type", "function"},
          {"function", {{"name", tool}, {"arguments", a.text}}}}};
    } else {
      message["content"] = a.text;
    }
    message["refusal"] = nullptr;
    message["annotations"] = json::array{};
    return json_reply(json::object{
        {"id", a.id("chatcmpl-")},
        {"object", "chat.completion"},
        {"created", a.created},
        {"model", model},
        {"choices", json::array{json::object{{"index", 0},
                                             {"message", std::move(message)},
                                             {"logprobs", nullptr},
                                             {"finish_reason", finish}}}},
        {"usage", chat_usage(a)},
        {"system_fingerprint", "fp_fake"}});
  }

  bool include_usage = false;
  if (const auto* so = a.request.if_contains("stream_options"); so && so->is_object())
    include_usage = true_member(so->get_object(), "include_usage");

  planned_reply r;
  r.streamed = true;
  r.content_type = openai_sse_type;
  r.malformed_event = "data: {\"choices\": [\n\n";
  const auto chunk = [&](json::value choices) {
    json::object c{{"id", a.id("chatcmpl-")},
                   {"object", "chat.completion.chunk"},
                   {"created", a.created},
                   {"model", model},
                   {"system_fingerprint", "fp_fake"},
                   {"choices", std::move(choices)}};
    // With include_usage every chunk carries "usage": null but the last.
    if (include_usage) c["usage"] = nullptr;
    return c;
  };
  const auto choice = [](json::object delta, json::value finish_reason) {
    return json::array{json::object{{"index", 0},
                                    {"delta", std::move(delta)},
                                    {"logprobs", nullptr},
                                    {"finish_reason", std::move(finish_reason)}}};
  };

  json::object first{{"role", "assistant"}};
  if (tools) {
    first["content"] = nullptr;
    first["tool_calls"] = json::array{json::object{
        {"index", 0},
        {"id", call_id},
        {"type", "function"},
        {"function", {{"name", tool}, {"arguments", ""}}}}};
  } else {
    first["content"] = "";
  }
  first["refusal"] = nullptr;
  r.events.push_back(sse(chunk(choice(std::move(first), nullptr)), {}, true));

  for (const auto& d : a.deltas) {
    json::object delta;
    if (tools)
      delta["tool_calls"] = json::array{json::object{{"index", 0}, {"function", {{"arguments", d}}}}};
    else
      delta["content"] = d;
    r.events.push_back(sse(chunk(choice(std::move(delta), nullptr)), {}, true));
  }
  r.events.push_back(sse(chunk(choice({}, json::string(finish))), {}, true));
  if (include_usage) {
    json::object last = chunk(json::array{});
    last["usage"] = chat_usage(a);
    r.events.push_back(sse(last, {}, true));
  }
  r.events.push_back({"data: [DONE]\n\n", std::string::npos});
  return r;
}

// --- OpenAI Responses API ----------------------------------------------------

planned_reply openai_responses(const answer& a) {
  const std::string model = string_member(a.request, "model", "gpt-4o-mini");
  const std::string resp_id = a.id("resp_");
  const std::string item_id = a.id("msg_");

  const auto part = [](const std::string& text) {
    return json::object{{"type", "output_text"}, {"annotations", json::array{}},
                        {"logprobs", json::array{}}, {"text", text}};
  };
  const auto item = [&](std::string_view status, json::array content) {
    return json::object{{"id", item_id}, {"type", "message"}, {"status", status},
                        {"content", std::move(content)}, {"role", "assistant"}};
  };
  const auto response = [&](std::string_view status, json::array output, json::value usage) {
    return json::object{{"id", resp_id},
                        {"object", "response"},
                        {"created_at", a.created},
                        {"status", status},
                        {"error", nullptr},
                        {"incomplete_details", nullptr},
                        {"instructions", nullptr},
                        {"max_output_tokens", nullptr},
                        {"model", model},
                        {"output", std::move(output)},
                        {"parallel_tool_calls", true},
                        {"previous_response_id", nullptr},
                        {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
                        {"store", true},
                        {"temperature", 1},
                        {"text", {{"format", {{"type", "text"}}}}},
                        {"tool_choice", "auto"},
                        {"tools", json::array{}},
                        {"top_p", 1},
                        {"truncation", "disabled"},
                        {"usage", std::move(usage)},
                        {"user", nullptr},
                        {"metadata", json::object{}}};
  };
  const json::object usage{{"input_tokens", a.prompt_tokens},
                           {"input_tokens_details", {{"cached_tokens", 0}}},
                           {"output_tokens", a.completion_tokens},
                           {"output_tokens_details", {{"reasoning_tokens", 0}}},
                           {"total_tokens", a.prompt_tokens + a.completion_tokens}};
  const json::object done_item = item("completed", json::array{part(a.text)});

  if (!true_member(a.request, "stream"))
    return json_reply(response("completed", json::array{done_item}, usage));

  planned_reply r;
  r.streamed = true;
  r.content_type = openai_sse_type;
  r.malformed_event =
      "event: response.output_text.delta\n"
      "data: {\"type\": \"response.output_text.delta\", \"delta\": \n\n";
  std::uint64_t seq = 0;
  const auto event = [&](std::string_view type, json::object fields, bool stampable = false) {
    json::object o{{"type", type}, {"sequence_number", seq++}};
    for (auto& f : fields) o[f.key()] = std::move(f.value());
    r.events.push_back(typed_sse(o, stampable));
  };
  const auto in_item = [&](json::object more) {
    json::object o{{"item_id", item_id}, {"output_index", 0}, {"content_index", 0}};
    for (auto& f : more) o[f.key()] = std::move(f.value());
    return o;
  };

  event("response.created", {{"response", response("in_progress", {}, nullptr)}});
  event("response.in_progress", {{"response", response("in_progress", {}, nullptr)}});
  event("response.output_item.added",
        {{"output_index", 0}, {"item", item("in_progress", json::array{})}});
  event("response.content_part.added", in_item({{"part", part("")}}));
  for (const auto& d : a.deltas)
    event("response.output_text.delta", in_item({{"delta", d}, {"logprobs", json::array{}}}), true);
  event("response.output_text.done", in_item({{"text", a.text}, {"logprobs", json::array{}}}));
  event("response.content_part.done", in_item({{"part", part(a.text)}}));
  event("response.output_item.done", {{"output_index", 0}, {"item", done_item}});
  event("response.completed", {{"response", response("completed", json::array{done_item}, usage)}});
  return r;
}

// --- OpenAI embeddings -------------------------------------------------------

std::string base64(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                            (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) |
                            std::uint32_t(std::uint8_t(bytes[i + 2]));
    for (int k = 3; k >= 0; --k) out += alphabet[(n >> (6 * k)) & 63];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
    if (rest == 2) n |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += rest == 2 ? alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// A deterministic vector per input: FNV-1a of the input's JSON, stepped by an
// LCG, mapped into [-1, 1).
std::vector<float> fake_embedding(const json::value& input, std::size_t dims) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : json::serialize(input)) h = (h ^ c) * 1099511628211ull;
  std::vector<float> v(dims);
  for (auto& x : v) {
    h = h * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(h >> 40) / double(1ull << 23) - 1.0);
  }
  return v;
}

planned_reply openai_embeddings(const answer& a) {
  const auto* input = a.request.if_contains("input");
  if (!input || !(input->is_string() || input->is_array()))
    return error_reply(error_shape::openai, 400, "'input' is a required property");
  std::vector<json::value> inputs;
  if (input->is_string()) {
    inputs.push_back(*input);
  } else {
    // An array of strings is many inputs; an array of token ids is one.
    const auto& arr = input->get_array();
    if (!arr.empty() && arr[0].is_number()) inputs.push_back(*input);
    else inputs.assign(arr.begin(), arr.end());
  }
  std::size_t dims = 8;
  if (const auto* d = a.request.if_contains("dimensions"); d && d->is_int64())
    dims = static_cast<std::size_t>(std::clamp<std::int64_t>(d->get_int64(), 1, 64));
  const bool as_base64 = string_member(a.request, "encoding_format", "float") == "base64";

  json::array data;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto v = fake_embedding(inputs[i], dims);
    json::value embedding;
    if (as_base64) {
      // The float32 values, little-endian, as openai-node decodes them.
      std::string raw;
      for (float f : v) {
        std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
        for (int k = 0; k < 4; ++k) raw += static_cast<char>((bits >> (8 * k)) & 0xFF);
      }
      embedding = json::string(base64(raw));
    } else {
      json::array arr;
      for (float f : v) arr.emplace_back(static_cast<double>(f));
      embedding = std::move(arr);
    }
    data.push_back(json::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
  }
  return json_reply(json::object{
      {"object", "list"},
      {"data", std::move(data)},
      {"model", string_member(a.request, "model", "text-embedding-3-small")},
      {"usage", {{"prompt_tokens", a.prompt_tokens}, {"total_tokens", a.prompt_tokens}}}});
}

// --- Anthropic messages ------------------------------------------------------

planned_reply anthropic_messages(const answer& a) {
  const std::string model = string_member(a.request, "model", "claude-sonnet-4-5");
  const std::string tool = offered_tool(a.request);
  const bool tools = !tool.empty();
  const std::string stop_reason = tools ? "tool_use" : "end_turn";
  const auto usage = [&](std::uint64_t output_tokens) {
    return json::object{{"input_tokens", a.prompt_tokens},
                        {"cache_creation_input_tokens", 0},
                        {"cache_read_input_tokens", 0},
                        {"output_tokens", output_tokens}};
  };
  const auto message = [&](json::array content, json::value stop, std::uint64_t output_tokens) {
    return json::object{{"id", a.id("msg_")},
                        {"type", "message"},
                        {"role", "assistant"},
                        {"model", model},
                        {"content", std::move(content)},
                        {"stop_reason", std::move(stop)},
                        {"stop_sequence", nullptr},
                        {"usage", usage(output_tokens)}};
  };
  const auto tool_block = [&](json::value input) {
    return json::object{{"type", "tool_use"}, {"id", a.id("toolu_")}, {"name", tool},
                        {"input", std::move(input)}};
  };

  if (!true_member(a.request, "stream")) {
    json::array content;
    if (tools) {
      json::error_code ec;
      json::value input = json::parse(a.text, ec);
      if (ec || !input.is_object()) input = json::object{{"arguments", a.text}};
      content.push_back(tool_block(std::move(input)));
    } else {
      content.push_back(json::object{{"type", "text"}, {"text", a.text}});
    }
    return json_reply(message(std::move(content), json::string(stop_reason), a.completion_tokens));
  }

  planned_reply r;
  r.streamed = true;
  r.content_type = openai_sse_type;
  r.malformed_event =
      "event: content_block_delta\n"
      "data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\n\n";
  r.events.push_back(typed_sse({{"type", "message_start"}, {"message", message({}, nullptr, 1)}}));
  r.events.push_back(typed_sse(
      {{"type", "content_block_start"},
       {"index", 0},
       {"content_block",
        tools ? tool_block(json::object{}) : json::object{{"type", "text"}, {"text", ""}}}}));
  r.events.push_back(typed_sse({{"type", "ping"}}));
  for (const auto& d : a.deltas) {
    json::object delta = tools ? json::object{{"type", "input_json_delta"}, {"partial_json", d}}
                               : json::object{{"type", "text_delta"}, {"text", d}};
    r.events.push_back(
        typed_sse({{"type", "content_block_delta"}, {"index", 0}, {"delta", std::move(delta)}}, true));
  }
  r.events.push_back(typed_sse({{"type", "content_block_stop"}, {"index", 0}}));
  r.events.push_back(typed_sse({{"type", "message_delta"},
                                {"delta", {{"stop_reason", stop_reason}, {"stop_sequence", nullptr}}},
                                {"usage", {{"output_tokens", a.completion_tokens}}}}));
  r.events.push_back(typed_sse({{"type", "message_stop"}}));
  return r;
}

// --- Gemini ------------------------------------------------------------------

planned_reply gemini(const answer& a, std::string_view model, bool streamed, bool sse_framing) {
  // One GenerateContentResponse; `last` carries finishReason and the full
  // usageMetadata, earlier ones the prompt count only (as Gemini streams them).
  const auto response = [&](const std::string& text, bool last) {
    json::object candidate{{"content", {{"parts", json::array{json::object{{"text", text}}}},
                                        {"role", "model"}}}};
    if (last) candidate["finishReason"] = "STOP";
    candidate["index"] = 0;
    json::object usage{{"promptTokenCount", a.prompt_tokens}};
    if (last) {
      usage["candidatesTokenCount"] = a.completion_tokens;
      usage["totalTokenCount"] = a.prompt_tokens + a.completion_tokens;
    } else {
      usage["totalTokenCount"] = a.prompt_tokens;
    }
    return json::object{{"candidates", json::array{std::move(candidate)}},
                        {"usageMetadata", std::move(usage)},
                        {"modelVersion", model},
                        {"responseId", a.id("resp-")}};
  };

  if (!streamed) return json_reply(response(a.text, true));

  std::vector<json::object> pieces;
  if (a.deltas.empty()) pieces.push_back(response("", true));
  for (std::size_t i = 0; i < a.deltas.size(); ++i)
    pieces.push_back(response(a.deltas[i], i + 1 == a.deltas.size()));

  if (!sse_framing) {
    // Without alt=sse Gemini streams one JSON array; it is sent whole here.
    json::array arr(pieces.begin(), pieces.end());
    return json_reply(arr);
  }
  planned_reply r;
  r.streamed = true;
  r.content_type = gemini_sse_type;
  r.malformed_event = "data: {\"candidates\": [\r\n\r\n";
  for (const auto& p : pieces) r.events.push_back(sse(p, {}, true, "\r\n"));
  return r;
}

enum class api { openai_chat, openai_responses, openai_embeddings, anthropic, gemini };

error_shape shape_of(api k) {
  switch (k) {
    case api::anthropic: return error_shape::anthropic;
    case api::gemini: return error_shape::gemini;
    default: return error_shape::openai;
  }
}

}  // namespace

std::string error_body(error_shape shape, unsigned status, std::string_view message) {
  json::object top;
  switch (shape) {
    case error_shape::openai:
      top["error"] = {{"message", message}, {"type", openai_error_type(status)},
                      {"param", nullptr}, {"code", nullptr}};
      break;
    case error_shape::anthropic:
      top["type"] = "error";
      top["error"] = {{"type", anthropic_error_type(status)}, {"message", message}};
      break;
    case error_shape::gemini:
      top["error"] = {{"code", status}, {"message", message}, {"status", gemini_error_status(status)}};
      break;
  }
  return json::serialize(top);
}

planned_reply plan_reply(const request_view& request, const script& s, std::uint64_t serial) {
  const auto q = request.target.find('?');
  const std::string_view path = request.target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : request.target.substr(q + 1);

  api kind;
  std::string_view gemini_model, gemini_action;
  if (path == "/v1/chat/completions") {
    kind = api::openai_chat;
  } else if (path == "/v1/responses") {
    kind = api::openai_responses;
  } else if (path == "/v1/embeddings") {
    kind = api::openai_embeddings;
  } else if (path == "/v1/messages") {
    kind = api::anthropic;
  } else if (path.starts_with("/v1beta/models/") || path.starts_with("/v1/models/")) {
    const std::string_view rest = path.substr(path.find("/models/") + 8);
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
      return error_reply(error_shape::gemini, 404, "Method not found.");
    gemini_model = rest.substr(0, colon);
    gemini_action = rest.substr(colon + 1);
    if (gemini_action != "generateContent" && gemini_action != "streamGenerateContent")
      return error_reply(error_shape::gemini, 404, "Method not found.");
    kind = api::gemini;
  } else {
    return error_reply(error_shape::openai, 404,
                       "Invalid URL (" + std::string(request.method) + " " + std::string(path) + ")");
  }
  const error_shape shape = shape_of(kind);
  if (request.method != "POST")
    return error_reply(shape, 405, "Method " + std::string(request.method) + " not allowed");
  if (s.what == fault::status_error)
    return error_reply(shape, s.status, "The fake provider was scripted to fail with " +
                                            std::to_string(s.status) + ".");

  json::error_code ec;
  const json::value body = json::parse(request.body, ec);
  if (ec || !body.is_object())
    return error_reply(shape, 400, "We could not parse the JSON body of your request.");

  answer a{body.get_object(), s, serial, {}, {}, s.prompt_tokens, s.completion_tokens,
           static_cast<std::int64_t>(std::time(nullptr))};
  a.deltas = s.deltas.empty() ? cut_utf8(s.text, s.delta_bytes) : s.deltas;
  for (const auto& d : a.deltas) a.text += d;
  if (a.completion_tokens == 0) a.completion_tokens = a.deltas.size();

  switch (kind) {
    case api::openai_chat: return openai_chat(a);
    case api::openai_responses: return openai_responses(a);
    case api::openai_embeddings: return openai_embeddings(a);
    case api::anthropic: return anthropic_messages(a);
    case api::gemini: {
      bool alt_sse = false;
      for (std::size_t start = 0; start <= query.size();) {
        const auto amp = query.find('&', start);
        const auto param = query.substr(start, amp == std::string_view::npos ? amp : amp - start);
        if (param == "alt=sse") alt_sse = true;
        if (amp == std::string_view::npos) break;
        start = amp + 1;
      }
      return gemini(a, gemini_model, gemini_action == "streamGenerateContent", alt_sse);
    }
  }
  return error_reply(error_shape::openai, 500, "unreachable");
}

std::string stamped(const wire_event& e, std::uint64_t monotonic_ns) {
  if (e.stamp_at == std::string::npos || e.stamp_at >= e.bytes.size() || e.bytes[e.stamp_at] != '{')
    return e.bytes;
  std::string out;
  out.reserve(e.bytes.size() + 40);
  out.append(e.bytes, 0, e.stamp_at + 1);
  out += "\"customs_sent_ns\":";
  out += std::to_string(monotonic_ns);
  out += ',';
  out.append(e.bytes, e.stamp_at + 1);
  return out;
}

}  // namespace detail
}  // namespace customs::testing
