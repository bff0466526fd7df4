#include "daemon/dialect/response.hpp"

#include "daemon/dialect/request_walk.hpp"
#include "daemon/dialect/response_walk.hpp"

namespace customs::daemon {
namespace detail {

std::string channel_key(std::string_view a, std::uint64_t i) {
  std::string out(a);
  out += std::to_string(i);
  return out;
}

std::string channel_key(std::string_view a, std::uint64_t i, std::string_view b, std::uint64_t j) {
  std::string out = channel_key(a, i);
  out += b;
  out += std::to_string(j);
  return out;
}

namespace {

std::optional<std::uint64_t> first_count(const json::object& o, std::string_view a,
                                         std::string_view b = {}) noexcept {
  if (auto v = index_member(o, a)) return v;
  if (!b.empty()) return index_member(o, b);
  return std::nullopt;
}

// Sum of the counts present; nullopt when none is.
std::optional<std::uint64_t> sum_counts(const json::object& o,
                                        std::initializer_list<std::string_view> keys) noexcept {
  std::optional<std::uint64_t> total;
  for (auto k : keys) {
    if (auto v = index_member(o, k)) total = total.value_or(0) + *v;
  }
  return total;
}

}  // namespace

token_usage openai_usage(const json::value* usage) noexcept {
  token_usage u;
  if (usage == nullptr || !usage->is_object()) return u;
  const auto& o = usage->get_object();
  u.input_tokens = first_count(o, "prompt_tokens", "input_tokens");
  u.output_tokens = first_count(o, "completion_tokens", "output_tokens");
  return u;
}

token_usage anthropic_usage(const json::value* usage) noexcept {
  token_usage u;
  if (usage == nullptr || !usage->is_object()) return u;
  const auto& o = usage->get_object();
  u.input_tokens = sum_counts(o, {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"});
  u.output_tokens = index_member(o, "output_tokens");
  return u;
}

token_usage gemini_usage(const json::value* meta) noexcept {
  token_usage u;
  if (meta == nullptr || !meta->is_object()) return u;
  const auto& o = meta->get_object();
  u.input_tokens = index_member(o, "promptTokenCount");
  u.output_tokens = sum_counts(o, {"candidatesTokenCount", "thoughtsTokenCount"});
  return u;
}

void walk_responses_item(walker& w, json::object& item, std::uint64_t oi, bool aggregate) {
  auto type = string_or_empty(item, "type");
  if (type == "message" || type == "reasoning") {
    const auto role = type == "message" ? slot_role::prose : slot_role::reasoning;
    for (std::string_view key : {"content", "summary"}) {
      auto* parts = array_member(item, key);
      if (parts == nullptr) continue;
      auto s = w.at(key);
      const std::string_view letter = key == "content" ? ".c" : ".s";
      for (std::size_t j = 0; j < parts->size(); ++j) {
        auto ps = w.at(j);
        if (!(*parts)[j].is_object()) {
          w.media(media_kind::opaque);
          continue;
        }
        auto& part = (*parts)[j].get_object();
        auto channel = channel_key("o", oi, letter, j);
        if (auto* t = string_member(part, "text")) {
          auto ts = w.at("text");
          w.add(*t, role, std::move(channel), aggregate);
        } else if (auto* r = string_member(part, "refusal")) {
          auto ts = w.at("refusal");
          w.add(*r, slot_role::refusal, std::move(channel), aggregate);
        } else {
          w.media(media_kind::opaque);
        }
      }
    }
    if (type == "reasoning" && member(item, "encrypted_content") != nullptr &&
        !member(item, "encrypted_content")->is_null()) {
      w.media(media_kind::opaque);
    }
    return;
  }
  if (type == "function_call" || type == "custom_tool_call") {
    const std::string_view key = type == "function_call" ? "arguments" : "input";
    if (auto* a = string_member(item, key)) {
      auto s = w.at(key);
      w.add(*a, slot_role::tool_arguments, channel_key("o", oi), aggregate);
    }
    // The tool's name arrives whole: scanned as a whole text in streams too.
    if (auto* n = string_member(item, "name")) {
      auto s = w.at("name");
      w.add(*n, slot_role::tool_name, channel_key("o", oi) + ".n", true);
    }
    return;
  }
  if (type == "image_generation_call") {
    if (auto* r = member(item, "result"); r != nullptr && !r->is_null()) w.media(media_kind::image);
    return;
  }
  w.media(media_kind::opaque);
}

void walk_responses_output(walker& w, json::object& response, bool aggregate) {
  auto* output = array_member(response, "output");
  if (output == nullptr) return;
  auto s = w.at("output");
  for (std::size_t i = 0; i < output->size(); ++i) {
    auto is = w.at(i);
    if ((*output)[i].is_object()) {
      walk_responses_item(w, (*output)[i].get_object(), i, aggregate);
    } else {
      w.media(media_kind::opaque);
    }
  }
}

void walk_anthropic_block(walker& w, json::object& b, const std::string& channel) {
  auto type = string_or_empty(b, "type");
  if (type == "text") {
    if (auto* t = string_member(b, "text")) {
      auto ts = w.at("text");
      w.add(*t, slot_role::prose, channel);
    }
  } else if (type == "thinking") {
    if (auto* t = string_member(b, "thinking")) {
      auto ts = w.at("thinking");
      w.add(*t, slot_role::reasoning, channel);
    }
  } else if (type == "tool_use" || type == "server_tool_use" || type == "mcp_tool_use") {
    if (auto* input = member(b, "input")) {
      auto ts = w.at("input");
      w.leaves(*input, slot_role::structured_leaf, channel);
    }
    if (auto* n = string_member(b, "name")) {
      auto ts = w.at("name");
      w.add(*n, slot_role::tool_name, channel);
    }
  } else if (type == "web_search_tool_result") {
    // Titles are text; the pages come encrypted.
    if (auto* results = array_member(b, "content")) {
      auto cs = w.at("content");
      for (std::size_t r = 0; r < results->size(); ++r) {
        auto rs = w.at(r);
        if (!(*results)[r].is_object()) continue;
        auto& res = (*results)[r].get_object();
        if (auto* t = string_member(res, "title")) {
          auto ts = w.at("title");
          w.add(*t, slot_role::prose, channel);
        }
        if (member(res, "encrypted_content") != nullptr) w.media(media_kind::opaque);
      }
    }
  } else {
    w.media(media_kind::opaque);  // redacted_thinking, and types this codec does not know
  }
}

void walk_anthropic_message_content(walker& w, json::object& message) {
  auto* content = array_member(message, "content");
  if (content == nullptr) return;
  auto s = w.at("content");
  for (std::size_t i = 0; i < content->size(); ++i) {
    auto bs = w.at(i);
    if ((*content)[i].is_object()) {
      walk_anthropic_block(w, (*content)[i].get_object(), channel_key("b", i));
    } else {
      w.media(media_kind::opaque);
    }
  }
}

namespace {

// choices[].message of a chat completion.
void walk_chat_choices(walker& w, json::object& body) {
  auto* choices = array_member(body, "choices");
  if (choices == nullptr) return;
  auto s = w.at("choices");
  for (std::size_t i = 0; i < choices->size(); ++i) {
    auto cs = w.at(i);
    if (!(*choices)[i].is_object()) continue;
    auto& choice = (*choices)[i].get_object();
    const auto ci = index_member(choice, "index").value_or(i);
    auto* m = object_member(choice, "message");
    if (m == nullptr) continue;
    auto ms = w.at("message");
    if (auto* c = member(*m, "content")) {
      auto ts = w.at("content");
      if (c->is_string()) {
        w.add(c->get_string(), slot_role::prose, channel_key("c", ci));
      } else if (c->is_array()) {
        auto& parts = c->get_array();
        for (std::size_t p = 0; p < parts.size(); ++p) {
          auto ps = w.at(p);
          if (!parts[p].is_object()) continue;
          if (auto* t = string_member(parts[p].get_object(), "text")) {
            auto tts = w.at("text");
            w.add(*t, slot_role::prose, channel_key("c", ci));
          } else {
            w.media(media_kind::opaque);
          }
        }
      }
    }
    if (auto* r = string_member(*m, "refusal")) {
      auto ts = w.at("refusal");
      w.add(*r, slot_role::refusal, channel_key("c", ci) + ".r");
    }
    if (auto* r = string_member(*m, "reasoning_content")) {
      auto ts = w.at("reasoning_content");
      w.add(*r, slot_role::reasoning, channel_key("c", ci) + ".rs");
    }
    if (auto* calls = array_member(*m, "tool_calls")) {
      auto ts = w.at("tool_calls");
      for (std::size_t t = 0; t < calls->size(); ++t) {
        auto cs2 = w.at(t);
        if (!(*calls)[t].is_object()) continue;
        auto& call = (*calls)[t].get_object();
        auto channel = channel_key("c", ci, ".t", t);
        if (auto* fn = object_member(call, "function")) {
          auto fs = w.at("function");
          if (auto* a = string_member(*fn, "arguments")) {
            auto as = w.at("arguments");
            w.add(*a, slot_role::tool_arguments, channel);
          }
          if (auto* n = string_member(*fn, "name")) {
            auto ns = w.at("name");
            w.add(*n, slot_role::tool_name, channel + ".n");
          }
        } else if (auto* custom = object_member(call, "custom")) {
          auto fs = w.at("custom");
          if (auto* a = string_member(*custom, "input")) {
            auto as = w.at("input");
            w.add(*a, slot_role::tool_arguments, channel);
          }
          if (auto* n = string_member(*custom, "name")) {
            auto ns = w.at("name");
            w.add(*n, slot_role::tool_name, channel + ".n");
          }
        }
      }
    }
    if (auto* fc = object_member(*m, "function_call")) {
      auto fs = w.at("function_call");
      if (auto* a = string_member(*fc, "arguments")) {
        auto as = w.at("arguments");
        w.add(*a, slot_role::tool_arguments, channel_key("c", ci) + ".f");
      }
      if (auto* n = string_member(*fc, "name")) {
        auto ns = w.at("name");
        w.add(*n, slot_role::tool_name, channel_key("c", ci) + ".f.n");
      }
    }
    if (auto* audio = object_member(*m, "audio")) {
      auto as = w.at("audio");
      if (auto* t = string_member(*audio, "transcript")) {
        auto ts = w.at("transcript");
        w.add(*t, slot_role::prose, channel_key("c", ci) + ".a");
      }
      w.media(media_kind::audio);
    }
  }
}

// candidates[].content.parts[] of one GenerateContentResponse.
void walk_gemini_candidates(walker& w, json::object& body) {
  auto* cands = array_member(body, "candidates");
  if (cands == nullptr) return;
  auto s = w.at("candidates");
  for (std::size_t i = 0; i < cands->size(); ++i) {
    auto cs = w.at(i);
    if (!(*cands)[i].is_object()) continue;
    auto& cand = (*cands)[i].get_object();
    const auto ci = index_member(cand, "index").value_or(i);
    auto* content = object_member(cand, "content");
    if (content == nullptr) continue;
    auto* parts = array_member(*content, "parts");
    if (parts == nullptr) continue;
    auto ps = w.at("content");
    auto pps = w.at("parts");
    for (std::size_t p = 0; p < parts->size(); ++p) {
      auto one = w.at(p);
      if (!(*parts)[p].is_object()) {
        w.media(media_kind::opaque);
        continue;
      }
      auto& part = (*parts)[p].get_object();
      if (auto* t = string_member(part, "text")) {
        auto ts = w.at("text");
        const bool thought = is_true(part, "thought");
        w.add(*t, thought ? slot_role::reasoning : slot_role::prose,
              thought ? channel_key("c", ci) + ".th" : channel_key("c", ci));
      } else if (auto* fc = object_member(part, "functionCall")) {
        auto fs = w.at("functionCall");
        if (auto* args = member(*fc, "args")) {
          auto as = w.at("args");
          w.leaves(*args, slot_role::structured_leaf, channel_key("c", ci, ".p", p));
        }
        if (auto* n = string_member(*fc, "name")) {
          auto ns = w.at("name");
          w.add(*n, slot_role::tool_name, channel_key("c", ci, ".p", p) + ".n");
        }
      } else if (auto* code = object_member(part, "executableCode")) {
        auto fs = w.at("executableCode");
        if (auto* t = string_member(*code, "code")) {
          auto ts = w.at("code");
          w.add(*t, slot_role::prose, channel_key("c", ci, ".p", p));
        }
      } else if (auto* res = object_member(part, "codeExecutionResult")) {
        auto fs = w.at("codeExecutionResult");
        if (auto* t = string_member(*res, "output")) {
          auto ts = w.at("output");
          w.add(*t, slot_role::prose, channel_key("c", ci, ".p", p));
        }
      } else if (auto* data = object_member(part, "inlineData")) {
        w.media(media_of_mime(string_or_empty(*data, "mimeType")));
      } else if (auto* file = object_member(part, "fileData")) {
        w.media(media_of_mime(string_or_empty(*file, "mimeType")));
      } else {
        w.media(media_kind::opaque);
      }
    }
  }
}

bool is_provider_error(dialect d, const json::object& o) {
  if (d == dialect::anthropic) return string_or_empty(o, "type") == "error";
  auto it = o.find("error");
  return it != o.end() && !it->value().is_null();
}

}  // namespace
}  // namespace detail

codec_result<response_extraction> extract_response(dialect d, endpoint_kind endpoint,
                                                   std::string_view body) {
  namespace json = detail::json;
  response_extraction ex(detail::document_storage());
  auto parsed = detail::parse_json(body, nullptr, &ex.duplicate_keys, nullptr, ex.document.storage());
  if (!parsed) return parsed.error();
  ex.document = std::move(*parsed);
  detail::walker w(ex.slots, ex.non_text);

  // Gemini streamGenerateContent without alt=sse: an array of responses.
  if (ex.document.is_array() && endpoint == endpoint_kind::gemini_stream_generate) {
    auto& items = ex.document.get_array();
    for (std::size_t i = 0; i < items.size(); ++i) {
      auto s = w.at(i);
      if (!items[i].is_object()) return codec_error{codec_errc::not_an_object, w.pointer()};
      auto& o = items[i].get_object();
      if (detail::is_provider_error(d, o)) {
        ex.provider_error = true;
        ex.slots.clear();
        detail::walker ew(ex.slots, ex.non_text);
        ew.leaves(ex.document, slot_role::error);
        return ex;
      }
      detail::walk_gemini_candidates(w, o);
      ex.usage.merge(detail::gemini_usage(detail::member(o, "usageMetadata")));
    }
    return ex;
  }
  if (!ex.document.is_object()) return codec_error{codec_errc::not_an_object, {}};
  auto& root = ex.document.get_object();
  if (detail::is_provider_error(d, root)) {
    ex.provider_error = true;
    w.leaves(ex.document, slot_role::error);
    return ex;
  }

  switch (endpoint) {
    case endpoint_kind::openai_chat:
      detail::walk_chat_choices(w, root);
      ex.usage = detail::openai_usage(detail::member(root, "usage"));
      break;
    case endpoint_kind::openai_responses:
      detail::walk_responses_output(w, root, false);
      ex.usage = detail::openai_usage(detail::member(root, "usage"));
      break;
    case endpoint_kind::openai_embeddings:
      ex.usage = detail::openai_usage(detail::member(root, "usage"));
      break;
    case endpoint_kind::anthropic_messages:
      detail::walk_anthropic_message_content(w, root);
      ex.usage = detail::anthropic_usage(detail::member(root, "usage"));
      break;
    case endpoint_kind::anthropic_count_tokens:
      ex.usage.input_tokens = detail::index_member(root, "input_tokens");
      break;
    case endpoint_kind::gemini_generate:
    case endpoint_kind::gemini_stream_generate:
      detail::walk_gemini_candidates(w, root);
      ex.usage = detail::gemini_usage(detail::member(root, "usageMetadata"));
      break;
    case endpoint_kind::gemini_count_tokens:
      ex.usage.input_tokens = detail::index_member(root, "totalTokens");
      break;
    case endpoint_kind::gemini_embed:
    case endpoint_kind::gemini_batch_embed:
    case endpoint_kind::model_info:
      break;
  }
  return ex;
}

codec_result<response_extraction> extract_error_body(std::string_view body) {
  response_extraction ex(detail::document_storage());
  auto parsed = detail::parse_json(body, nullptr, &ex.duplicate_keys, nullptr, ex.document.storage());
  if (!parsed) return parsed.error();
  ex.document = std::move(*parsed);
  ex.provider_error = true;
  detail::walker w(ex.slots, ex.non_text);
  w.leaves(ex.document, slot_role::error);
  return ex;
}

codec_result<std::string> rewrite_response(response_extraction& extraction,
                                           std::span<const text_replacement> changes) {
  return rewrite_document(extraction.document, extraction.slots, changes);
}

}  // namespace customs::daemon
