#pragma once
// What the dialect codecs hand to the policy layer: text slots (a piece of text
// and where it sits in a parsed JSON document, so that it can be replaced),
// counts of non-text parts, and token usage.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include "daemon/dialect/codec_error.hpp"

namespace customs::daemon {

// What kind of text a slot holds. Rules may treat them alike; the audit records it.
enum class slot_role : std::uint8_t {
  prose,            // message text, instructions, tool results, document text
  tool_arguments,   // a JSON document carried as a string (OpenAI function arguments,
                    // Anthropic input_json_delta fragments); scanned as raw JSON text
  structured_leaf,  // one string leaf of a structured object (Anthropic tool_use input,
                    // Gemini functionCall args / functionResponse response)
  tool_definition,  // a "description" in a tool definition or its parameter schema
  reasoning,        // reasoning / thinking text or summaries
  refusal,          // a model refusal
  // Requests: every other text, so that nothing leaves unread.
  field,            // a string of a field the codec does not read as conversation
                    // (metadata, user, stop sequences, response_format and tool
                    // schemas, unknown fields, URLs)
  identifier,       // a string the API constrains to an identifier (name, model,
                    // ids, type and role values, media types, request options
                    // such as include[] entries): a redaction cannot be written
                    // into it
  key,              // the body's object keys: one slot, each distinct key on a line
  number,           // the body's number literals as sent, one slot, separated by ", "
  attachment,       // text decoded from an inline file (a data: URL or base64)
  target,           // the request target's path and query, percent-decoded
  header,           // request header fields other than credentials, "name: value" lines
  // Responses: texts around the conversation.
  tool_name,        // the name of a tool the model calls
  error,            // a string of a provider error (body or stream event)
};

[[nodiscard]] std::string_view to_string(slot_role r) noexcept;

// How a slot's replacement is written back.
enum class slot_form : std::uint8_t {
  json_string,  // `target` is the text itself
  base64,       // `target` holds the text base64-encoded: the replacement is re-encoded
  data_url,     // `target` is a data: URL of the text: the replacement is written as
                // "data:<the same media type and parameters>;base64,<base64>"
  fixed,        // nothing can take a replacement (identifiers, object keys, the
                // request target, headers): a redaction there blocks the request
};

// One piece of text inside a parsed JSON document (or, for requests, decoded
// from one of its strings, or read from the request line and headers).
//
// `text` views the document's own string (unescaped UTF-8) and `target` is that
// string; both stay valid while the owning extraction or event lives (moving the
// owner keeps them valid: object and array storage does not move with it). A
// decoded or synthesised text lives in `owned` instead (target, when set, is the
// string it came from).
struct text_slot {
  std::string_view text;
  slot_role role = slot_role::prose;
  // Stream events only: the text repeats the channel's FULL text so far
  // (Responses API *.done / response.completed). The caller replaces it with the
  // full text it released for `channel`, not with the scan of this text.
  bool aggregate = false;
  // Requests and non-streamed responses: RFC 6901 JSON pointer of the string
  // (e.g. "/messages/2/content/0/text"). Stream events: empty for deltas (hot
  // path); set for texts read from whole objects (Responses aggregates).
  std::string where;
  // Stream events only: the channel this text belongs to (see stream_codec.hpp).
  std::string channel;
  boost::json::string* target = nullptr;
  slot_form form = slot_form::json_string;
  std::shared_ptr<std::string> owned;  // the text, when it is not the target's own
  // base64 / data_url: the media type and parameters to write back.
  std::string media_type;
  // base64 / data_url: where the encoded text starts in the target (0 for
  // base64; past the comma for a data: URL). Only the target's bytes from here
  // on are rewritten from the text: the media type and parameters before it
  // are written back as they were.
  std::size_t payload = 0;

  // Whether a replacement can be written (rewrite_document accepts it).
  [[nodiscard]] bool writable() const noexcept { return target != nullptr && form != slot_form::fixed; }
};

// A replacement for slot number `slot` of an extraction or event. Slots not named
// keep their text. The new text is stored as the JSON string (so a tool-arguments
// slot stays a JSON-encoded string and a structured leaf stays a string leaf).
struct text_replacement {
  std::size_t slot = 0;
  std::string_view text;
};

// Non-text parts, counted by kind so that rules can act on them
// ("no file uploads to this destination").
enum class media_kind : std::uint8_t {
  image,     // image_url, input_image, Anthropic image, Gemini image/* data
  audio,     // input_audio, audio/* data, assistant audio references
  video,     // video/* data
  file,      // files and uploads of other or unknown types
  document,  // PDFs and other documents (Anthropic document, application/pdf, text/* data)
  tokens,    // pre-tokenised input (embeddings token arrays): one per array
  opaque,    // encrypted or unknown content (redacted_thinking, encrypted_content,
             // unknown response items): present but not readable
};
inline constexpr std::size_t media_kind_count = 7;

[[nodiscard]] std::string_view to_string(media_kind k) noexcept;

struct media_counts {
  std::array<std::uint32_t, media_kind_count> count{};

  void add(media_kind k, std::uint32_t n = 1) noexcept {
    count[static_cast<std::size_t>(k)] += n;
  }
  [[nodiscard]] std::uint32_t operator[](media_kind k) const noexcept {
    return count[static_cast<std::size_t>(k)];
  }
  [[nodiscard]] std::uint64_t total() const noexcept {
    std::uint64_t t = 0;
    for (auto c : count) t += c;
    return t;
  }
};

// Token usage reported by the provider. Values are cumulative as the provider
// reports them: a later report of a field supersedes an earlier one; a field a
// report does not carry stays nullopt (merge() keeps the earlier value).
//   input_tokens:  OpenAI prompt_tokens / input_tokens; Anthropic input_tokens +
//                  cache_creation_input_tokens + cache_read_input_tokens;
//                  Gemini promptTokenCount (count_tokens endpoints: the count).
//   output_tokens: OpenAI completion_tokens / output_tokens; Anthropic output_tokens;
//                  Gemini candidatesTokenCount + thoughtsTokenCount.
struct token_usage {
  std::optional<std::uint64_t> input_tokens;
  std::optional<std::uint64_t> output_tokens;

  [[nodiscard]] bool empty() const noexcept { return !input_tokens && !output_tokens; }
  void merge(const token_usage& later) noexcept {
    if (later.input_tokens) input_tokens = later.input_tokens;
    if (later.output_tokens) output_tokens = later.output_tokens;
  }
};

// Applies `changes` to the slots' strings inside `doc` (each slot's text view is
// refreshed to the new text; base64 and data: URL slots are re-encoded) and
// serialises the document. A change to a slot that is not writable() fails with
// slot_not_writable, leaving everything as it was. The result is valid
// JSON equal to the original after parsing except for the replaced strings; it is
// not byte-identical (whitespace is dropped, doubles are printed as e.g. 7E-1).
[[nodiscard]] codec_result<std::string> rewrite_document(const boost::json::value& doc,
                                                         std::vector<text_slot>& slots,
                                                         std::span<const text_replacement> changes);

}  // namespace customs::daemon
