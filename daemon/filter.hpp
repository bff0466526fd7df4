#pragma once
// Filter stages: where customsd's data path lets code inspect, rewrite, answer or
// stop a flow. A route without rules runs the pass-through filter; enforcement
// (policy and audit, daemon/enforce/) plugs in here without touching the relay.
//
// Life of a flow and the phases a filter sees, in order:
//
//   1. on_request         the client's request, body read whole (bounded by
//                         limits.request_body_bytes). May decide now or later
//                         (request_status::pending, from any thread).
//   2. on_response_head   the upstream's status and headers, before anything is
//                         sent to the client. May add headers, and may ask for a
//                         non-streamed body whole (bounded by limits.response_body_bytes).
//   3a. on_event          each SSE block of an event-stream response, in order,
//                         as it completes (pass / replace / stop); then
//       on_stream_end     once, when the upstream stream ended normally.
//   3b. on_response_body  the whole non-streamed body, when phase 2 asked for it.
//   4. on_flow_end        ALWAYS, exactly once: for relayed, locally answered,
//                         failed and cut flows alike, with a summary.
//
// Phases 2 and 3 run only when the request went upstream and headers came back.
// A chain is several filters: phases run filter by filter in chain order; phase 4
// runs for every filter of the chain, also those whose earlier phases were skipped.
//
// Threading: every call happens on the flow's worker thread, except what a filter
// does itself between returning request_status::pending and calling resume.
// Filters must not throw; an exception escaping a phase fails the flow (500
// before the response started, a cut stream after) and is logged.
//
// Config once, state per flow: a route's filter_factory list is built when the
// config is loaded or reloaded (control plane, filter_chain_builder); each flow
// calls the factories of the route snapshot it started with and owns the filters.

#include "daemon/config.hpp"
#include "daemon/sse.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon {

// Fixed for the whole flow.
struct flow_info {
  std::string id;                     // also in logs and the X-Customs-Flow response header
  std::string listener;               // listener name
  boost::asio::ip::address peer;      // client address (TCP peer)
  std::uint16_t peer_port = 0;
  bool client_tls = false;            // the client connection is TLS
  // The verified client certificate's subject (mTLS listeners, see
  // peer_subject in tls.hpp); empty without one.
  std::string client_subject;
  unsigned worker = 0;                // index of the worker thread running the flow
  std::shared_ptr<const route_config> route;  // the route of the snapshot the flow started with
  // Forward and transparent listeners: how the flow arrived, the host the
  // client asked for (CONNECT authority, TLS server name or absolute-form URL;
  // the route's prefix is then the catalogue entry's host or pattern), the
  // destination address ("address:port") and the tenant named by the
  // client's Proxy-Authorization credentials (empty without).
  listener_mode mode = listener_mode::reverse;
  std::string host;
  std::string destination;
  std::string proxy_tenant;
};

struct header_field {
  std::string name;
  std::string value;
};

// A reply customsd sends itself, instead of the upstream's.
struct local_response {
  unsigned status = 500;
  std::vector<header_field> headers;  // Content-Type among them; framing headers are set by customsd
  std::string body;
};

// ---- phase 1: request ------------------------------------------------------

struct request_state {
  const flow_info* flow = nullptr;
  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  unsigned version = 11;             // 10 or 11
  std::string target;                // as the client sent it (prefix included)
  std::string upstream_target;       // what is requested upstream (prefix mapped); may be changed
  boost::beast::http::fields headers;  // as the client sent them (hop-by-hop ones included)
  std::string body;                  // may be replaced (Content-Length is recomputed)
  std::vector<header_field> upstream_headers;  // set on the upstream request (replacing same names)
  std::vector<header_field> response_headers;  // added to whatever the client gets back
  local_response response;           // what request_status::respond sends
};

