// Anthropic Messages request bodies (/v1/messages and /v1/messages/count_tokens).
#include "daemon/dialect/request_walk.hpp"

namespace customs::daemon::detail {
namespace {

// The declared media type of a base64 source, or a binary type to sniff.
std::string_view media_type_or_binary(const json::object& src) {
  auto t = string_or_empty(src, "media_type");
  return t.empty() ? std::string_view("application/octet-stream") : t;
}

bool walk_blocks(walker& w, json::object& holder, std::string_view key, bool required);

bool walk_citations(walker& w, json::object& block) {
  auto* v = member(block, "citations");
  if (v == nullptr || v->is_null()) return true;
  auto s = w.at("citations");
  if (!v->is_array()) return w.fail(codec_errc::unexpected_shape);
  auto& cites = v->get_array();
  for (std::size_t i = 0; i < cites.size(); ++i) {
    auto cs = w.at(i);
    if (!cites[i].is_object()) return w.fail(codec_errc::unexpected_shape);
    if (!w.optional_text(cites[i].get_object(), "cited_text", slot_role::prose)) return false;
  }
  return true;
}

// document source: text and content sources carry text; others are a document.
bool walk_document(walker& w, json::object& block) {
  if (!w.optional_text(block, "title", slot_role::prose)) return false;
  if (!w.optional_text(block, "context", slot_role::prose)) return false;
  auto* src = object_member(block, "source");
  auto s = w.at("source");
  if (src == nullptr) return w.fail(codec_errc::unexpected_shape);
  auto type = string_or_empty(*src, "type");
  if (type == "text") return w.required_text(*src, "data", slot_role::prose);
  if (type == "content") {
    auto* c = member(*src, "content");
    if (c != nullptr && c->is_string()) return w.required_text(*src, "content", slot_role::prose);
    return walk_blocks(w, *src, "content", true);
  }
  if (type == "base64" || type == "url" || type == "file") {
    w.media(media_kind::document);
    // A base64 document of a text type (text/plain) is decoded and scanned.
    if (type == "base64") return w.blob_member(*src, "data", media_type_or_binary(*src));
    return true;
  }
  auto ts = w.at("type");
  return w.fail(codec_errc::unknown_part_type);
}

bool walk_web_search_result(walker& w, json::object& block) {
  auto* c = member(block, "content");
  if (c == nullptr || c->is_object()) return true;  // an error object: {type, error_code}
  auto s = w.at("content");
  if (!c->is_array()) return w.fail(codec_errc::unexpected_shape);
  auto& results = c->get_array();
  for (std::size_t i = 0; i < results.size(); ++i) {
    auto rs = w.at(i);
    if (!results[i].is_object()) return w.fail(codec_errc::unexpected_shape);
    auto& r = results[i].get_object();
    if (!w.optional_text(r, "title", slot_role::prose)) return false;
    if (member(r, "encrypted_content") != nullptr) {
      w.media(media_kind::opaque);
    }
  }
  return true;
}

bool walk_block(walker& w, json::value& bv) {
  if (!bv.is_object()) return w.fail(codec_errc::unexpected_shape);
  auto& b = bv.get_object();
  auto type = string_or_empty(b, "type");
  if (type == "text") {
    if (!w.required_text(b, "text", slot_role::prose)) return false;
    return walk_citations(w, b);
  }
  if (type == "image") {
    w.media(media_kind::image);
    auto* src = object_member(b, "source");
    if (src == nullptr || string_or_empty(*src, "type") != "base64") return true;
    auto s = w.at("source");
    return w.blob_member(*src, "data", media_type_or_binary(*src));
  }
  if (type == "document") return walk_document(w, b);
  if (type == "tool_use" || type == "server_tool_use" || type == "mcp_tool_use") {
    auto* input = member(b, "input");
    auto s = w.at("input");
    if (input == nullptr || !input->is_object()) return w.fail(codec_errc::unexpected_shape);
    w.leaves(*input, slot_role::structured_leaf);
    return true;
  }
  if (type == "tool_result" || type == "mcp_tool_result") {
    auto* c = member(b, "content");
    if (c != nullptr && c->is_string()) return w.required_text(b, "content", slot_role::prose);
    return walk_blocks(w, b, "content", false);
  }
  if (type == "thinking") {
    return w.required_text(b, "thinking", slot_role::reasoning);
  }
  if (type == "redacted_thinking") {
    w.media(media_kind::opaque);
    return true;
  }
  if (type == "search_result") {
    if (!w.optional_text(b, "title", slot_role::prose)) return false;
    return walk_blocks(w, b, "content", false);
  }
  if (type == "web_search_tool_result") return walk_web_search_result(w, b);
  if (type == "container_upload") {
    w.media(media_kind::file);
    return true;
  }
  auto s = w.at("type");
  return w.fail(codec_errc::unknown_part_type);
}

// holder[key]: an array of blocks (absent or null allowed unless required).
bool walk_blocks(walker& w, json::object& holder, std::string_view key, bool required) {
  auto* v = member(holder, key);
  auto s = w.at(key);
  if (v == nullptr || v->is_null()) return required ? w.fail(codec_errc::unexpected_shape) : true;
  if (!v->is_array()) return w.fail(codec_errc::unexpected_shape);
  auto& blocks = v->get_array();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    auto bs = w.at(i);
    if (!walk_block(w, blocks[i])) return false;
  }
  return true;
}

// holder[key]: a string or an array of blocks.
bool walk_content(walker& w, json::object& holder, std::string_view key, bool required) {
  auto* v = member(holder, key);
  if (v != nullptr && v->is_string()) return w.required_text(holder, key, slot_role::prose);
  return walk_blocks(w, holder, key, required);
}

}  // namespace

bool walk_anthropic_request(walker& w, request_extraction& ex, json::object& body) {
  ex.model = std::string(string_or_empty(body, "model"));
  if (auto* st = member(body, "stream"); st != nullptr && !st->is_null()) {
    auto s = w.at("stream");
    if (!st->is_bool()) return w.fail(codec_errc::unexpected_shape);
    ex.stream = st->get_bool();
  }
  if (ex.endpoint == endpoint_kind::anthropic_count_tokens) ex.stream = false;

  if (!walk_content(w, body, "system", false)) return false;
  auto* messages = array_member(body, "messages");
  {
    auto s = w.at("messages");
    if (messages == nullptr) return w.fail(codec_errc::unexpected_shape);
    for (std::size_t i = 0; i < messages->size(); ++i) {
      auto ms = w.at(i);
      auto& mv = (*messages)[i];
      if (!mv.is_object()) return w.fail(codec_errc::unexpected_shape);
      if (!walk_content(w, mv.get_object(), "content", true)) return false;
    }
  }
  if (auto* tools = member(body, "tools")) {
    auto s = w.at("tools");
    w.descriptions(*tools);
  }
  return true;
}

}  // namespace customs::daemon::detail
