#pragma once
// The compiled rule set (private to policy/): what load_rule_set builds from the
// rule files and what the scanners and the verdict evaluation read. Immutable
// once built; shared between threads.

#include <re2/re2.h>
#include <re2/set.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/automaton.hpp"
#include "policy/checksum.hpp"
#include "policy/policy.hpp"
#include "policy/validators.hpp"
#include "policy/volume_model.hpp"

namespace customs::policy::detail {

struct origin {
  std::string file;
  int line = 0;
  int col = 0;
};

struct pack_def {
  std::string id;
  std::string version;
  std::string description;
  origin at;
};

struct group_def {
  std::string id;
  std::string pack;
  std::string description;
  std::string source;
  std::string date;
  std::vector<std::string> members;  // ISO codes, sorted, unique
  origin at;
};

// How a redacted match is replaced. Declared from most to least revealing; when
// several redact rules fire on one finding, the least revealing style wins.
enum class redaction : std::uint8_t {
  last4 = 0,  // letters and digits masked with '*' except the last four; separators kept
  mask = 1,   // every character replaced by '*'
  label = 2,  // "[REDACTED:<category>]"
};
[[nodiscard]] std::string_view to_string(redaction r) noexcept;
[[nodiscard]] std::optional<redaction> parse_redaction(std::string_view s) noexcept;

// A check-digit scheme declared in a rule file (`check_digits:`).
struct scheme_def {
  std::string id;
  check_scheme scheme;  // scheme.id == id
  std::string pack;
  std::string description;
  origin at;
  struct example {
    std::string text;
    bool valid = true;
    origin at;
  };
  std::vector<example> examples;  // checked at load; not part of the canonical form
  bool broken = false;            // had errors while reading
};

// A validator a detector names: a built-in one or a scheme of the set.
struct validator_ref {
  std::string name;
  std::optional<validator> builtin;
  std::size_t scheme = 0;  // index into compiled_rule_set::schemes when not built in
  origin at;
  friend bool operator<(const validator_ref& a, const validator_ref& b) { return a.name < b.name; }
  friend bool operator==(const validator_ref& a, const validator_ref& b) { return a.name == b.name; }
};

struct detector_def {
  std::string id;
  std::string pack;
  std::string description;
  std::string category;
  bool sensitive = false;
  std::string pattern;                // as written; empty for keyword detectors
  std::vector<std::string> keywords;  // sorted, unique
  bool ignore_case = false;
  bool fullwidth_digits = true;
  // Whether a separator may stand between two digits of the pattern
  // (pattern::loosen); uniform: and every separator between two digits of a
  // match must be the same.
  enum class separators : std::uint8_t { off, any, uniform };
  separators digit_separators = separators::any;
  std::vector<validator_ref> validators;    // sorted by name, unique
  std::vector<std::string> context_words;   // sorted, unique
  std::size_t context_window = 0;           // bytes either side of the match
  std::vector<std::string> allow;           // sorted, unique
  std::optional<std::size_t> declared_max;  // max_length as written
  origin at;
  origin pattern_at;
  bool broken = false;  // had errors while reading: not compiled

  // Compiled.
  std::string re2_pattern;
  std::shared_ptr<const RE2> re;
  // With digit_separators: the pattern as written (without the separators
  // between digits). A match that needed those separators may not be a piece
  // of a longer spaced number (text::separator_after_digit).
  std::shared_ptr<const RE2> strict_re;
  std::size_t min_len = 0;
  std::size_t max_len = 0;  // bytes; bounds every match (superset analysis)
};

// A set of values (jurisdiction codes or tenants): in (empty: any) minus not.
struct value_matcher {
  bool any = true;
  std::vector<std::string> in;      // as written (codes and groups), sorted
  std::vector<std::string> not_in;  // as written, sorted
  std::vector<std::string> in_expanded;      // codes, sorted, unique
  std::vector<std::string> not_in_expanded;  // codes, sorted, unique
  origin at;                                 // where it is written (diagnostics)
  [[nodiscard]] bool matches(std::string_view v) const;
};

struct rule_def {
  std::string id;
  std::string pack;
  std::string description;
  bool on_request = true;
  bool on_response = true;
  value_matcher src;
  value_matcher dst;
  value_matcher tenants;
  std::vector<std::string> detectors;   // as written, sorted
  std::vector<std::string> categories;  // as written ("pi.phone" or "pi.*"), sorted
  std::optional<bool> sensitive;
  std::vector<std::string> parts;       // non-text part kinds, sorted
  action act = action::allow;
  std::vector<std::string> tags;        // sorted, unique
  redaction style = redaction::label;
  std::vector<std::string> references;  // as written (order kept for display)
  origin at;

