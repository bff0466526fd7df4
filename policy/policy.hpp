#pragma once
// The public contract of the policy engine (policy/). customsd (daemon/), the
// audit replay (audit/, tools/) and customsctl use only what is declared here;
// the rest of policy/ is private to it. policy/ never includes networking code.
//
// Life of an evaluation:
//   load_rule_set(paths)            control plane: may report rich diagnostics
//   rule_set::scan(text)            data plane: findings (detector, span, text)
//   rule_set::decide(ctx, findings) data plane: action, rules, tags, and for each
//                                   finding the action applied to it
//   rule_set::redact(text, findings) the text with redacted findings replaced
//   stream_scanner                  the same, fed token deltas in order
// Data-plane calls never throw on untrusted input.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace customs::policy {

enum class direction : std::uint8_t { request, response };

// Ordered by severity: when several rules match, the greatest wins.
enum class action : std::uint8_t { allow = 0, tag = 1, redact = 2, block = 3 };

[[nodiscard]] std::string_view to_string(direction d) noexcept;
[[nodiscard]] std::string_view to_string(action a) noexcept;
[[nodiscard]] std::optional<direction> parse_direction(std::string_view s) noexcept;
[[nodiscard]] std::optional<action> parse_action(std::string_view s) noexcept;

// One problem found while loading a rule set, at a place in a file.
struct diagnostic {
  enum class severity : std::uint8_t { error, warning };
  severity level = severity::error;
  std::string file;
  int line = 0;  // 1-based; 0 when no position is known
  int col = 0;   // 1-based
  std::string code;     // stable identifier, e.g. "E_REGEX_TOO_BIG"
  std::string message;  // names the rule or detector id and the YAML path
  // "file:line:col: error: CODE: message" (or "warning")
  [[nodiscard]] std::string to_string() const;
};

// One detector match in a scanned text.
struct finding {
  std::string detector;  // detector id
  std::string category;  // e.g. "pi.phone", "financial.card"
  bool sensitive = false;
  std::uint32_t part = 0;  // which text of a multi-text evaluation (0 for one text)
  std::size_t start = 0;   // byte offsets into that text (UTF-8), [start, end)
  std::size_t end = 0;
  std::string text;        // the matched text
  // Filled by rule_set::decide: the most severe action of the rules that fired on
  // this finding, and for redact, the text that replaces the match.
  action applied = action::allow;
  std::string replacement;
};

// Who sends what where. Fixed for the whole flow.
struct flow_context {
  direction dir = direction::request;
  std::string src;     // ISO 3166-1 alpha-2 of the source
  std::string dst;     // ISO 3166-1 alpha-2 of the provider's processing location
  std::string tenant;  // may be empty
  std::string route;   // route prefix, for exceptions scoped to routes
  // Non-text parts of the body by kind ("image", "file", "audio", ...) and count;
  // rules can match on them.
  std::map<std::string, std::uint32_t> non_text_parts;
  // The time against which exception expiry is judged; unset means now.
  std::optional<std::chrono::system_clock::time_point> now;
};

// A volume counter a flow touched (see volume.hpp).
struct volume_hit {
  std::string counter;  // counter id
  std::string scope;    // "tenant=acme,dst=CN"; "" when pooled
  std::string window;   // "2026", "2026-05", "rolling-365d"
  std::uint64_t count = 0;  // subjects in the window with this flow's
  std::uint64_t added = 0;  // subjects this flow added (0 when it was stopped)
  std::string level;        // the highest level reached; empty when none
  action act = action::allow;  // what the level did to the flow (after exceptions)
};

struct verdict {
  action act = action::allow;
  std::vector<std::string> rules;  // ids of the rules that fired, sorted, unique
  std::vector<std::string> tags;   // sorted, unique
  std::vector<std::string> exceptions;  // ids of exceptions that lowered an action
  std::vector<finding> findings;   // in text order (by part, then start)
  std::string rule_set_hash;       // hex; of the set that decided
  std::vector<volume_hit> volumes;  // counters the flow touched (request flows)
};

class rule_set;
using rule_set_ptr = std::shared_ptr<const rule_set>;

