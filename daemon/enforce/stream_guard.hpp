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
//   3. aggregate slots (Responses API *.done, response.completed) become the
//      full text released on their channel; an aggregate of a channel never seen
//      as deltas is scanned as a whole text;
//   4. an event whose text changed (or whose log-probabilities were emptied, see
//      logprobs.hpp) is re-encoded; any other is forwarded byte for byte.
// A channel that opens again after it closed starts a new segment (a new part of
// the flow's response text). At the end of the body the channels still open are
// flushed the same way (Gemini has no end marker).
//
// Fails closed: an event the codec cannot decode or does not know follows the
// `unscannable` mode (block cuts the stream); an error of re-encoding always cuts.
// Bounded: at most max_segments channel segments per flow.

#include "daemon/config.hpp"
#include "daemon/dialect/endpoint.hpp"
#include "daemon/dialect/stream_codec.hpp"
#include "daemon/enforce/enforce_metrics.hpp"
#include "daemon/sse.hpp"
#include "policy/policy.hpp"

#include <chrono>
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
  // The text of each segment as received, in order of opening (keep_texts only).
  [[nodiscard]] std::vector<std::string> texts() const;
  // Every finding of every segment; finding::part is the segment's index.
  [[nodiscard]] std::vector<policy::finding> findings() const;

  static constexpr std::size_t max_segments = 8192;

 private:
  // One channel's text from its opening to its close.
  struct segment {
    std::string key;
    std::optional<policy::stream_scanner> scanner;  // none: an aggregate scanned whole
    std::vector<policy::finding> whole;             // findings of a whole-scanned aggregate
    std::string original;  // as received (keep_texts)
    std::string released;  // as released (keep_released)
    bool open = true;
    bool holding = false;
    std::chrono::steady_clock::time_point hold_since{};
  };
  stream_guard(dialect d, stream_codec codec, policy::rule_set_ptr rules, policy::flow_context ctx,
               stream_guard_options opts, bool keep_released);

  [[nodiscard]] segment* open_segment(const std::string& key);
  [[nodiscard]] segment* latest_segment(std::string_view key);
  [[nodiscard]] step stop_blocked(const segment* seg, const policy::verdict* v, std::vector<std::string>& out);
  [[nodiscard]] step stop_engine(std::string why, std::vector<std::string>& out);
  [[nodiscard]] step unscannable_event(std::string why, std::vector<std::string>& out);
  // Finishes a segment; false when it blocked.
  [[nodiscard]] bool finish(segment& seg, std::string& released);
  void track_hold(segment& seg);
  // Finishes every open segment; held text goes into `out` as delta events.
  [[nodiscard]] step flush_open(std::vector<std::string>& out);

  dialect api_;
  std::optional<stream_codec> codec_;
  policy::rule_set_ptr rules_;
  policy::flow_context ctx_;
  stream_guard_options opts_;
  bool keep_released_ = false;  // aggregates need each channel's released text
  bool flow_blocked_ = false;   // a flow-level response rule blocks whatever the text
  std::vector<segment> segs_;
  std::unordered_map<std::string, std::size_t> latest_;  // channel key -> its latest segment
  std::size_t last_ = static_cast<std::size_t>(-1);      // the segment used last (fast path)
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
