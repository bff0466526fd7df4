// libFuzzer target: the SSE parser (daemon/sse.hpp) as the relay feeds it,
// in whatever pieces the network delivers.
//
// Input: byte 0 seeds the piece sizes (fuzz_input.hpp, pieces()), byte 1 picks
// the event size limit (16, 64, 1024 or 65536 bytes, by its two low bits), the
// rest is the response body.
//
// Properties:
//   - fed in pieces, the parser yields exactly the blocks (every field) and the
//     too_large verdict it yields when fed the whole body at once;
//   - without too_large, the blocks' raw bytes put together are the body, byte
//     for byte (what the relay forwards is what was parsed);
//   - no block is longer than the limit; data, event and id lie within raw;
//   - the block finish() yields is terminated exactly when it ends with a blank
//     line (one ended by a '\r' as the stream's last byte).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/sse.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using customs::daemon::sse_block;
using customs::daemon::sse_parser;
using customs::fuzz::check;

struct block_copy {
  std::string raw, event, data, id;
  std::optional<std::uint64_t> retry;
  bool has_data = false, has_id = false, terminated = true;
  bool operator==(const block_copy&) const = default;
};

struct outcome {
  std::vector<block_copy> blocks;
  bool too_large = false;
  bool operator==(const outcome&) const = default;
};

bool within(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

block_copy copy_of(const sse_block& b, std::size_t limit) {
  check(b.raw.size() <= limit, "a block is longer than max_event_bytes");
  check(within(b.event, b.raw) && within(b.id, b.raw), "event or id lies outside the block");
  check(b.has_data || b.data.empty(), "data without a data field");
  return {std::string(b.raw), std::string(b.event), std::string(b.data), std::string(b.id),
          b.retry,            b.has_data,           b.has_id,             b.terminated};
}

// Whether raw ends with a blank line ended by '\r' (the only kind finish() can
// see: a '\n' completes a blank line at once): a '\r' that starts the block or
// follows another line end.
bool ends_with_blank_line(std::string_view raw) {
  if (!raw.ends_with('\r')) return false;
  if (raw.size() == 1) return true;
  const char before = raw[raw.size() - 2];
  return before == '\r' || before == '\n';
}

outcome parse(const std::vector<std::string_view>& pieces, std::size_t limit) {
  sse_parser p(limit);
  outcome out;
  for (auto piece : pieces) {
    while (!piece.empty()) {
      const auto r = p.feed(piece);
      check(r.consumed <= piece.size(), "consumed more than given");
      if (r.what == sse_parser::status::too_large) {
        out.too_large = true;
        return out;
      }
      if (r.what == sse_parser::status::event) out.blocks.push_back(copy_of(p.event(), limit));
      else check(r.consumed == piece.size(), "need_more before the piece was used up");
      piece.remove_prefix(r.consumed);
    }
  }
  if (p.finish()) {
    // A stream may end right after a blank line ended by a bare '\r': its block
    // waits for the next byte, so finish() yields it, terminated.
    check(p.event().terminated == ends_with_blank_line(p.event().raw),
          "the tail block from finish() is terminated if and only if it ends with a blank line");
    out.blocks.push_back(copy_of(p.event(), limit));
  }
  check(!p.finish(), "finish() yields a block twice");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  const std::uint8_t piece_seed = in.byte();
  static constexpr std::size_t limits[] = {16, 64, 1024, 65536};
  const std::size_t limit = limits[in.byte() & 3];
  const std::string_view body = in.rest();

  const outcome whole = parse({body}, limit);
  const outcome split = parse(customs::fuzz::pieces(body, piece_seed), limit);
  check(whole == split, "pieces change the blocks");
  if (!whole.too_large) {
    std::string joined;
    for (const auto& b : whole.blocks) joined += b.raw;
    check(joined == body, "the blocks' raw bytes are not the body");
  }
  return 0;
}
