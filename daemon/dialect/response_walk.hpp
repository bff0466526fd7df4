#pragma once
// Internal to the dialect codecs: walkers and usage readers shared by the
// non-streamed response extraction and the stream codecs.

#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/dialect/json_walk.hpp"

namespace customs::daemon::detail {

// Channel keys (see stream_codec.hpp): prefix + number, e.g. "c0", "o1.c0".
[[nodiscard]] std::string channel_key(std::string_view a, std::uint64_t i);
[[nodiscard]] std::string channel_key(std::string_view a, std::uint64_t i, std::string_view b,
                                      std::uint64_t j);

// Usage objects of each provider (nullptr or non-object: empty usage).
[[nodiscard]] token_usage openai_usage(const json::value* usage) noexcept;
[[nodiscard]] token_usage anthropic_usage(const json::value* usage) noexcept;
[[nodiscard]] token_usage gemini_usage(const json::value* usage_metadata) noexcept;

// One Responses API output item at output index `oi`: slots on channels
// "o<oi>.c<j>" (message / reasoning content parts), "o<oi>.s<k>" (reasoning
// summaries), "o<oi>" (function_call arguments, custom_tool_call input).
void walk_responses_item(walker& w, json::object& item, std::uint64_t oi, bool aggregate);
// response.output[] of a Response object.
void walk_responses_output(walker& w, json::object& response, bool aggregate);

// One Anthropic content block of a response: text, thinking, tool_use /
// server_tool_use / mcp_tool_use input leaves, web_search_tool_result titles;
// redacted_thinking, encrypted results and unknown blocks count as opaque.
void walk_anthropic_block(walker& w, json::object& block, const std::string& channel);
// Anthropic content blocks of a Message (channel "b<i>").
void walk_anthropic_message_content(walker& w, json::object& message);

}  // namespace customs::daemon::detail
