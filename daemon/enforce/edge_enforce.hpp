#pragma once
// Enforcement of the edge modes before decryption (see daemon/listen/edge_policy.hpp):
// the destination-only rules of the rule set decide whether a connection to a
// catalogued host may be made at all, and every connection that never
// reaches the session pipeline (refused, tunnelled, rejected the CA) gets one
// audit record, so that the trail shows cross-border volume by destination
// even for what is not decrypted.
//
// Audit record (kind flow_closed, no flow_opened before it: nothing was
// forwarded on a decision; tunnels are metadata only):
//   index: route = the catalogue entry's host (or pattern), "tunnel" for
//          other hosts; src, tenant as resolved; dst = the entry's
//          jurisdiction ("" when unknown); action = refused | tunnel |
//          uninspected (a catalogued host relayed without decryption:
//          the client rejected the CA, or interception is off); rules that
//          refused it; the rule-set hash.
//   payload (encrypted): {"edge": "refused"|"tunnel"|"untrusted", "mode",
//          "listener", "peer", "host" (the name asked for, also for
//          uncatalogued hosts: only auditors read it), "port", "destination",
//          "provider", "reason", "bytes": {"up", "down"}, "timings_ms":
//          {"duration"}, "source": {...}, "rule_set": {...}}

#include "daemon/enforce/enforce_filter.hpp"
#include "daemon/listen/edge_policy.hpp"

#include <memory>

namespace customs::daemon::enforce {

[[nodiscard]] std::shared_ptr<const edge_policy> make_edge_policy(std::shared_ptr<const policy_snapshot> snap);

}  // namespace customs::daemon::enforce
