#pragma once
// Which API endpoint an upstream request path names, per dialect.

#include <optional>
#include <string>
#include <string_view>

#include "daemon/dialect/dialect.hpp"

namespace customs::daemon {

enum class endpoint_kind {
  openai_chat,             // POST .../chat/completions
  openai_responses,        // POST .../responses
  openai_embeddings,       // POST .../embeddings
  anthropic_messages,      // POST /v1/messages
  anthropic_count_tokens,  // POST /v1/messages/count_tokens
  gemini_generate,         // POST /v1beta/models/M:generateContent
  gemini_stream_generate,  // POST /v1beta/models/M:streamGenerateContent[?alt=sse]
  gemini_count_tokens,     // POST /v1beta/models/M:countTokens
  gemini_embed,            // POST /v1beta/models/M:embedContent
  gemini_batch_embed,      // POST /v1beta/models/M:batchEmbedContents
  model_info,              // GET model listings and lookups: carry no outbound text
};

[[nodiscard]] std::string_view to_string(endpoint_kind k) noexcept;

// How the response to a request is framed.
enum class response_framing {
  json,        // one JSON document
  sse,         // server-sent events: decode them with a stream_codec
  json_array,  // Gemini streamGenerateContent without alt=sse: a JSON array of
               // GenerateContentResponse objects, sent progressively; it is
               // handled as one document by extract_response
};

struct endpoint_match {
  endpoint_kind kind;
  std::string model;  // Gemini: from the path ("gemini-2.0-flash"); others: empty
  bool alt_sse = false;  // Gemini: the query asks for alt=sse
};

// Classifies an upstream path (route prefix already replaced, query included).
// OpenAI endpoints are matched by path suffix, so that /v1/chat/completions and
// deployment-style paths (/openai/deployments/D/chat/completions) both match.
// Anything else is nullopt: the caller treats the request as unscannable.
[[nodiscard]] std::optional<endpoint_match> classify_endpoint(dialect d, std::string_view path);

}  // namespace customs::daemon