  // Compiled: which detectors this rule selects (per detector index).
  bool has_selector = false;
  std::vector<bool> selects;
};

struct exception_def {
  std::string id;
  std::string pack;
  std::string description;
  std::string reason;
  std::vector<std::string> rules;    // sorted, unique
  std::vector<std::string> tenants;  // sorted, unique; empty: any
  std::vector<std::string> routes;   // sorted, unique; empty: any
  action act = action::allow;        // what the rules are lowered to
  std::string expires;               // YYYY-MM-DD; valid through that day (UTC)
  std::int64_t expires_end = 0;      // unix seconds: the end of that day
  origin at;
  std::vector<std::uint32_t> rule_index;  // compiled
};

struct test_def {
  std::string id;
  std::string pack;
  origin at;
  bool chunked = false;
  std::string input;                // the whole text (chunks joined)
  std::vector<std::string> chunks;  // when chunked
  flow_context ctx;
  std::optional<action> expect_action;
  struct expected_finding {
    std::string detector;
    std::optional<std::string> text;
  };
  std::optional<std::vector<expected_finding>> expect_findings;
  std::vector<std::string> expect_absent;
  std::optional<std::vector<std::string>> expect_rules;
  std::optional<std::vector<std::string>> expect_tags;
  std::optional<std::string> expect_redacted;
  std::map<std::string, std::uint64_t> volumes;  // counter id -> subjects already counted
};

// What a flow context makes of the rules: computed once per flow (decide, the
// stream scanner), then applied to each finding in O(1).
struct flow_plan {
  action flow_act = action::allow;                 // of the rules that fire without findings
  std::vector<std::uint32_t> flow_rules;           // those rules
  std::vector<action> effective;                   // per rule: after exceptions
  std::vector<std::vector<std::uint32_t>> lowered_by;  // per rule: exceptions that lowered it
  std::vector<bool> applies;                       // per rule: matches the context
  // Per detector: the most severe effective action of the applying rules that
  // select it, their redaction style, and the rules themselves.
  std::vector<action> applied;
  std::vector<redaction> style;
  std::vector<std::vector<std::uint32_t>> rules;
};

class compiled_rule_set final : public rule_set {
 public:
  [[nodiscard]] const std::string& id() const noexcept override { return id_; }
  [[nodiscard]] const std::string& version() const noexcept override { return version_; }
  [[nodiscard]] const std::string& hash() const noexcept override { return hash_; }
  [[nodiscard]] std::size_t max_hold_back() const noexcept override { return max_hold_back_; }
  [[nodiscard]] std::vector<finding> scan(std::string_view text, std::uint32_t part) const override;
  [[nodiscard]] verdict decide(const flow_context& ctx, std::vector<finding> findings) const override;
  [[nodiscard]] std::string redact(std::string_view text, std::span<const finding> findings,
                                   std::uint32_t part) const override;

