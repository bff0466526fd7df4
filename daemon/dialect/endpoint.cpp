#include "daemon/dialect/endpoint.hpp"

namespace customs::daemon {
namespace {

// Splits "path?query" and drops a trailing '/' from the path.
std::pair<std::string_view, std::string_view> split_query(std::string_view target) {
  std::string_view query;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  if (target.size() > 1 && target.back() == '/') target.remove_suffix(1);
  return {target, query};
}

bool query_has(std::string_view query, std::string_view param) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto item = query.substr(0, amp);
    if (item == param) return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

// True when `path` is ".../models" or ".../models/ONE-SEGMENT".
bool is_models_path(std::string_view path) {
  if (path.ends_with("/models")) return true;
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  auto parent = path.substr(0, slash);
  return parent.ends_with("/models");
}

std::optional<endpoint_match> classify_openai(std::string_view path) {
  if (path.ends_with("/chat/completions")) return endpoint_match{endpoint_kind::openai_chat, {}, false};
  if (path.ends_with("/responses")) return endpoint_match{endpoint_kind::openai_responses, {}, false};
  if (path.ends_with("/embeddings")) return endpoint_match{endpoint_kind::openai_embeddings, {}, false};
  if (is_models_path(path)) return endpoint_match{endpoint_kind::model_info, {}, false};
  return std::nullopt;
}

std::optional<endpoint_match> classify_anthropic(std::string_view path) {
  if (path == "/v1/messages") return endpoint_match{endpoint_kind::anthropic_messages, {}, false};
  if (path == "/v1/messages/count_tokens") {
    return endpoint_match{endpoint_kind::anthropic_count_tokens, {}, false};
  }
  if (path == "/v1/models" || (path.starts_with("/v1/models/") && is_models_path(path))) {
    return endpoint_match{endpoint_kind::model_info, {}, false};
  }
  return std::nullopt;
}

// /v1beta/models/M:method, /v1/models/M:method, /v1beta/tunedModels/M:method
std::optional<endpoint_match> classify_gemini(std::string_view path, std::string_view query) {
  auto colon = path.rfind(':');
  if (colon == std::string_view::npos) {
    if (is_models_path(path)) return endpoint_match{endpoint_kind::model_info, {}, false};
    return std::nullopt;
  }
  auto method = path.substr(colon + 1);
  auto resource = path.substr(0, colon);
  auto slash = resource.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto collection = resource.substr(0, slash);
  if (!collection.ends_with("/models") && !collection.ends_with("/tunedModels")) return std::nullopt;
  std::string model(resource.substr(slash + 1));
  if (model.empty()) return std::nullopt;
  endpoint_match m{endpoint_kind::gemini_generate, std::move(model), query_has(query, "alt=sse")};
  if (method == "generateContent") {
    m.kind = endpoint_kind::gemini_generate;
  } else if (method == "streamGenerateContent") {
    m.kind = endpoint_kind::gemini_stream_generate;
  } else if (method == "countTokens") {
    m.kind = endpoint_kind::gemini_count_tokens;
  } else if (method == "embedContent") {
    m.kind = endpoint_kind::gemini_embed;
  } else if (method == "batchEmbedContents") {
    m.kind = endpoint_kind::gemini_batch_embed;
  } else {
    return std::nullopt;
  }
  return m;
}

}  // namespace

std::string_view to_string(endpoint_kind k) noexcept {
  switch (k) {
    case endpoint_kind::openai_chat: return "openai_chat";
    case endpoint_kind::openai_responses: return "openai_responses";
    case endpoint_kind::openai_embeddings: return "openai_embeddings";
    case endpoint_kind::anthropic_messages: return "anthropic_messages";
    case endpoint_kind::anthropic_count_tokens: return "anthropic_count_tokens";
    case endpoint_kind::gemini_generate: return "gemini_generate";
    case endpoint_kind::gemini_stream_generate: return "gemini_stream_generate";
    case endpoint_kind::gemini_count_tokens: return "gemini_count_tokens";
    case endpoint_kind::gemini_embed: return "gemini_embed";
    case endpoint_kind::gemini_batch_embed: return "gemini_batch_embed";
    case endpoint_kind::model_info: return "model_info";
  }
  return "model_info";
}

std::optional<endpoint_match> classify_endpoint(dialect d, std::string_view target) {
  auto [path, query] = split_query(target);
  switch (d) {
    case dialect::openai: return classify_openai(path);
    case dialect::anthropic: return classify_anthropic(path);
    case dialect::gemini: return classify_gemini(path, query);
  }
  return std::nullopt;
}

}  // namespace customs::daemon
