#pragma once
// Streamed responses: one stream_codec per flow decodes each server-sent event
// (already framed by the SSE layer: event name and data string) into text slots
// on channels, and re-encodes an event whose texts the policy layer replaced.
//
// Channels: a channel is one continuous text the client reassembles from deltas.
// The scanner keeps one hold-back window per channel. Keys:
//   OpenAI chat     "c<choice>"            delta.content
//                   "c<choice>.r"          delta.refusal
//                   "c<choice>.rs"         delta.reasoning_content / delta.reasoning
//                                          (OpenAI-compatible reasoning models)
//                   "c<choice>.t<index>"   delta.tool_calls[index].function.arguments
//                                          (or .custom.input)
//                   "c<choice>.t<index>.n" the tool's name (a whole text: opens and
//                                          closes in the event that carries it)
//                   "c<choice>.f"          delta.function_call.arguments (deprecated)
//                   "c<choice>.f.n"        delta.function_call.name (whole)
//                   "c<choice>.a"          delta.audio.transcript
//   Responses API   "o<output>.c<content>" output_text, refusal and reasoning_text parts
//                   "o<output>.s<summary>" reasoning summary text
//                   "o<output>"            function_call arguments, custom_tool_call input
//                   "o<output>.n"          the tool's name: an aggregate slot (scanned whole)
//   Anthropic       "b<index>"             content block: text_delta.text,
//                                          input_json_delta.partial_json, thinking_delta.thinking
//                   "b<index>.n", "b<index>.l<k>"  a tool_use block's name and the string
//                                          leaves of an input present at its start (whole)
//   Gemini          "c<candidate>"         text parts
//                   "c<candidate>.th"      thought text parts
//                   "c<candidate>.p<n>.l<k>"  string leaf k of the n-th whole part
//                                          (functionCall args, executableCode,
//                                          codeExecutionResult) of the candidate in
//                                          this flow; such a part arrives whole, so
//                                          its channels open and close in one event
//                   "c<candidate>.p<n>.n"  the name of a functionCall part (whole)
//   Provider error events carry every string of their data as `error` slots on
//   channel "err" (kind error): the caller scans them whole.
//
// Contract for the caller, per event:
//   1. Feed each non-aggregate slot's text to its channel's scanner, in slot order.
//   2. For each channel in `closes`: finish its scanner. If this same event has a
//      slot on that channel, append the flushed text to that slot's replacement;
//      otherwise emit make_delta(channel, flushed) right BEFORE this event.
//   3. Replace each aggregate slot with the full text released on its channel
//      (the caller keeps it; an aggregate for a channel it never saw deltas for
//      is scanned as a whole text instead).
//   4. If any slot's text changed, forward encode(event, changes) instead of the
//      original data; otherwise forward the original bytes untouched.
//   end_marker: before forwarding it, close every channel still open (closes
//   lists them). Gemini has no end marker: at the end of the body call
//   open_channels() and flush those the same way.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "daemon/dialect/codec_error.hpp"
#include "daemon/dialect/dialect.hpp"
#include "daemon/dialect/endpoint.hpp"
#include "daemon/dialect/text_slot.hpp"

