#pragma once
// Scanning the texts of one direction of a flow together (data plane): each
// text alone, as rule_set::scan does, and the texts joined in order, so that an
// identifier split between two messages or two content parts ("1101051949" +
// "1231002X") is found. Uses only the public contract of policy.hpp; customsd
// and the audit replay call it alike, so that replay judges as customsd did.
//
// Joining: every run of 2 to max_join adjacent non-empty texts is scanned
// concatenated with nothing between them (a separator the detectors treat as
// a boundary would hide exactly the splits this is for), and a match is taken
// from it when it begins in the run's first text and ends in its last (the
// others are found alone or by another run). The run's outer edges are text
// edges, as for each text alone, so an unrelated neighbour never spoils a
// match's boundary. A long first or last text contributes only the
// max_hold_back() bytes next to the join (no match reaches further), so the
// joined scans cost about max_join times the text near joins, never a copy of
// a large text. A match across texts gives one finding per text it covers (its
// piece of that text, with the whole match as finding::text), so rules,
// exceptions and the audit see it in each; redaction replaces the match once,
// in the text where it begins (settle_split), and removes the other pieces.
// Known limits: an identifier split into more than max_join texts, or between
// texts that are not adjacent in the order given, is not found; joining with
// nothing can also find a number that two adjacent texts only seem to form
// (one ending and the next starting with digits): validators with check
// digits make that rare, detectors without them (phone numbers) less so.
//
// Bound: at most `max_findings` findings are collected. Past it the scan stops
// (the texts after it and the joins are not all scanned) and `truncated` is
// set: the caller must not treat the result as complete. A text of
// `large_text` bytes or more is scanned by a stream_scanner fed in slices
// (same findings by its contract), so that the scan stops soon after the
// bound instead of first finding every match of a large text.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.hpp"

namespace customs::policy {

// A finding by place: the piece of a split match in a later text.
struct finding_piece {
  std::uint32_t part = 0;
  std::size_t start = 0;
  std::size_t end = 0;
  std::string detector;
};

struct parts_scan {
  std::vector<finding> findings;  // part = index of the text; in text order
  std::vector<finding_piece> continued;  // pieces of split matches after the first
  bool truncated = false;         // stopped at max_findings
};

struct parts_options {
  bool join = true;  // false: each text alone (the joined scan is for requests)
  std::size_t max_join = 4;  // texts in a joined run
  // By text: its join group (texts past the end of the list: group 0). A
  // joined run holds texts of one group only: a text of another group ends
  // the runs on either side of it.
  std::vector<std::uint8_t> join_group;
  std::size_t max_findings = std::numeric_limits<std::size_t>::max();
  std::size_t large_text = 64u << 10;
  std::size_t slice = 64u << 10;  // bytes fed to the stream_scanner at a time
};

// `ctx` is the flow's context (the stream_scanner of a large text needs it; the
// findings do not depend on it).
[[nodiscard]] parts_scan scan_parts(const rule_set_ptr& rules, const flow_context& ctx,
                                    std::span<const std::string_view> texts, const parts_options& options = {});

// After rule_set::decide on a parts_scan's findings: the continued pieces of a
// split match get an empty replacement, so that the match is replaced once.
void settle_split(verdict& v, std::span<const finding_piece> continued);

}  // namespace customs::policy
