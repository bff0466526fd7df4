#pragma once
// Non-streamed responses: find every piece of inbound text (and the token usage)
// in a complete response body, and rewrite it with replaced texts.
//
//   openai_chat        choices[].message: content (string or text parts), refusal,
//                      reasoning_content, tool_calls[].function.arguments /
//                      custom.input, function_call.arguments, audio.transcript
//   openai_responses   output[] items: message output_text / refusal parts,
//                      function_call arguments, custom_tool_call input, reasoning
//                      summary / content text; image_generation_call counts as an
//                      image, other item types (web_search_call, file_search_call,
//                      computer_call, mcp_*, ...) as opaque
//   anthropic_messages content[]: text, thinking, tool_use / server_tool_use /
//                      mcp_tool_use input string leaves, web_search_tool_result
//                      titles; redacted_thinking and unknown blocks count as opaque
//   gemini_generate    candidates[].content.parts[]: text (thought parts as
//   gemini_stream_generate  reasoning), functionCall args leaves, executableCode,
//                      codeExecutionResult; inlineData / fileData as media; unknown
//                      parts as opaque. For streamGenerateContent without alt=sse the
//                      body is a JSON array of such objects.
//   embeddings, count_tokens, model_info: no text; usage where reported.
// The names of the tools the model calls (tool_calls[].function.name, function_call
// and custom_tool_call items' name, tool_use blocks' name, functionCall.name) are
// `tool_name` slots.
// Each slot carries `where` (JSON pointer) and `channel` (the same channel keys a
// stream_codec uses, see stream_codec.hpp). Unlike requests, an unknown inbound
// part is counted as opaque rather than failing: the text that leaves the
// jurisdiction was checked on the request side; rules can act on the count.
// A provider error body ({"error": ...} / {"type":"error"}) sets provider_error
// and yields every string of the body as an `error` slot (an error may quote
// the text it refuses).

#include <span>
#include <memory>
#include <string>
#include <type_traits>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "daemon/dialect/codec_error.hpp"
#include "daemon/dialect/dialect.hpp"
#include "daemon/dialect/endpoint.hpp"
#include "daemon/dialect/text_slot.hpp"

namespace customs::daemon {

struct response_extraction {
  bool provider_error = false;
  // The body repeated an object key: the slots are those of the last value of
  // each key (see json_walk.hpp); forward rewrite_response(...) even without
  // changes, never the original bytes.
  bool duplicate_keys = false;
  std::vector<text_slot> slots;
  media_counts non_text;
  token_usage usage;
  boost::json::value document;  // the parsed body; the slots point into it

  response_extraction() = default;
  // With the storage the document is to be parsed into (document_storage()).
  explicit response_extraction(boost::json::storage_ptr sp) : document(std::move(sp)) {}
  response_extraction(response_extraction&&) = default;
  // Assigned by taking the other's place: a json::value move-assigned into
  // another storage is copied, which would leave the slots pointing into the
  // source; move construction takes the storage along.
  response_extraction& operator=(response_extraction&& other) noexcept {
    if (this != &other) {
      std::destroy_at(this);
      std::construct_at(this, std::move(other));
    }
    return *this;
  }
  response_extraction(const response_extraction&) = delete;
  response_extraction& operator=(const response_extraction&) = delete;
};
static_assert(std::is_nothrow_move_constructible_v<response_extraction>);  // operator= relies on it

[[nodiscard]] codec_result<response_extraction> extract_response(dialect d, endpoint_kind endpoint,
                                                                 std::string_view body);

// A body that is not a 2xx answer (a provider error of any endpoint): every
// string of the JSON body as an `error` slot; provider_error is set. Errors:
// malformed_json (the body is not JSON: the caller scans it as plain text).
[[nodiscard]] codec_result<response_extraction> extract_error_body(std::string_view body);

// The body with the named slots' texts replaced (valid JSON; see rewrite_document).
[[nodiscard]] codec_result<std::string> rewrite_response(response_extraction& extraction,
                                                         std::span<const text_replacement> changes);

}  // namespace customs::daemon
