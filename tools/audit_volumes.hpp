#pragma once
// customsctl audit volumes (tools/audit_volumes.cpp) and the per-model part of
// audit report: aggregates that need the records' payloads (an auditor key).

#include <cstdint>
#include <string>
#include <vector>

#include "audit/reader.hpp"
#include "tools/args.hpp"

namespace customs::tools {

// `audit volumes`: every volume counter recomputed from the keyed subject
// hashes the flows recorded (payload "volume_subjects"), per counter, scope and
// window, next to the highest count customsd itself reported for it.
[[nodiscard]] int cmd_audit_volumes(const parsed_args& a, const audit::record_filter& filter);

// The report's groups computed from payloads (for dimensions the index does not
// hold: model). `by` as for reader::report plus "model".
[[nodiscard]] std::vector<audit::reader::group_totals> report_from_payloads(
    audit::reader& r, const std::vector<std::string>& by, const audit::record_filter& f);

}  // namespace customs::tools
