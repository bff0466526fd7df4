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
// Decisions:
//   - `name` fields (message participant names, tool and function names) are
//     identifiers constrained by the APIs (e.g. ^[a-zA-Z0-9_-]{1,64}$), not prose:
//     they are not extracted, and a redaction could not be written back into them.
//   - Object keys of tool arguments / inputs are not extracted (identifiers).
//   - A content part, block or item of a type not listed above is an error
//     (unknown_part_type): text a codec does not understand is never skipped.
//   - Fields that are configuration rather than conversation are not extracted:
//     metadata, user, response_format / text.format schemas, stop sequences.
//   - Duplicate object keys: the last one wins, as in the providers' parsers, so
//     the text scanned is the text the provider reads.
//   - Inline text/* files (Gemini inlineData, OpenAI file_data) are base64 and are
//     counted as documents, not decoded and scanned.

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
  request_extraction(request_extraction&&) = default;
  request_extraction& operator=(request_extraction&&) = default;
  // Slots point into `document`: a copy would point into the original.
  request_extraction(const request_extraction&) = delete;
  request_extraction& operator=(const request_extraction&) = delete;
};

// `path` is the upstream path including the query; `body` the complete request
// body. Errors: unknown_endpoint, malformed_json, not_an_object, unexpected_shape,
// unknown_part_type (each with the JSON pointer where it happened).
[[nodiscard]] codec_result<request_extraction> extract_request(dialect d, std::string_view path,
                                                               std::string_view body);

// The body with the named slots' texts replaced, as valid JSON (see
// rewrite_document for what "identical" means). The extraction's document and
// slot texts are updated in place, so they describe what is forwarded.
[[nodiscard]] codec_result<std::string> rewrite_request(request_extraction& extraction,
                                                        std::span<const text_replacement> changes);

}  // namespace customs::daemon
