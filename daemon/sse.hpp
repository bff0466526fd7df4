#pragma once
// Incremental parser for Server-Sent Events (the WHATWG HTML "event stream"
// format) as LLM APIs stream them: fed the body bytes of a response in whatever
// pieces the network delivers, it yields one block at a time.
//
// A block is everything up to and including the blank line that ends it: field
// lines ("data: ...", "event: ...", "id: ...", "retry: ..."), comment lines
// (": ..."), and line ends of any kind ("\r\n", "\n" or "\r", mixed freely, also
// split across pieces). Every block is yielded, also those without data (comments
// used as keep-alives), so that a relay that forwards `raw` of every block
// reproduces the stream byte for byte. A block "dispatches" an event in the
// specification's sense only when it has at least one data field.
//
// Where the pieces are cut never changes the blocks: a blank line that ends
// with a '\r' at the end of a piece is held until the next byte shows whether
// a '\n' belongs to it (or until finish()), so streams that end lines with a
// bare '\r' yield each block when the next one starts.
//
// Bounded: a block longer than max_event_bytes (raw bytes, line ends included)
// is an error; nothing else grows.
//
// Data plane: never throws on input (std::bad_alloc aside).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace customs::daemon {

// One parsed block. The views stay valid until the next call to feed(), finish()
// or reset() of the parser that produced it.
struct sse_block {
  std::string_view raw;    // the block's exact bytes, line ends included
  std::string_view event;  // value of the last "event" field; empty if none
  std::string_view data;   // values of the "data" fields joined with '\n'
  std::string_view id;     // value of the last valid "id" field (see has_id)
  std::optional<std::uint64_t> retry;  // last "retry" field made only of digits
  bool has_data = false;   // at least one "data" field: the block dispatches
  bool has_id = false;
  bool terminated = true;  // false only for an unterminated tail from finish()
};

class sse_parser {
 public:
  enum class status : std::uint8_t {
    need_more,  // all bytes consumed; the current block is not complete yet
    event,      // a block is complete: see event(); `consumed` bytes were used
    too_large,  // the current block exceeds max_event_bytes; the stream is unusable
  };
  struct result {
    status what = status::need_more;
    std::size_t consumed = 0;  // bytes of the input used; feed the rest again
  };

  explicit sse_parser(std::size_t max_event_bytes);

  // Consumes bytes until a block completes (then returns status::event with the
  // number of bytes used; call again with the rest) or the input is used up.
  [[nodiscard]] result feed(std::string_view bytes);

  // The block completed by the last feed() that returned status::event, or by
  // finish() when it returned true.
  [[nodiscard]] const sse_block& event() const noexcept { return event_; }

  // End of stream: when bytes of a block are pending, parses them as a final
  // block and returns true. The block is terminated = false when the stream
  // ended inside it, true when it ended with its blank line's '\r' (a block that
  // was waiting for the next byte, see above).
  [[nodiscard]] bool finish();

  // Back to the start of a stream (a new byte-order mark is accepted).
  void reset();

  // Raw bytes of the block in progress.
  [[nodiscard]] std::size_t pending_bytes() const noexcept;

  [[nodiscard]] std::size_t max_event_bytes() const noexcept { return max_; }

 private:
  void start_block();
  void field_line(std::size_t begin, std::size_t end);
  void complete(bool terminated);

  std::size_t max_;
  std::string raw_;    // bytes of the current block
  std::string data_;   // data field values, each followed by '\n'
  std::size_t line_begin_ = 0;  // offset in raw_ of the line in progress
  std::size_t event_begin_ = 0, event_end_ = 0;
  std::size_t id_begin_ = 0, id_end_ = 0;
  std::optional<std::uint64_t> retry_;
  bool has_data_ = false;
  bool has_id_ = false;
  bool has_event_ = false;
  bool after_cr_ = false;      // the last byte seen ended a line with '\r'
  bool blank_pending_ = false; // that line was blank: complete once the next byte is seen
  bool at_stream_start_ = true;  // no line of the stream completed yet (BOM rule)
  bool delivered_ = false;     // event_ refers to raw_; clear it on next feed
  sse_block event_;
};

}  // namespace customs::daemon
