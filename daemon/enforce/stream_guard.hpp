#pragma once
// Enforcement of one streamed response: every SSE event is decoded by the
// dialect's stream_codec, the text of each channel (choice, content block,
// candidate, tool call) goes through its own policy::stream_scanner, and the
// event is forwarded as it came, re-encoded with the released (possibly
// redacted) text, held back, or replaced by the dialect's error event that ends
// the stream when a block rule fires.
//
// The stream_codec contract (stream_codec.hpp) is followed per event:
//   1. each delta slot's text is fed to its channel's scanner, in slot order;
//   2. each channel that closes is finished; what it still held goes into the
//      last delta slot of that channel in this event, or else into a new delta
//      event (make_delta) sent right before this one;
//   3. aggregate slots (Responses API *.done, response.completed) are scanned
//      whole again (what is forwarded is what was scanned, even if a provider
//      repeats something else than it streamed) and forwarded redacted as the
//      whole-text redaction, which equals the text released on their channel
//      (stream_scanner's contract); their findings join the flow's only when
//      the text differs from the streamed one (BLAKE2b) or was never streamed;
//   4. an event whose text changed (or whose log-probabilities were emptied, see
//      logprobs.hpp, or whose data repeated a key) is re-encoded; any other is
//      forwarded byte for byte.
// A channel that opens again after it closed starts a new segment (a new part of
// the flow's response text). At the end of the body the channels still open are
// flushed the same way (Gemini has no end marker).
//
// Around the text channels: texts that arrive whole (tool names) are segments
// that open and close in one event; a provider error event's strings are each
// scanned whole (block cuts the stream with Customs' own error event instead,
// redact re-encodes the error); an event name ("event:" field) is scanned the
// first time it is seen, and a finding there that asks for more than a tag
// cuts the stream as a block (a name cannot be rewritten). Whatever cuts the
// stream is in findings(): the text scanned whole that did (a name, an error's
// string, an aggregate) is recorded as a segment before the cut.
//
// Fails closed: an event the codec cannot decode or does not know follows the
// `unscannable` mode (block cuts the stream); an error of re-encoding always cuts.
// Bounded: at most max_segments channel segments per flow; at most
// max_findings findings (limits.findings_per_flow): past it the stream is
// unscannable (block: cut; tag/allow: what is held is released and the rest of
// the stream is forwarded uninspected and counted); the texts kept for the
// audit record (keep_texts) at most keep_bytes (see kept_texts.hpp); nothing
// else grows with the stream but the findings.

#include "daemon/config.hpp"
#include "daemon/dialect/endpoint.hpp"
#include "daemon/dialect/stream_codec.hpp"
#include "crypto/crypto.hpp"
#include "daemon/enforce/enforce_metrics.hpp"
#include "daemon/enforce/kept_texts.hpp"
#include "daemon/sse.hpp"
#include "policy/policy.hpp"

#include <chrono>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace customs::daemon::enforce {

struct stream_guard_options {
  unscannable_mode unscannable = unscannable_mode::block;
  bool keep_texts = false;          // keep each segment's text as received (audit content full)
  std::size_t keep_bytes = 1 << 20;  // of kept text in all (audit.content_bytes)
  std::size_t max_findings = 10000;  // limits.findings_per_flow
  enforce_shard* stats = nullptr;   // hold-back histogram; may be null
  // OpenAI chat: customsd asked for usage the client did not ask for (see
  // metering.hpp). Every chunk's top-level "usage" member is removed and the
  // closing usage chunk dropped; usage() still reports what they carried.
  bool strip_usage = false;
};

// Why a guarded stream was cut.
enum class cut_reason : std::uint8_t {
  none,
  blocked,       // a block rule fired (451 semantics)
  unscannable,   // an event could not be inspected and unscannable is block
  engine_error,  // re-encoding failed or the flow opened too many channels
};

[[nodiscard]] std::string_view to_string(cut_reason r) noexcept;

class stream_guard {
 public:
  // Fails with the codec's error when the endpoint has no streamed form.
  [[nodiscard]] static codec_result<stream_guard> create(dialect d, endpoint_kind e, policy::rule_set_ptr rules,
                                                         policy::flow_context ctx, stream_guard_options opts);

  stream_guard(stream_guard&&) noexcept;
  stream_guard& operator=(stream_guard&&) noexcept;
  ~stream_guard();

  enum class step : std::uint8_t {
    pass,     // forward the block unchanged (`out` untouched)
    replace,  // forward the blocks in `out` instead (zero or more)
    stop,     // end the stream with the blocks in `out` (the dialect's error event)
  };
  // One SSE block of the upstream stream. `out` must be empty.
  [[nodiscard]] step on_event(const sse_block& block, std::vector<std::string>& out);
  // The upstream stream ended: `out` gets the held-back text of the channels
  // still open as delta events (pass), or the error event (stop).
  [[nodiscard]] step on_end(std::vector<std::string>& out);

