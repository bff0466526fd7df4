#pragma once
// Request side of the dialect codecs: find every piece of outbound text in a
// request body (and count the non-text parts), and rewrite the body with
// replaced texts. Pure: no networking, never throws on input.
//
// What is extracted, per endpoint (every slot's JSON pointer is in text_slot::where):
//   openai_chat        messages[].content (string, or text / refusal parts),
//                      messages[].refusal, messages[].reasoning_content,
//                      messages[].tool_calls[].function.arguments (one tool_arguments
//                      slot: the JSON string as text), tool_calls[].custom.input,
//                      messages[].function_call.arguments, prediction.content,
//                      tools[] / functions[] descriptions (tool_definition).
//                      Parts image_url, input_audio, file count as media; an
//                      assistant "audio" reference counts as audio.
//   openai_responses   instructions; input (string, or items: messages with
//                      input_text / output_text / refusal parts, function_call
//                      arguments, function_call_output output, custom_tool_call
//                      input and output, reasoning summary / content text);
//                      prompt.variables string leaves; tools[] descriptions.
//                      input_image, input_file, input_audio count as media;
//                      reasoning encrypted_content counts as opaque.
//   openai_embeddings  input (string or array of strings); token arrays count as
//                      media "tokens", one per array.
//   anthropic_messages system (string or text blocks); messages[].content (string
//   anthropic_count_tokens  or blocks): text (+ citations[].cited_text), thinking,
//                      tool_use / server_tool_use / mcp_tool_use input string
//                      leaves, tool_result / mcp_tool_result content (string or
//                      blocks), document text sources (source.type text/content)
//                      and title/context, search_result title and content,
//                      web_search_tool_result titles; tools[] descriptions.
//                      image, document (base64/url/file), container_upload count
//                      as media; redacted_thinking and encrypted search results
//                      as opaque.
//   gemini_*           contents[].parts[] and systemInstruction parts: text (thought
//                      parts as reasoning), functionCall args and functionResponse
//                      response string leaves, executableCode code,
//                      codeExecutionResult output; embedContent content and title;
//                      batchEmbedContents requests[]; countTokens contents or
//                      generateContentRequest; tools[].functionDeclarations
//                      descriptions. inlineData / fileData count as media by MIME
//                      type (image/ audio/ video/, application/pdf and text/ as
//                      document, others as file). camelCase and snake_case field
//                      names are both accepted, as the REST API does.
//   model_info         no text; the body must be empty.
//
// Everything else is scanned too: every string of the body that the lines above
// do not name becomes a slot of its own (see json_walk.hpp's sweep): role
// `field` (metadata, user, stop sequences, response_format and tool schemas
// with their enum values, titles and examples, unknown fields, URLs), or
// `identifier` for values the APIs constrain (under
// the keys name, model, id, type, role, object, mimeType / mime_type /
// media_type, and any key ending in "_id" or "Id"). All object keys of the body
// go into one `key` slot (each distinct key on a line). Every number of the
// body goes, as the text spells it (the provider receives that literal: an ID
// written as a number is its digits), into one `number` slot, the literals
// separated by ", " so that two numbers never read as one. Outside the body: the
// request target (path percent-decoded, then each query parameter as
// "name=value", percent-decoded, on a line; a Gemini model name is in the path)
// is a `target` slot, and the header fields are a `header` slot ("name: value"
// lines). Credentials are never scanned, recorded or compared: the header
// fields Authorization, Proxy-Authorization, Cookie, x-api-key, api-key and
// x-goog-api-key, and the query parameters key, api_key, api-key, apikey,
// access_token, token, sig and signature.
//
// Inline files: data: URLs (in image, audio and file parts, and anywhere else
// in the body), Anthropic base64 sources, Gemini inlineData, OpenAI file_data
// and input_audio data are decoded when their media type is textual (text/*,
// JSON, XML, YAML, CSV, ...; see blob.hpp) or their first KiB looks like text
// whatever it claims; the text becomes an `attachment` slot. A redaction in it
// is re-encoded (base64, or a base64 data: URL with the same media type). The
// decoded text of a body is bounded (request_options::max_decoded_text, past
// it: too_much_text); a declared text that does not decode to UTF-8 fails with
// undecodable_text. Other media is still counted (media_counts) and its string
// is scanned as it is, as every string is.
//
// Decision table: what a redaction does, per slot form (text_slot::form):
//   json_string  the string is replaced (conversation texts, fields)
//   base64,      the decoded text is redacted and re-encoded
//   data_url
//   fixed        nothing can take a replacement (identifiers such as message
//                and tool `name`s, which the APIs constrain to patterns like
//                ^[a-zA-Z0-9_-]{1,64}$; object keys; numbers (a string
//                in their place would change the request); the target; headers; the
//                encoded string of an inline text file): a finding there whose
//                action is redact blocks the request (451, customs_blocked).
//
// Other decisions:
//   - Object keys of tool arguments / inputs are in the key slot, not slots of
//     their own (identifiers; a finding there blocks rather than redacts).
//   - A content part, block or item of a type not listed above is an error
//     (unknown_part_type): text a codec does not understand is never skipped.
//   - A body that repeats an object key anywhere fails with duplicate_key (at the
//     pointer of the second occurrence): parsers disagree on which value counts,
//     so the text scanned could differ from the text the provider reads.
//   - A Gemini part that names two of its members (text and inlineData, or a
//     field under both spellings) is read under every name present.
//
// Slot order: the dialect's own slots in conversation order, then the swept
// fields in document order, the key slot, the number slot, the target slot,
// the header slot.

