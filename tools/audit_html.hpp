#pragma once
// customsctl audit report --format html: one self-contained HTML page (inline
// CSS and SVG, no script, nothing fetched) for compliance officers and
// regulators. The page states the trail's verification result, and shows the
// report's numbers as bar charts and, always, as tables.
//
// The page is built in two steps: collect_html_report reads the trail into an
// html_report (verification, the report's groups, findings and rule sets),
// render_html_report writes the page from it. Every string that comes from the
// trail or the command line goes through html_text.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/reader.hpp"
#include "audit/verifier.hpp"
#include "tools/args.hpp"

namespace customs::tools {

struct html_report {
  std::string trail;    // the --db path as given
  std::string made_at;  // RFC 3339, UTC: the only part that changes between runs
  std::string generator;  // "customsctl VERSION"
  // The selection: filters as given on the command line (name, value), the
  // --by dimensions, whether payloads were read with an auditor key.
  std::vector<std::pair<std::string, std::string>> filters;
  std::vector<std::string> by;
  bool with_key = false;
  // Times of the selected flows' final records (unset when no flow matched).
  std::optional<std::int64_t> first_us, last_us;

  // The verification `customsctl audit verify --db FILE` runs (no seed, no
  // signer key, no held checkpoint: the report takes none).
  audit::verify_summary verification;
  // Why the verification stopped before its end (a value too large to load,
  // a read error), when it did: the trail counts as failed.
  std::string verification_error;
  [[nodiscard]] bool verified() const { return verification_error.empty() && verification.ok(); }

  audit::reader::group_totals totals;                // every selected flow
  std::vector<audit::reader::group_totals> pairs;    // key: src, dst
  std::string period;                                // "day", "month" or "year"
  std::string period_note;                           // why another period than asked, if so
  std::vector<audit::reader::group_totals> periods;  // key: the period; gaps filled with zeros
  std::vector<audit::reader::group_totals> groups;   // key: the --by dimensions (when given)

  // Findings of the selected flows, by detector and category (with a key).
  struct finding_count {
    std::string detector, category;
    std::uint64_t request = 0, response = 0;
  };
  std::vector<finding_count> findings;
  std::uint64_t findings_unreadable = 0;  // flows whose payload could not be read (erased, other keys)
  std::uint64_t findings_capped = 0;      // flows that recorded findings only up to a limit

  // The rule sets that decided the selected flows, by the rule_set_hash of
  // their final records; ids and versions from the payloads (with a key).
  struct rule_set_use {
    std::string hash;
    std::vector<std::pair<std::string, std::string>> labels;  // (id, version)
    bool more_labels = false;                                 // more than the ones kept
    std::uint64_t flows = 0;
    std::int64_t first_us = 0, last_us = 0;
  };
  std::vector<rule_set_use> rule_sets;
};

// Text from the trail or the command line as HTML text or a quoted attribute
// value: & < > " ' escaped; bytes that are not UTF-8, control characters,
// noncharacters and bidirectional overrides shown as U+FFFD, so that no string
// can add markup, end the page's encoding or reorder what is shown around it.
[[nodiscard]] std::string html_text(std::string_view s);

// Reads the trail and runs the verification. by: the --by dimensions; filter
// already resolved (--flow names one id). Throws as reader and verify do.
[[nodiscard]] html_report collect_html_report(const parsed_args& a, const std::string& db,
                                              const std::vector<std::string>& by, const audit::record_filter& filter);

[[nodiscard]] std::string render_html_report(const html_report& r);

}  // namespace customs::tools
