#pragma once
// A scripted stand-in for the LLM providers Customs proxies, for tests and
// benchmarks over loopback only. It speaks HTTP/1.1 with keep-alive (plain or
// TLS) and answers in each provider's own wire format:
//
//   POST /v1/chat/completions                    OpenAI chat completions
//   POST /v1/responses                           OpenAI Responses API
//   POST /v1/embeddings                          OpenAI embeddings
//   POST /v1/messages                            Anthropic messages
//   POST /v1beta/models/{model}:generateContent  Gemini
//   POST /v1beta/models/{model}:streamGenerateContent?alt=sse
//   anything else                                404, OpenAI error shape
//
// The answer text comes from the current `script`, cut into deltas. Streamed
// answers are SSE over `Transfer-Encoding: chunked`; every SSE event is one HTTP
// chunk sent by one socket write (two chunks and two writes with split_at_byte),
// with TCP_NODELAY, so a proxy sees the provider's event boundaries (or the
// scripted split) as they would arrive from a real provider.
//
// Framing as the providers send it: OpenAI chat uses `data:` lines only and ends
// with `data: [DONE]`; the Responses API and Anthropic send an `event:` line
// equal to the data's "type" before each `data:` line and have no [DONE];
// Gemini (alt=sse) sends `data:` lines framed with CRLF ("\r\n\r\n").
// Content-Type is `text/event-stream; charset=utf-8` for OpenAI and Anthropic and
// `text/event-stream` for Gemini, as those providers answer.
//
// Requests whose JSON body does not parse get a 400 in the dialect's error shape.
// A request with a non-empty "tools" array is answered with a tool call whose
// arguments are the script text: OpenAI chat streams them as
// tool_calls[0].function.arguments deltas (finish_reason "tool_calls"); Anthropic
// as a tool_use block with input_json_delta events (stop_reason "tool_use"),
// whose non-streamed `input` is the text parsed as JSON (an object is required
// there; anything else becomes {"arguments": text}). The Responses API and
// Gemini always answer with text.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace customs::testing {

enum class fault {
  none,
  // Read the request and never answer, until the client closes the connection or
  // the provider stops.
  stall_before_headers,
  // Send the response header and `fault_after_events` events, then write nothing
  // more while keeping the connection open (until the client closes it or the
  // provider stops). Non-streamed: the header and half of the body.
  stall_mid_stream,
  // Send the response header and `fault_after_events` events, then close the
  // socket with SO_LINGER 0, so the client gets a TCP RST (no TLS close_notify,
  // no last chunk). Non-streamed: the header and half of the body.
  reset_mid_stream,
  // After `fault_after_events` events send one extra event whose data is
  // truncated JSON (e.g. `data: {"choices": [`), then the rest of the stream as
  // usual. Non-streamed: the body is truncated JSON (with a matching
  // Content-Length).
  malformed_sse,
  // Pause between events: event_interval, or 50 ms when that is zero.
  slow_events,
  // Answer with `status` and the dialect's error body, no stream.
  status_error,
};

// The behaviour of the provider for the requests that arrive after set_script.
struct script {
  std::string text = "Hello from the fake provider.";  // the answer text
  // If non-empty, the exact deltas (their concatenation is the answer; `text` is
  // then ignored). Otherwise `text` is cut into deltas of at most delta_bytes
  // bytes, never inside a UTF-8 character (a character longer than delta_bytes
  // is one delta of its own).
  std::vector<std::string> deltas;
  std::size_t delta_bytes = 8;
  fault what = fault::none;
  // For stall_mid_stream / reset_mid_stream / malformed_sse: how many events are
  // sent before the fault. Every SSE event counts (role chunk, ping, [DONE]...).
  // A number at or beyond the event count puts the fault after the last event
  // (before the terminating zero-size chunk).
  std::size_t fault_after_events = 1;
  // Pause before every event but the first (slow_events uses it; any non-zero
  // value applies to every stream).
  std::chrono::milliseconds event_interval{0};
  // Write every SSE event as two chunks (two writes) split after this byte of
  // the event, clamped to [1, event size - 1].
  std::optional<std::size_t> split_at_byte;
  unsigned status = 200;  // for status_error: the HTTP status to answer with
  // Usage reported in the dialect's own fields; completion_tokens 0 = the
  // number of deltas.
  std::uint64_t prompt_tokens = 11, completion_tokens = 0;
  std::vector<std::pair<std::string, std::string>> extra_headers;  // on every response
  // For latency measurement: every streamed event that carries a delta (and
  // every chat.completion.chunk) gets a first JSON member
  // "customs_sent_ns": <CLOCK_MONOTONIC nanoseconds at the moment of its write>.
  bool stamp_send_time = false;
};

struct recorded_request {
  std::string method, target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::size_t connection_index;  // 0-based, in order of acceptance
};

struct fake_provider_options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = the OS chooses
  std::optional<std::filesystem::path> tls_cert, tls_key;  // HTTPS when both are set
  // Recorded requests are kept up to this number (request_count() keeps
  // counting); a benchmark sets it to 0 so memory stays flat.
  std::size_t max_recorded_requests = 1 << 16;
};

// Runs on its own thread with its own io_context; every member function is safe
// to call from any other thread. The constructor throws when it cannot bind or
// load the TLS files.
class fake_provider {
 public:
  explicit fake_provider(fake_provider_options opts = {});
  ~fake_provider();  // stops (closing stalled connections too) and joins
  fake_provider(const fake_provider&) = delete;
  fake_provider& operator=(const fake_provider&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  void set_script(script s);  // applies to requests that arrive afterwards
  [[nodiscard]] std::vector<recorded_request> requests() const;
  [[nodiscard]] std::size_t request_count() const;
  [[nodiscard]] std::size_t connections_accepted() const;  // to prove keep-alive reuse
  // Body bytes of streamed answers written so far (chunk framing included; a
  // write counts once the kernel took it), and streams written to the end: to
  // prove that a client that does not read holds the provider back.
  [[nodiscard]] std::size_t stream_bytes_sent() const;
  [[nodiscard]] std::size_t streams_finished() const;
  // Returns when n requests have been seen or the timeout has passed; the return
  // value says which.
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Cuts `text` into pieces of at most max_bytes bytes, never inside a UTF-8
// character (see script::deltas). max_bytes 0 is taken as 1.
[[nodiscard]] std::vector<std::string> cut_utf8(const std::string& text, std::size_t max_bytes);

}  // namespace customs::testing
