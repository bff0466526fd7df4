// Gemini request bodies (generateContent, streamGenerateContent, countTokens,
// embedContent, batchEmbedContents). The REST API accepts camelCase and
// snake_case field names; both are read.
#include "daemon/dialect/request_walk.hpp"

namespace customs::daemon::detail {
namespace {

// A structured value (functionCall.args, functionResponse.response): its string leaves.
bool walk_struct_member(walker& w, json::object& holder, std::string_view key) {
  auto* v = member(holder, key);
  if (v == nullptr || v->is_null()) return true;
  auto s = w.at(key);
  w.leaves(*v, slot_role::structured_leaf);
  return true;
}

// The member under either spelling, with the spelling found (for the pointer).
struct found_member {
  json::value* value = nullptr;
  std::string_view key;
};
found_member either(json::object& o, std::string_view camel, std::string_view snake) {
  if (auto* v = member(o, camel)) return {v, camel};
  if (auto* v = member(o, snake)) return {v, snake};
  return {};
}

// Calls f(value) under each spelling of a field that is present: a part naming
// both is read under both (a provider might take either). False when f fails.
template <class F>
bool each_spelling(walker& w, json::object& o, std::string_view camel, std::string_view snake, bool& found, F f) {
  for (auto key : {camel, snake}) {
    auto* v = member(o, key);
    if (v == nullptr) continue;
    found = true;
    auto s = w.at(key);
    if (!v->is_object()) return w.fail(codec_errc::unexpected_shape);
    if (!f(v->get_object())) return false;
  }
  return true;
}

// A Part is a oneof (text, inlineData, fileData, functionCall, ...); every member
// present is read, so that a part naming two cannot hide one.
bool walk_part(walker& w, json::value& pv) {
  if (!pv.is_object()) return w.fail(codec_errc::unexpected_shape);
  auto& p = pv.get_object();
  bool found = false;
  if (auto* t = member(p, "text")) {
    found = true;
    auto s = w.at("text");
    if (!t->is_string()) return w.fail(codec_errc::unexpected_shape);
    w.add(t->get_string(), is_true(p, "thought") ? slot_role::reasoning : slot_role::prose);
  }
  auto data = [&w](bool inline_data) {
    return [&w, inline_data](json::object& o) {
      auto mime = string_or_empty(o, "mimeType");
      if (mime.empty()) mime = string_or_empty(o, "mime_type");
      w.media(media_of_mime(mime));
      // inlineData carries base64: text types are decoded and scanned (and any
      // other data that turns out to be text). fileData's URI is a field.
      if (!inline_data) return true;
      return w.blob_member(o, "data", mime.empty() ? "application/octet-stream" : mime);
    };
  };
  if (!each_spelling(w, p, "inlineData", "inline_data", found, data(true))) return false;
  if (!each_spelling(w, p, "fileData", "file_data", found, data(false))) return false;
  auto structured = [&w](std::string_view key) {
    return [&w, key](json::object& o) { return walk_struct_member(w, o, key); };
  };
  if (!each_spelling(w, p, "functionCall", "function_call", found, structured("args"))) return false;
  if (!each_spelling(w, p, "functionResponse", "function_response", found, structured("response"))) return false;
  auto text = [&w](std::string_view key) {
    return [&w, key](json::object& o) { return w.optional_text(o, key, slot_role::prose); };
  };
  if (!each_spelling(w, p, "executableCode", "executable_code", found, text("code"))) return false;
  if (!each_spelling(w, p, "codeExecutionResult", "code_execution_result", found, text("output"))) return false;
  if (!found) return w.fail(codec_errc::unknown_part_type);
  return true;
}

// A Content object: {role, parts: [...]}.
bool walk_content(walker& w, json::value& cv) {
  if (!cv.is_object()) return w.fail(codec_errc::unexpected_shape);
  auto* parts = member(cv.get_object(), "parts");
  auto s = w.at("parts");
  if (parts == nullptr || !parts->is_array()) return w.fail(codec_errc::unexpected_shape);
  auto& a = parts->get_array();
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto ps = w.at(i);
    if (!walk_part(w, a[i])) return false;
  }
  return true;
}

bool walk_contents(walker& w, json::object& body, bool required) {
  auto* contents = member(body, "contents");
  auto s = w.at("contents");
  if (contents == nullptr) return required ? w.fail(codec_errc::unexpected_shape) : true;
  if (!contents->is_array()) return w.fail(codec_errc::unexpected_shape);
  auto& a = contents->get_array();
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto cs = w.at(i);
    if (!walk_content(w, a[i])) return false;
  }
  return true;
}

