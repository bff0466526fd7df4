#pragma once
// Internal to the dialect codecs: the per-flow channel table and the interface
// of the per-dialect stream codecs.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/dialect/json_walk.hpp"
#include "daemon/dialect/stream_codec.hpp"

namespace customs::daemon::detail {

// What a channel carries, so that make_delta can build the matching delta event.
enum class delta_form : std::uint8_t {
  none,             // no delta event can carry this channel's text
  chat_content,     // OpenAI chat delta.content
  chat_refusal,     // delta.refusal
  chat_reasoning,   // delta.<field> (reasoning_content or reasoning)
  chat_tool,        // delta.tool_calls[{index: sub, function: {arguments}}]
  chat_custom_tool, // delta.tool_calls[{index: sub, custom: {input}}]
  chat_function,    // delta.function_call.arguments
  chat_audio,       // delta.audio.transcript
  resp_output_text,     // response.output_text.delta (content_index = sub)
  resp_refusal,         // response.refusal.delta
  resp_reasoning_text,  // response.reasoning_text.delta
  resp_summary_text,    // response.reasoning_summary_text.delta (summary_index = sub)
  resp_arguments,       // response.function_call_arguments.delta
  resp_custom_input,    // response.custom_tool_call_input.delta
  anth_text,        // content_block_delta text_delta
  anth_input_json,  // content_block_delta input_json_delta
  anth_thinking,    // content_block_delta thinking_delta
  gem_text,         // Gemini text part
  gem_thought,      // Gemini text part with thought: true
};

struct channel_state {
  std::string key;
  std::uint64_t owner = 0;  // choice / output item / candidate whose end closes it
  std::uint64_t sub = 0;    // tool call, content or summary index, per form
  delta_form form = delta_form::none;
  bool open = true;
  std::string field;        // chat_reasoning: the delta field name; Responses: item_id
  std::int64_t sequence_number = 0;  // Responses: of the last event seen on the channel
};

class channel_table {
 public:
  // The channel `key`, opened (with owner/form) if new; a closed channel that
  // shows up again reopens. nullptr when the table is full.
  channel_state* touch(std::string_view key, std::uint64_t owner, delta_form form);
  [[nodiscard]] const channel_state* find(std::string_view key) const;
  // Appends to `closes` the channels that were open and are now closed.
  void close(std::string_view key, std::vector<std::string>& closes);
  void close_owner(std::uint64_t owner, std::vector<std::string>& closes);
  void close_all(std::vector<std::string>& closes);
  [[nodiscard]] std::vector<std::string> open_keys() const;

 private:
  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::vector<channel_state> channels_;  // in opening order
  std::unordered_map<std::string, std::size_t, key_hash, std::equal_to<>> index_;
};

class stream_codec_impl {
 public:
  virtual ~stream_codec_impl() = default;
  [[nodiscard]] virtual codec_result<stream_event> decode(std::string_view name, std::string_view data) = 0;
  [[nodiscard]] virtual codec_result<sse_event> make_delta(const channel_state& ch,
                                                           std::string_view text) const = 0;

  channel_table channels;

 protected:
  // Parses event data into ev.document, which must be an object (a repeated key
  // sets ev.duplicate_keys).
  [[nodiscard]] codec_result<json::object*> parse_object(stream_event& ev, std::string_view data);
  // OpenAI streams end with "data: [DONE]". True when `data` is that marker;
  // `ev` is then the end marker, closing every open channel.
  [[nodiscard]] bool take_done_marker(stream_event& ev, std::string_view data);
  // A delta slot on `key` (opening it); nullptr when the channel table is full.
  [[nodiscard]] channel_state* add_slot(stream_event& ev, json::string& s, slot_role role,
                                        std::string_view key, std::uint64_t owner, delta_form form);
  // A text that arrives whole (a tool's name) on its own channel `key`, which
  // opens and closes in this event; false when the channel table is full.
  [[nodiscard]] bool add_whole_slot(stream_event& ev, json::string& s, slot_role role, std::string_view key,
                                    std::uint64_t owner);
  // A provider error event: kind error, and every string of its data as an
  // `error` slot (channel "err"); the caller scans them whole.
  static void error_event(stream_event& ev);

 private:
  json_parser parser_;
};

[[nodiscard]] std::unique_ptr<stream_codec_impl> make_openai_chat_codec();
[[nodiscard]] std::unique_ptr<stream_codec_impl> make_openai_responses_codec();
[[nodiscard]] std::unique_ptr<stream_codec_impl> make_anthropic_codec();
[[nodiscard]] std::unique_ptr<stream_codec_impl> make_gemini_codec();

// Sets ev.kind from what was found when the dialect did not decide otherwise:
// content if there are slots, usage_only if there is usage, else other.
void settle_kind(stream_event& ev) noexcept;

// The number at the end of a channel key this codec built ("o1.c2" -> 2).
[[nodiscard]] inline std::uint64_t trailing_index(std::string_view key) noexcept {
  std::uint64_t v = 0;
  std::uint64_t scale = 1;
  while (!key.empty() && key.back() >= '0' && key.back() <= '9') {
    v += static_cast<std::uint64_t>(key.back() - '0') * scale;
    scale *= 10;
    key.remove_suffix(1);
  }
  return v;
}

[[nodiscard]] inline codec_error too_many_channels() {
  return codec_error{codec_errc::too_many_channels, {}};
}

}  // namespace customs::daemon::detail