enum class request_status : std::uint8_t {
  // Done: the next filter's on_request runs; after the last one the request, with
  // its body and upstream_headers as they now stand, goes upstream.
  proceed,
  // Answer locally with `response` (plus response_headers). Later filters'
  // on_request does not run, nothing reaches the upstream; on_flow_end runs.
  respond,
  // Decide later: the filter keeps the request_resume it was given and calls it
  // exactly once, from any thread, with proceed or respond. Until then customsd
  // does not touch the request_state and the filter may change it from any
  // thread; after calling resume it must not touch it. If resume is not called
  // before the flow's deadline (limits.flow_timeout) the client gets 504 and the
  // late call is ignored; if every copy of it is destroyed uncalled, the client
  // gets 500. Both are reported to on_flow_end as failures.
  pending,
};

namespace detail {
struct resume_target;  // defined by the session; opaque to filters
}

// One-shot, thread-safe continuation of a pending request phase. Copyable; the
// first call wins, later calls do nothing. The request_state it refers to is kept
// alive by the handle, so a late call after the flow gave up is harmless, and so
// is a call or the last copy's destruction after the server stopped.
class request_resume {
 public:
  request_resume() = default;
  explicit request_resume(std::shared_ptr<detail::resume_target> t) : target_(std::move(t)) {}
  void operator()(request_status decision) const;
  // Runs `fn` later on the flow's worker thread if the flow is still waiting
  // for this decision then; otherwise (decided, past its deadline, server gone)
  // drops it uncalled. For a pending filter that learns something on another
  // thread (an answer from a store) and continues on the worker: while `fn`
  // runs, the flow and its filters exist and nothing else touches them, and
  // `fn` may call this handle (or post again). Thread-safe.
  void post(std::function<void()> fn) const;

 private:
  std::shared_ptr<detail::resume_target> target_;
};

// ---- phase 2: response head ------------------------------------------------

enum class body_kind : std::uint8_t {
  none,          // no body (HEAD, 204, 304)
  whole,         // a non-streamed body of known or unknown length
  event_stream,  // Content-Type text/event-stream: parsed into SSE blocks
};

struct response_head_state {
  const flow_info* flow = nullptr;
  unsigned status = 0;                               // upstream status
  const boost::beast::http::fields* headers = nullptr;  // upstream headers as received
  body_kind kind = body_kind::whole;
  std::vector<header_field> add_headers;             // set on the client's response (replacing same names)
};

enum class response_head_status : std::uint8_t {
  // Relay the body as it comes: event streams through on_event, other bodies
  // byte for byte as they arrive.
  proceed,
  // Only for body_kind::whole: read the whole body first (at most
  // limits.response_body_bytes, else the flow fails with 502) and call
  // on_response_body of every filter before anything is sent. Ignored otherwise.
  inspect_body,
};

// ---- phase 3a: event stream ------------------------------------------------

struct event_state {
  const flow_info* flow = nullptr;
  const sse_block* event = nullptr;  // the block as parsed; event->raw are its exact bytes
  std::uint64_t index = 0;           // 0-based position of the block in the upstream stream
  std::vector<std::string> out;      // replace/stop: complete SSE blocks, each ending with a blank line
};

enum class event_status : std::uint8_t {
  // The block goes on unchanged (to the next filter, then the client).
  pass,
  // The blocks in `out` (zero or more; zero holds the event back or drops it) go
  // on instead, each through the later filters of the chain.
  replace,
  // End the client's stream now: the blocks in `out` are sent (typically the
  // dialect's stream_error_event), later filters do not see them, the response
  // ends without the normal end marker, the upstream connection is closed rather
  // than pooled, and the flow ends as cut.
  stop,
};

struct stream_end_state {
  const flow_info* flow = nullptr;
  std::vector<std::string> out;  // blocks to send before the stream ends (e.g. held-back text)
};

// ---- phase 3b: whole body --------------------------------------------------