  // Internals shared with the stream scanner, the test runner and customsctl.
  [[nodiscard]] flow_plan plan(const flow_context& ctx) const;
  // plan(ctx), shared: flows with the same context (direction, source,
  // destination, tenant, route, kinds of non-text parts) use one plan until an
  // exception that applied to it expires. Computed afresh when ctx.now is set.
  [[nodiscard]] std::shared_ptr<const flow_plan> shared_plan(const flow_context& ctx) const;
  // Fills f.applied and f.replacement (without the overlap rule) from the plan.
  void apply(const flow_plan& p, finding& f) const;
  // The verdict fields that depend on findings; findings must be in text order
  // with applied set.
  void summarize(const flow_plan& p, verdict& v) const;
  // Whether the normalized form of a match passes detector d's validators.
  [[nodiscard]] bool validators_pass(std::size_t d, std::string_view normalized) const;
  // Whether a match [s, e) of detector d in text is a finding: boundaries,
  // allow-list, validators, context words. With `more` (a stream whose text
  // goes on after `text`), `wait` when the answer depends on context words
  // that may still come.
  enum class decision : std::uint8_t { no, yes, wait };
  [[nodiscard]] decision accept(std::size_t d, std::string_view text, std::size_t s, std::size_t e,
                                bool more = false) const;
  // The end of the finding of detector d that starts at s, given RE2's
  // leftmost-first match [s, e) there: e if accepted, else the longest shorter
  // match at s that is accepted; 0 when none is. With `more`, sets wait (and
  // returns 0) when that cannot be decided before more text arrives.
  [[nodiscard]] std::size_t match_at(std::size_t d, std::string_view text, std::size_t s, std::size_t e,
                                     bool more = false, bool* wait = nullptr) const;
  [[nodiscard]] finding make_finding(std::size_t d, std::string_view text, std::size_t s,
                                     std::size_t e, std::uint32_t part) const;
  [[nodiscard]] std::string replacement(redaction style, const finding& f) const;
  // Findings scanned without the RE2::Set pass (every detector); for tests.
  [[nodiscard]] std::vector<finding> scan_all(std::string_view text, std::uint32_t part) const;
  // scan / scan_all: normalize (normalize.hpp), scan the normalized view, map
  // the findings back to the text, add those of base64 runs.
  [[nodiscard]] std::vector<finding> scan_text(std::string_view text, std::uint32_t part, bool all) const;
  // The findings of a normalized view, in its positions (the set pass unless
  // all, or when the set's DFA runs out of memory).
  [[nodiscard]] std::vector<finding> scan_view(std::string_view view, std::uint32_t part, bool all) const;
  // The findings of the text a base64 run decodes to, one per detector, their
  // positions unset; none when the run does not decode to text.
  [[nodiscard]] std::vector<finding> base64_findings(std::string_view run, std::uint32_t part) const;
  // The RE2::Set pass alone: indices of detectors whose pattern occurs in text
  // (before validation). False when the set's DFA ran out of memory.
  [[nodiscard]] bool detect(std::string_view text, std::vector<int>& hits) const;

  std::string id_;
  std::string version_;
  std::string hash_;
  std::size_t max_hold_back_ = 0;
  std::size_t max_match_ = 0;       // longest match of any detector
  std::size_t max_context_ = 0;     // widest context window
  std::size_t lookahead_ = 0;       // bytes a candidate needs past its end, at most
  std::vector<pack_def> packs;
  std::vector<group_def> groups;
  std::vector<scheme_def> schemes;      // sorted by id
  std::vector<detector_def> detectors;  // sorted by id: the index is the detector's order
  std::vector<rule_def> rules;          // sorted by id
  std::vector<exception_def> exceptions;  // sorted by id
  std::vector<test_def> tests;          // file order
  std::vector<volume_def> volumes;      // sorted by id
  std::unique_ptr<RE2::Set> set;
  stream_automaton automaton;
  std::size_t nfa_states = 0;

  // Plans by context (shared_plan); bounded: emptied when full.
  struct plan_cache {
    struct entry {
      std::shared_ptr<const flow_plan> plan;
      // Seconds since the epoch: the plan holds while no exception expiry
      // lies between the time it was made and now.
      std::int64_t valid_from = 0;
      std::int64_t valid_until = 0;
    };
    std::mutex mu;
    std::unordered_map<std::string, entry> plans;
  };
  static constexpr std::size_t plan_cache_entries = 4096;
  std::unique_ptr<plan_cache> plans_ = std::make_unique<plan_cache>();
};

// Sorts findings into text order: part, start, longer first, detector id.
void sort_findings(std::vector<finding>& f);
// Findings of one part, in text order, with applied == redact: the whole-text
// redaction. Shared by rule_set::redact and the stream scanner's tests.
void redact_into(std::string_view text, const std::vector<const finding*>& redacted,
                 std::string& out);

// Compares two findings in text order (see sort_findings).
[[nodiscard]] bool finding_before(const finding& a, const finding& b) noexcept;

}  // namespace customs::policy::detail