#include <span>
#include <memory>
#include <string>
#include <type_traits>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>

#include "daemon/dialect/codec_error.hpp"
#include "daemon/dialect/dialect.hpp"
#include "daemon/dialect/endpoint.hpp"
#include "daemon/dialect/text_slot.hpp"

namespace customs::daemon {

struct request_extraction {
  endpoint_kind endpoint = endpoint_kind::model_info;
  // True when the response will be streamed: the body's "stream": true (OpenAI,
  // Anthropic) or the :streamGenerateContent method (Gemini).
  bool stream = false;
  response_framing framing = response_framing::json;
  std::string model;  // body "model", or the model in a Gemini path
  // OpenAI chat: stream_options.include_usage. Responses, Anthropic and Gemini
  // always report usage, so this stays false for them.
  bool include_usage = false;
  // The request asks for token log-probabilities (OpenAI logprobs / top_logprobs /
  // include message.output_text.logprobs, Gemini responseLogprobs). Log-probs echo
  // the generated tokens outside the text slots of the response.
  bool logprobs_requested = false;
  std::vector<text_slot> slots;
  media_counts non_text;
  // The parsed body; the slots point into it. Empty for model_info.
  boost::json::value document;

  request_extraction() = default;
  // With the storage the document is to be parsed into (document_storage()).
  explicit request_extraction(boost::json::storage_ptr sp) : document(std::move(sp)) {}
  request_extraction(request_extraction&&) = default;
  // Assigned by taking the other's place: a json::value move-assigned into
  // another storage is copied, which would leave the slots pointing into the
  // source; move construction takes the storage along.
  request_extraction& operator=(request_extraction&& other) noexcept {
    if (this != &other) {
      std::destroy_at(this);
      std::construct_at(this, std::move(other));
    }
    return *this;
  }
  // Slots point into `document`: a copy would point into the original.
  request_extraction(const request_extraction&) = delete;
  request_extraction& operator=(const request_extraction&) = delete;
};
static_assert(std::is_nothrow_move_constructible_v<request_extraction>);  // operator= relies on it

// Decoded text of inline files a request body may carry in all.
inline constexpr std::size_t default_max_decoded_text = 8u << 20;

struct request_options {
  // The request's header fields (name, value) as received; credentials are left
  // out (see above). Empty: no header slot.
  std::span<const std::pair<std::string_view, std::string_view>> headers;
  // Without it no target slot is made (codec tests of the body alone).
  bool scan_target = true;
  std::size_t max_decoded_text = default_max_decoded_text;
};

// Whether a header field (by name, any case) or a query parameter is a
// credential, never scanned.
[[nodiscard]] bool credential_header(std::string_view name) noexcept;
[[nodiscard]] bool credential_parameter(std::string_view name) noexcept;

// `path` is the upstream path including the query; `body` the complete request
// body. Errors: unknown_endpoint, malformed_json, duplicate_key, not_an_object,
// unexpected_shape, unknown_part_type, undecodable_text, too_much_text (each
// with the JSON pointer where it happened).
[[nodiscard]] codec_result<request_extraction> extract_request(dialect d, std::string_view path,
                                                               std::string_view body,
                                                               const request_options& options = {});

// The body with the named slots' texts replaced, as valid JSON (see
// rewrite_document for what "identical" means). The extraction's document and
// slot texts are updated in place, so they describe what is forwarded.
[[nodiscard]] codec_result<std::string> rewrite_request(request_extraction& extraction,
                                                        std::span<const text_replacement> changes);

}  // namespace customs::daemon