  [[nodiscard]] cut_reason cut() const noexcept { return cut_; }
  [[nodiscard]] const std::string& detail() const noexcept { return detail_; }  // why it was cut
  [[nodiscard]] const token_usage& usage() const noexcept { return usage_; }
  [[nodiscard]] std::uint64_t unscanned_events() const noexcept { return unscanned_; }
  [[nodiscard]] std::size_t segments() const noexcept { return segs_.size(); }
  // The text of each segment as received (up to keep_bytes in all), in order
  // of opening (keep_texts only), for the closing record's payload.
  [[nodiscard]] kept_texts& kept() noexcept { return kept_; }
  // Every finding of every segment; finding::part is the segment's index.
  [[nodiscard]] std::vector<policy::finding> findings() const;
  // max_findings was reached.
  [[nodiscard]] bool findings_limit() const noexcept { return findings_limit_; }

  static constexpr std::size_t max_segments = 8192;
  // Event names remembered as scanned (beyond, a name is scanned each time).
  static constexpr std::size_t max_names = 64;

 private:
  // One channel's text from its opening to its close (or a text scanned whole).
  struct segment {
    std::string key;
    std::optional<policy::stream_scanner> scanner;  // none: a text scanned whole
    std::vector<policy::finding> whole;             // findings of a text scanned whole
    std::unique_ptr<crypto::hasher> hash;           // of the streamed text, until it closes
    crypto::hash digest{};                          // of the streamed text, once closed
    std::size_t counted = 0;  // findings counted towards max_findings
    bool open = true;
    bool holding = false;
    std::chrono::steady_clock::time_point hold_since{};
  };
  stream_guard(dialect d, stream_codec codec, policy::rule_set_ptr rules, policy::flow_context ctx,
               stream_guard_options opts);

  [[nodiscard]] segment* open_segment(const std::string& key);
  [[nodiscard]] segment* latest_segment(std::string_view key);
  // A closed segment for a text scanned whole (aggregates, names, errors).
  // `last`: the stream is cut right after, the segment is added even past
  // max_segments.
  [[nodiscard]] segment* whole_segment(const std::string& key, std::string_view text,
                                       std::vector<policy::finding> findings, bool last = false);
  [[nodiscard]] step stop_blocked(const segment* seg, const policy::verdict* v, std::vector<std::string>& out);
  // Cuts the stream for a text scanned whole (`v` its verdict, block, or a
  // redaction where the text cannot be rewritten): its findings and text are
  // recorded as a segment first, so that findings() holds what cut the stream.
  [[nodiscard]] step stop_whole(const std::string& key, std::string_view text, const policy::verdict& v,
                                std::vector<std::string>& out);
  [[nodiscard]] step stop_engine(std::string why, std::vector<std::string>& out);
  [[nodiscard]] step unscannable_event(std::string why, std::vector<std::string>& out);
  // Finishes a segment; false when it blocked.
  [[nodiscard]] bool finish(segment& seg, std::string& released);
  void track_hold(segment& seg);
  // Counts a segment's new findings; true when max_findings is now passed.
  [[nodiscard]] bool count_findings(segment& seg);
  // Past max_findings: cut (unscannable: block), or release what is held and
  // pass the rest of the stream uninspected, `block` (when given) first.
  [[nodiscard]] step over_findings(const sse_block* block, std::vector<std::string>& out);
  // An event past the findings bound (tag / allow): forwarded uninspected, but
  // its usage is still read and, with strip_usage, what customsd asked for is
  // still taken back.
  [[nodiscard]] step pass_uninspected(const sse_block& block, std::vector<std::string>& out);
  // Past max_findings inside a content event: false under block (cut now);
  // under tag / allow true, and the event is finished before the rest passes.
  [[nodiscard]] bool note_over();
  // Finishes every open segment; held text goes into `out` as delta events.
  [[nodiscard]] step flush_open(std::vector<std::string>& out);
  // Scans a text whole: its verdict (the findings part is `part`).
  [[nodiscard]] policy::verdict scan_whole(std::string_view text, std::uint32_t part, bool& over);
  [[nodiscard]] step on_name(const sse_block& block, std::vector<std::string>& out);
  [[nodiscard]] step on_error_event(const sse_block& block, stream_event& ev, std::vector<std::string>& out);

  dialect api_;
  std::optional<stream_codec> codec_;
  policy::rule_set_ptr rules_;
  policy::flow_context ctx_;
  stream_guard_options opts_;
  bool flow_blocked_ = false;   // a flow-level response rule blocks whatever the text
  std::vector<segment> segs_;
  std::unordered_map<std::string, std::size_t> latest_;  // channel key -> its latest segment
  std::size_t last_ = static_cast<std::size_t>(-1);      // the segment used last (fast path)
  std::vector<std::string> names_;                        // event names already scanned
  kept_texts kept_;
  std::size_t findings_ = 0;  // counted findings of all segments
  bool findings_limit_ = false;
  bool passthrough_ = false;  // past max_findings with unscannable tag/allow
  bool over_ = false;         // the bound was passed inside the current event (tag/allow)
  token_usage usage_;
  std::uint64_t unscanned_ = 0;
  cut_reason cut_ = cut_reason::none;
  std::string detail_;
  // Per-event scratch, reused.
  std::vector<std::string> repl_;
  std::vector<std::uint8_t> changed_;
};

// "event: NAME\n" (when NAME is not empty) "data: DATA\n\n".
[[nodiscard]] std::string sse_text(std::string_view name, std::string_view data);

}  // namespace customs::daemon::enforce