struct load_options {
  // Time against which expired exceptions are warned about; unset means now.
  std::optional<std::chrono::system_clock::time_point> now;
  // Limits. A pattern or set over any of them is an error at load time.
  std::size_t max_file_size = 4u << 20;        // bytes per rule file
  // A rule file as read, every YAML alias expanded: the bytes of its strings
  // and its nodes (a small file can repeat one anchored string millions of times).
  std::size_t max_expanded_bytes = 16u << 20;  // bytes (4 x max_file_size)
  std::size_t max_expanded_nodes = 4u << 20;   // nodes
  std::size_t max_program_size = 20000;        // RE2 instructions per detector
  std::size_t regex_max_mem = 8u << 20;        // RE2 memory budget per detector
  std::size_t set_max_mem = 64u << 20;         // RE2::Set budget (its DFA cache)
  std::size_t max_match_length = 2048;         // bytes: the longest match a detector may have
  std::size_t max_pattern_states = 20000;      // streaming NFA states per detector
  std::size_t max_stream_states = 200000;      // streaming DFA states for the whole set
  // The streaming automaton counts repetitions of up to this many copies; a
  // longer one ({20}, {1,64}) becomes its minimum and then a loop there (a
  // superset: candidates are confirmed by the detector's own pattern and end
  // at its longest match). Long counters of one detector otherwise multiply the
  // automaton states of all others: the shipped packs need 184 MB and 0.9 s to
  // load without this, 54 MB and 0.2 s with 16. 0 counts every repetition.
  int stream_counted_repeats = 16;
};

struct load_result {
  rule_set_ptr rules;  // null when any error was found
  std::vector<diagnostic> diagnostics;  // every error and warning, in file order
  [[nodiscard]] bool ok() const noexcept { return rules != nullptr; }
};

// Loads files and folders (every *.yaml / *.yml inside, sorted by path) as one
// rule set. Never throws; any error rejects the whole set.
[[nodiscard]] load_result load_rule_set(std::span<const std::filesystem::path> paths,
                                        const load_options& opts = {});

// An immutable, compiled rule set. Shared between threads and flows.
class rule_set {
 public:
  virtual ~rule_set() = default;

  [[nodiscard]] virtual const std::string& id() const noexcept = 0;       // pack id(s)
  [[nodiscard]] virtual const std::string& version() const noexcept = 0;  // pack version(s)
  [[nodiscard]] virtual const std::string& hash() const noexcept = 0;     // hex content hash
  // The most a stream_scanner ever holds back, in bytes: twice the longest
  // match any detector can produce plus the bytes a decision looks past a match
  // (the next character, context windows). Reached only while a redacted match
  // overlaps an undecided one; a stream usually holds a few bytes.
  [[nodiscard]] virtual std::size_t max_hold_back() const noexcept = 0;

  // All validated findings in one text, in order of start.
  [[nodiscard]] virtual std::vector<finding> scan(std::string_view text,
                                                  std::uint32_t part = 0) const = 0;
  // The verdict for a flow given all its findings (of every part). Fills
  // finding::applied and finding::replacement.
  [[nodiscard]] virtual verdict decide(const flow_context& ctx,
                                       std::vector<finding> findings) const = 0;
  // The text with every finding of this part whose applied action is redact
  // replaced by its replacement.
  [[nodiscard]] virtual std::string redact(std::string_view text,
                                           std::span<const finding> findings,
                                           std::uint32_t part = 0) const = 0;

  // Policy before decryption: the verdict of the rules that act on the
  // destination alone, for a flow whose content is not known (yet). Only rules
  // of the request direction without detectors, categories, `sensitive` or
  // `parts` can fire: a block here refuses the connection before any text is
  // seen. ctx.dir and ctx.non_text_parts are ignored.
  [[nodiscard]] verdict decide_destination(const flow_context& ctx) const;

  // Convenience for one text: scan + decide + redact.
  struct evaluation {
    verdict result;
    std::string redacted;
  };
  [[nodiscard]] evaluation evaluate(std::string_view text, const flow_context& ctx) const;
};

// Scans one text that arrives in pieces (streamed token deltas), releasing what is
// safe as soon as it is safe. What it releases, concatenated, equals
// rule_set::redact of the whole text, and its findings equal those of
// rule_set::scan of the whole text. It holds back at most max_hold_back() bytes,
// never splits a UTF-8 character, and releases nothing more once blocked.
class stream_scanner {
 public:
  stream_scanner(rule_set_ptr rules, flow_context ctx);
  ~stream_scanner();
  stream_scanner(stream_scanner&&) noexcept;
  stream_scanner& operator=(stream_scanner&&) noexcept;

  struct output {
    std::string released;  // safe to send now, redacted where needed
    bool blocked = false;  // a block rule fired: stop the stream now
  };
  // Feeds the next piece. Cheap when the piece is small (token deltas).
  [[nodiscard]] output feed(std::string_view piece);
  // End of the text: releases what was held back (unless blocked).
  [[nodiscard]] output finish();
  // Bytes currently held back.
  [[nodiscard]] std::size_t held() const noexcept;
  // Candidate steps taken so far (one per open candidate per byte of the
  // normalized text): the scanner's work, at most the longest match per byte.
  // For tests and benchmarks.
  [[nodiscard]] std::size_t candidate_steps() const noexcept;
  // The verdict so far over everything fed.
  [[nodiscard]] const verdict& current() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace customs::policy
