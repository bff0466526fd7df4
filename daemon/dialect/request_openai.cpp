// OpenAI request bodies: chat completions, Responses API, embeddings.
#include "daemon/dialect/request_walk.hpp"

namespace customs::daemon::detail {
namespace {

// "stream": true / false / null / absent; any other type is a shape error.
bool read_stream_flag(walker& w, json::object& body, bool& out) {
  auto* v = member(body, "stream");
  if (v == nullptr || v->is_null()) return true;
  if (!v->is_bool()) {
    auto s = w.at("stream");
    return w.fail(codec_errc::unexpected_shape);
  }
  out = v->get_bool();
  return true;
}

void read_model(request_extraction& ex, const json::object& body) {
  ex.model = std::string(string_or_empty(body, "model"));
}

// tools[] of chat completions ({type:function, function:{description, parameters}}
// or {type:custom, custom:{description}}) and of the Responses API
// ({type:function, name, description, parameters}); the deprecated functions[].
// Only descriptions are prose; built-in tools carry none.
void walk_tool_definitions(walker& w, json::object& body, std::string_view key) {
  if (auto* v = member(body, key)) {
    auto s = w.at(key);
    w.descriptions(*v);
  }
}

// Content parts of a chat message.
constexpr part_rule chat_parts[] = {
    {"text", "text", slot_role::prose},
    {"refusal", "refusal", slot_role::refusal},
    {"image_url", {}, slot_role::prose, media_kind::image},
    {"input_audio", {}, slot_role::prose, media_kind::audio},
    {"file", {}, slot_role::prose, media_kind::file},
};

// An inline file's data in o[key]: a data: URL, or bare base64 whose media
// type the filename's extension suggests.
bool file_data(walker& w, json::object& o, std::string_view key) {
  auto* v = member(o, key);
  if (v == nullptr || !v->is_string()) return true;
  const std::string_view data(v->get_string().data(), v->get_string().size());
  if (data.starts_with("data:")) return w.blob_member(o, key, {});
  return w.blob_member(o, key, media_type_of_filename(string_or_empty(o, "filename")));
}

// The inline files of a media part: data: URLs of images and files, base64
// audio. URLs and file ids are left to the sweep (scanned as fields).
bool part_blobs(walker& w, json::value& part) {
  auto& p = part.get_object();
  const auto type = string_or_empty(p, "type");
  if (type == "image_url" || type == "input_image") {
    auto* v = member(p, "image_url");
    if (v != nullptr && v->is_object()) {
      auto s = w.at("image_url");
      return w.blob_member(v->get_object(), "url", {});
    }
    return w.blob_member(p, "image_url", {});
  }
  if (type == "input_audio") {
    auto audio = [&w](json::object& holder) {
      // The format says how the data is read: an identifier, as a media type.
      if (auto* f = string_member(holder, "format")) w.option(*f);
      const std::string declared = "audio/" + std::string(string_or_empty(holder, "format"));
      return w.blob_member(holder, "data", declared);
    };
    if (auto* v = object_member(p, "input_audio")) {
      auto s = w.at("input_audio");
      return audio(*v);
    }
    return audio(p);
  }
  if (type == "file") {
    auto* v = object_member(p, "file");
    if (v == nullptr) return true;
    auto s = w.at("file");
    return file_data(w, *v, "file_data");
  }
  if (type == "input_file") return file_data(w, p, "file_data");
  return true;
}

// holder[key]: a string, or an array of content parts read by `rules`; absent
// or null is fine unless required.
bool walk_string_or_parts(walker& w, json::object& holder, std::string_view key, bool required,
                          std::span<const part_rule> rules) {
  auto* v = member(holder, key);
  auto s = w.at(key);
  if (v == nullptr || v->is_null()) return required ? w.fail(codec_errc::unexpected_shape) : true;
  if (v->is_string()) {
    w.add(v->get_string(), slot_role::prose);
    return true;
  }
  if (!v->is_array()) return w.fail(codec_errc::unexpected_shape);
  auto& parts = v->get_array();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto ps = w.at(i);
    if (!walk_typed_part(w, parts[i], rules)) return false;
    if (!part_blobs(w, parts[i])) return false;
  }
  return true;
}

// content: null | string | [parts]
bool walk_chat_content(walker& w, json::object& msg, std::string_view key) {
  return walk_string_or_parts(w, msg, key, false, chat_parts);
}

bool walk_chat_message(walker& w, json::value& mv) {
  if (!mv.is_object()) return w.fail(codec_errc::unexpected_shape);
  auto& m = mv.get_object();
  if (!walk_chat_content(w, m, "content")) return false;
  if (!w.optional_text(m, "refusal", slot_role::refusal)) return false;
  // Not part of OpenAI's schema; sent by clients of OpenAI-compatible reasoning
  // models (and rejected by OpenAI itself), so scanned when present.
  if (!w.optional_text(m, "reasoning_content", slot_role::reasoning)) return false;
  if (auto* tc = member(m, "tool_calls"); tc != nullptr && !tc->is_null()) {
    auto s = w.at("tool_calls");
    if (!tc->is_array()) return w.fail(codec_errc::unexpected_shape);
    auto& calls = tc->get_array();
    for (std::size_t i = 0; i < calls.size(); ++i) {
      auto cs = w.at(i);
      if (!calls[i].is_object()) return w.fail(codec_errc::unexpected_shape);
      auto& call = calls[i].get_object();
      if (auto* fn = object_member(call, "function")) {
        auto fs = w.at("function");
        if (!w.optional_text(*fn, "arguments", slot_role::tool_arguments)) return false;
      } else if (auto* custom = object_member(call, "custom")) {
        auto fs = w.at("custom");
        if (!w.optional_text(*custom, "input", slot_role::tool_arguments)) return false;
      } else {
        return w.fail(codec_errc::unknown_part_type);
      }
    }
  }
  if (auto* fc = object_member(m, "function_call")) {
    auto s = w.at("function_call");
    if (!w.optional_text(*fc, "arguments", slot_role::tool_arguments)) return false;
  }
  if (auto* audio = member(m, "audio"); audio != nullptr && !audio->is_null()) {
    w.media(media_kind::audio);
  }
  return true;
}

bool walk_chat(walker& w, request_extraction& ex, json::object& body) {
  read_model(ex, body);
  if (!read_stream_flag(w, body, ex.stream)) return false;
  if (auto* so = object_member(body, "stream_options")) ex.include_usage = is_true(*so, "include_usage");
  ex.logprobs_requested = is_true(body, "logprobs") || index_member(body, "top_logprobs").value_or(0) > 0;

  auto* messages = array_member(body, "messages");
  {
    auto s = w.at("messages");
    if (messages == nullptr) return w.fail(codec_errc::unexpected_shape);
    for (std::size_t i = 0; i < messages->size(); ++i) {
      auto ms = w.at(i);
      if (!walk_chat_message(w, (*messages)[i])) return false;
    }
  }
  if (auto* pred = object_member(body, "prediction")) {
    auto s = w.at("prediction");
    if (!walk_chat_content(w, *pred, "content")) return false;
  }
  walk_tool_definitions(w, body, "tools");
  walk_tool_definitions(w, body, "functions");
  return true;
}

// --- Responses API -----------------------------------------------------------

// Content parts of Responses API input messages and tool outputs.
constexpr part_rule responses_parts[] = {
    {"input_text", "text", slot_role::prose},
    {"output_text", "text", slot_role::prose},
    {"text", "text", slot_role::prose},
    {"refusal", "refusal", slot_role::refusal},
    {"input_image", {}, slot_role::prose, media_kind::image},
    {"input_file", {}, slot_role::prose, media_kind::file},
    {"input_audio", {}, slot_role::prose, media_kind::audio},
};

// A string, or an array of content parts (message content, tool outputs).
bool walk_responses_content(walker& w, json::object& holder, std::string_view key, bool required) {
  return walk_string_or_parts(w, holder, key, required, responses_parts);
}

// reasoning item: summary[] and content[] of {type, text}; encrypted_content opaque.
bool walk_reasoning_item(walker& w, json::object& item) {
  for (std::string_view key : {"summary", "content"}) {
    auto* v = member(item, key);
    if (v == nullptr || v->is_null()) continue;
    auto s = w.at(key);
    if (!v->is_array()) return w.fail(codec_errc::unexpected_shape);
    auto& parts = v->get_array();
    for (std::size_t i = 0; i < parts.size(); ++i) {
      auto ps = w.at(i);
      if (!parts[i].is_object()) return w.fail(codec_errc::unexpected_shape);
      if (!w.required_text(parts[i].get_object(), "text", slot_role::reasoning)) return false;
    }
  }
  if (auto* enc = member(item, "encrypted_content"); enc != nullptr && !enc->is_null()) {
    w.media(media_kind::opaque);
  }
  return true;
}

bool walk_responses_item(walker& w, json::value& iv) {
  if (!iv.is_object()) return w.fail(codec_errc::unexpected_shape);
  auto& item = iv.get_object();
  auto type = string_or_empty(item, "type");
  // An easy input message has a role and no type.
  if (type == "message" || (type.empty() && member(item, "role") != nullptr)) {
    return walk_responses_content(w, item, "content", true);
  }
  if (type == "function_call") return w.required_text(item, "arguments", slot_role::tool_arguments);
  if (type == "function_call_output" || type == "custom_tool_call_output") {
    return walk_responses_content(w, item, "output", true);
  }
  if (type == "custom_tool_call") return w.required_text(item, "input", slot_role::tool_arguments);
  if (type == "reasoning") return walk_reasoning_item(w, item);
  if (type == "item_reference") return true;  // an id of a stored item, no content
  auto s = w.at("type");
  return w.fail(codec_errc::unknown_part_type);
}

bool walk_responses(walker& w, request_extraction& ex, json::object& body) {
  read_model(ex, body);
  if (!read_stream_flag(w, body, ex.stream)) return false;
  if (index_member(body, "top_logprobs").value_or(0) > 0) ex.logprobs_requested = true;
  // include[] names extra output the response carries; its entries are
  // options, never redacted (a replacement could drop or add a request for
  // log-probs, and the response would not be what the request was checked as).
  if (auto* inc = array_member(body, "include")) {
    for (auto& v : *inc) {
      if (!v.is_string()) continue;
      w.option(v.get_string());
      if (v.get_string() == "message.output_text.logprobs") ex.logprobs_requested = true;
    }
  }
  if (!w.optional_text(body, "instructions", slot_role::prose)) return false;
  if (auto* input = member(body, "input"); input != nullptr && !input->is_null()) {
    auto s = w.at("input");
    if (input->is_string()) {
      w.add(input->get_string(), slot_role::prose);
    } else if (input->is_array()) {
      auto& items = input->get_array();
      for (std::size_t i = 0; i < items.size(); ++i) {
        auto is = w.at(i);
        if (!walk_responses_item(w, items[i])) return false;
      }
    } else {
      return w.fail(codec_errc::unexpected_shape);
    }
  }
  // Reusable prompt templates: variables are strings or input parts.
  if (auto* prompt = object_member(body, "prompt")) {
    auto ps = w.at("prompt");
    if (auto* vars = object_member(*prompt, "variables")) {
      auto vs = w.at("variables");
      for (auto& kv : *vars) {
        auto ks = w.at(kv.key());
        if (kv.value().is_string()) {
          w.add(kv.value().get_string(), slot_role::prose);
        } else if (!walk_typed_part(w, kv.value(), responses_parts) || !part_blobs(w, kv.value())) {
          return false;
        }
      }
    }
  }
  walk_tool_definitions(w, body, "tools");
  return true;
}

// --- Embeddings --------------------------------------------------------------

bool is_token_array(const json::value& v) {
  if (!v.is_array()) return false;
  for (const auto& t : v.get_array()) {
    if (!t.is_int64() && !t.is_uint64()) return false;
  }
  return true;
}

bool walk_embeddings(walker& w, request_extraction& ex, json::object& body) {
  read_model(ex, body);
  auto* input = member(body, "input");
  auto s = w.at("input");
  if (input == nullptr) return w.fail(codec_errc::unexpected_shape);
  if (input->is_string()) {
    w.add(input->get_string(), slot_role::prose);
    return true;
  }
  if (!input->is_array()) return w.fail(codec_errc::unexpected_shape);
  auto& a = input->get_array();
  if (!a.empty() && is_token_array(*input)) {  // one pre-tokenised input
    w.media(media_kind::tokens);
    return true;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto es = w.at(i);
    if (a[i].is_string()) {
      w.add(a[i].get_string(), slot_role::prose);
    } else if (is_token_array(a[i])) {
      w.media(media_kind::tokens);
    } else {
      return w.fail(codec_errc::unexpected_shape);
    }
  }
  return true;
}

}  // namespace

bool walk_openai_request(walker& w, request_extraction& ex, json::object& body) {
  switch (ex.endpoint) {
    case endpoint_kind::openai_chat: return walk_chat(w, ex, body);
    case endpoint_kind::openai_responses: return walk_responses(w, ex, body);
    case endpoint_kind::openai_embeddings: return walk_embeddings(w, ex, body);
    default: return w.fail(codec_errc::unknown_endpoint);
  }
}

}  // namespace customs::daemon::detail
