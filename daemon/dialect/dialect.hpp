#pragma once
// The API dialects customsd speaks: how each provider family shapes its errors.
// Extraction and rewriting of request and response text per dialect live beside
// this file (daemon/dialect/).

#include <optional>
#include <string>
#include <string_view>

namespace customs::daemon {

enum class dialect { openai, anthropic, gemini };

[[nodiscard]] std::optional<dialect> parse_dialect(std::string_view s) noexcept;
[[nodiscard]] std::string_view to_string(dialect d) noexcept;

// A JSON error body in the dialect's own shape, so that official SDKs raise a
// clear API error:
//   openai:    {"error":{"message":M,"type":T,"param":null,"code":C}}
//   anthropic: {"type":"error","error":{"type":T,"message":M}}
//   gemini:    {"error":{"code":STATUS,"message":M,"status":S}}
// T and S are derived from the HTTP status; code (may be empty, then null or
// omitted) is Customs' own machine-readable reason, e.g. "customs_blocked".
[[nodiscard]] std::string error_body(dialect d, unsigned status, std::string_view message,
                                     std::string_view code = {});

// The complete SSE bytes of an event that ends a stream with an error, without
// any normal end marker:
//   openai, gemini: "data: <error_body>\n\n"
//   anthropic:      "event: error\ndata: <error_body>\n\n"
[[nodiscard]] std::string stream_error_event(dialect d, unsigned status, std::string_view message,
                                             std::string_view code = {});

}  // namespace customs::daemon