struct response_body_state {
  const flow_info* flow = nullptr;
  unsigned status = 0;                     // may be changed (e.g. to 451)
  std::string body;                        // may be replaced (Content-Length is recomputed)
  std::vector<header_field> add_headers;   // set on the client's response (replacing same names)
  // The filter answers in customsd's name instead of relaying the upstream's
  // answer (a block): none of the upstream's headers (Server, its request
  // ids, caching, encodings) go to the client, only add_headers. Also implied
  // when `status` was changed.
  bool local_answer = false;
};

// ---- phase 4: end of flow --------------------------------------------------

enum class flow_outcome : std::uint8_t {
  relayed,    // the upstream's response reached the client whole
  answered,   // a filter answered locally (request_status::respond)
  failed,     // an error: see failure (the client got an error reply or a cut stream)
  cut,        // a filter stopped the stream (event_status::stop)
};

[[nodiscard]] std::string_view to_string(flow_outcome o) noexcept;

// What filters know of a flow that the relay does not, for the flow's
// flow_end log line: filled (optionally) by on_flow_end; empty strings and
// negative numbers are left out of the line.
struct flow_report {
  std::string src_jurisdiction;   // resolved source (enforcement)
  std::string dst_jurisdiction;   // preset to the route's jurisdiction
  std::string tenant;
  std::string verdict;            // allow | tag | redact | block | unscannable | refused | error
  std::vector<std::string> rules;  // ids of the rules that decided the verdict
  std::int64_t tokens_in = -1;    // as reported by the provider; -1: unknown
  std::int64_t tokens_out = -1;
  std::chrono::nanoseconds inspect{-1};     // time spent inspecting (request and response)
  std::chrono::nanoseconds audit_wait{-1};  // wait for the opened record to be durable
};

struct flow_summary {
  const flow_info* flow = nullptr;
  flow_report* report = nullptr;     // never null from the session; filters may fill it
  flow_outcome outcome = flow_outcome::relayed;
  std::string_view failure;          // stable reason code when failed, else empty:
                                     // upstream_unreachable, upstream_timeout, upstream_reset,
                                     // upstream_bad_response, stream_gap_timeout, flow_timeout,
                                     // event_too_large, response_too_large, client_gone,
                                     // filter_error, filter_timeout, draining
  unsigned status = 0;               // status sent to the client; 0 when none was sent
  bool stream_cut = false;           // an event stream ended without its normal end (cut or failed)
  std::uint64_t bytes_in = 0;        // from the client: request head + body
  std::uint64_t bytes_out = 0;       // to the client: response head + body
  std::uint64_t upstream_bytes_out = 0;  // to the upstream: request head + body
  std::uint64_t upstream_bytes_in = 0;   // from the upstream: response body bytes (decoded)
  std::uint64_t events = 0;          // SSE blocks received from the upstream
  std::chrono::system_clock::time_point started_at;
  std::chrono::nanoseconds duration{0};      // request read -> last byte sent (or failure)
  std::chrono::nanoseconds ttfb{-1};         // request read -> first response byte sent; -1 if none
  std::chrono::nanoseconds upstream_ttfb{-1};  // request sent -> upstream response head; -1 if none
};

// ---- the interface -----------------------------------------------------------

class filter {
 public:
  virtual ~filter() = default;

  virtual request_status on_request(request_state& req, const request_resume& resume);
  virtual response_head_status on_response_head(response_head_state& head);
  virtual event_status on_event(event_state& ev);
  virtual event_status on_stream_end(stream_end_state& end);
  virtual void on_response_body(response_body_state& body);
  virtual void on_flow_end(const flow_summary& summary) noexcept;
};

// Forwards everything unchanged: what routes run when the config names no rules.
class pass_through_filter final : public filter {};

// Makes one flow's instance of a filter. Called on the flow's worker thread.
using filter_factory = std::function<std::unique_ptr<filter>(const flow_info&)>;

// Builds a route's chain (control plane: at start-up and on each reload).
using filter_chain_builder = std::function<std::vector<filter_factory>(const route_config&)>;

// The chain without enforcement: one pass_through_filter.
[[nodiscard]] std::vector<filter_factory> default_filter_chain(const route_config&);

}  // namespace customs::daemon