namespace customs::daemon {

enum class event_kind {
  content,     // carries text slots (deltas and/or aggregates); may carry usage and closes
  usage_only,  // carries usage and no text (OpenAI usage chunk, Anthropic message_start
               // and message_delta, Gemini chunk with only usageMetadata)
  end_marker,  // the normal end of the stream: OpenAI "[DONE]", Anthropic message_stop,
               // Responses response.completed / response.incomplete (these two carry
               // aggregate slots and usage too). Never forward one after a block.
  error,       // a provider error event: OpenAI/Gemini {"error":...}, Anthropic
               // event "error", Responses "error" and response.failed
  other,       // no text: ping, response.created, content_block_start of a tool, ...
  unknown,     // an event type this codec does not know; no slots were read from it.
               // The caller decides (forwarding it unscanned, or cutting the stream).
};

[[nodiscard]] std::string_view to_string(event_kind k) noexcept;

struct stream_event {
  event_kind kind = event_kind::other;
  std::vector<text_slot> slots;  // text_slot::channel set
  // Channels that close at this event, after its slots: OpenAI finish_reason,
  // Anthropic content_block_stop, Responses *.done / output_item.done, Gemini
  // finishReason, and every open channel at an end marker.
  std::vector<std::string> closes;
  token_usage usage;       // usage reported by this event (cumulative, see token_usage)
  media_counts non_text;   // non-text parts in this event (Gemini inline images, ...)
  // The event carries token log-probabilities: they repeat generated tokens
  // outside the slots, so a redaction does not reach them.
  bool has_logprobs = false;
  // The data repeated an object key: the slots are those of the last value of
  // each key (see json_walk.hpp). Forward encode(event, changes) even without
  // changes, never the original bytes, so that the client reads what was scanned.
  bool duplicate_keys = false;
  boost::json::value document;  // the parsed data; null for "[DONE]"

  stream_event() = default;
  // With the storage the document is to be parsed into (document_storage()).
  explicit stream_event(boost::json::storage_ptr sp) : document(std::move(sp)) {}
  stream_event(stream_event&&) = default;
  // Not assignable: each event's document has its own storage, and a
  // json::value moved into another storage is copied, which would leave the
  // slots pointing into the source.
  stream_event& operator=(stream_event&&) = delete;
  stream_event(const stream_event&) = delete;
  stream_event& operator=(const stream_event&) = delete;
};

// A complete event to emit: `name` empty means no "event:" line (OpenAI chat, Gemini).
struct sse_event {
  std::string name;
  std::string data;
};

namespace detail {
class stream_codec_impl;
}

class stream_codec {
 public:
  // Fails with not_streamed for endpoints without a streamed form, and
  // unknown_endpoint for an endpoint of another dialect.
  [[nodiscard]] static codec_result<stream_codec> create(dialect d, endpoint_kind endpoint);

  stream_codec(stream_codec&&) noexcept;
  stream_codec& operator=(stream_codec&&) noexcept;
  ~stream_codec();

  // Decodes one event. Errors: malformed_json / not_an_object (the data is not a
  // JSON object), unexpected_shape (a known event with a shape its API does not
  // send), too_many_channels (more than max_channels in one flow).
  [[nodiscard]] codec_result<stream_event> decode(std::string_view event_name, std::string_view data);

  // The event's data with the named slots' texts replaced: valid JSON, every
  // other field kept (not byte-identical: whitespace is dropped, doubles are
  // reprinted). Call it only when a text changed; unchanged events are best
  // forwarded as they came.
  [[nodiscard]] codec_result<std::string> encode(stream_event& event,
                                                 std::span<const text_replacement> changes) const;

  // A new event carrying `text` as a delta on `channel`, shaped like the deltas
  // this flow has seen on it (same ids, indices and envelope, as the SDKs expect).
  // Responses API: it repeats the sequence_number of the last event seen on the
  // channel. Errors: unknown_channel (no delta seen on it; whole-part leaf
  // channels such as Gemini "c0.p0.l0" are never deltas), no_delta_form (the
  // channel was only seen in a form no delta event carries).
  [[nodiscard]] codec_result<sse_event> make_delta(std::string_view channel, std::string_view text) const;

  // Channels that have opened and not closed, in the order they opened.
  [[nodiscard]] std::vector<std::string> open_channels() const;

  // Channels a flow may open; past it decode fails (bounds per-flow memory).
  static constexpr std::size_t max_channels = 4096;

 private:
  explicit stream_codec(std::unique_ptr<detail::stream_codec_impl> impl);
  std::unique_ptr<detail::stream_codec_impl> impl_;
};

}  // namespace customs::daemon