// A GenerateContentRequest: contents, systemInstruction, tools, generationConfig.
bool walk_generate(walker& w, request_extraction& ex, json::object& body, bool contents_required) {
  if (!walk_contents(w, body, contents_required)) return false;
  if (auto f = either(body, "systemInstruction", "system_instruction"); f.value != nullptr) {
    auto s = w.at(f.key);
    if (!walk_content(w, *f.value)) return false;
  }
  if (auto* tools = member(body, "tools")) {
    auto s = w.at("tools");
    w.descriptions(*tools);
  }
  if (auto f = either(body, "generationConfig", "generation_config"); f.value != nullptr && f.value->is_object()) {
    auto& gc = f.value->get_object();
    if (is_true(gc, "responseLogprobs") || is_true(gc, "response_logprobs")) ex.logprobs_requested = true;
    // String options that say what the answer is (its media type, its
    // modalities, the resolution of media read): scanned, never rewritten, so
    // that the request forwarded asks for the answer the inspected one asked for.
    // Both spellings, when a body has both.
    for (const char* key : {"responseMimeType", "response_mime_type", "responseModalities", "response_modalities",
                            "mediaResolution", "media_resolution"}) {
      auto* o = member(gc, key);
      if (o == nullptr) continue;
      if (o->is_string()) w.option(o->get_string());
      if (o->is_array())
        for (auto& v : o->get_array())
          if (v.is_string()) w.option(v.get_string());
    }
  }
  return true;
}

// An EmbedContentRequest: content and an optional title.
bool walk_embed(walker& w, json::object& body) {
  auto* content = member(body, "content");
  {
    auto s = w.at("content");
    if (content == nullptr) return w.fail(codec_errc::unexpected_shape);
    if (!walk_content(w, *content)) return false;
  }
  return w.optional_text(body, "title", slot_role::prose);
}

}  // namespace

std::string_view media_type_of_filename(std::string_view filename) noexcept {
  const auto dot = filename.rfind('.');
  if (dot == std::string_view::npos) return "application/octet-stream";
  std::string ext(filename.substr(dot + 1));
  for (auto& c : ext) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  static constexpr std::string_view text_ext[] = {
      "txt", "md", "markdown", "csv", "tsv", "json", "jsonl", "ndjson", "xml", "yaml", "yml", "html",
      "htm", "log", "ini", "toml", "cfg", "conf", "sql", "sh", "py", "js", "ts", "c", "h", "cc", "cpp",
      "hpp", "java", "go", "rs", "rb", "php", "tex", "rtf", "srt", "vtt"};
  for (auto e : text_ext) {
    if (ext == e) return "text/plain";
  }
  return "application/octet-stream";
}

media_kind media_of_mime(std::string_view mime) noexcept {
  if (mime.starts_with("image/")) return media_kind::image;
  if (mime.starts_with("audio/")) return media_kind::audio;
  if (mime.starts_with("video/")) return media_kind::video;
  if (mime == "application/pdf" || mime.starts_with("text/")) return media_kind::document;
  return media_kind::file;
}

bool walk_gemini_request(walker& w, request_extraction& ex, json::object& body) {
  switch (ex.endpoint) {
    case endpoint_kind::gemini_generate:
      return walk_generate(w, ex, body, true);
    case endpoint_kind::gemini_stream_generate:
      ex.stream = true;
      return walk_generate(w, ex, body, true);
    case endpoint_kind::gemini_count_tokens: {
      // Either contents, or a whole generateContentRequest.
      if (!walk_contents(w, body, false)) return false;
      auto f = either(body, "generateContentRequest", "generate_content_request");
      if (f.value == nullptr) return true;
      auto s = w.at(f.key);
      if (!f.value->is_object()) return w.fail(codec_errc::unexpected_shape);
      return walk_generate(w, ex, f.value->get_object(), false);
    }
    case endpoint_kind::gemini_embed:
      return walk_embed(w, body);
    case endpoint_kind::gemini_batch_embed: {
      auto* reqs = array_member(body, "requests");
      auto s = w.at("requests");
      if (reqs == nullptr) return w.fail(codec_errc::unexpected_shape);
      for (std::size_t i = 0; i < reqs->size(); ++i) {
        auto rs = w.at(i);
        if (!(*reqs)[i].is_object()) return w.fail(codec_errc::unexpected_shape);
        if (!walk_embed(w, (*reqs)[i].get_object())) return false;
      }
      return true;
    }
    default:
      return w.fail(codec_errc::unknown_endpoint);
  }
}

}  // namespace customs::daemon::detail
