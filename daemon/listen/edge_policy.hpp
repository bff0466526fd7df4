#pragma once
// What the edge modes ask of enforcement before anything is decrypted, and what
// they report of the connections that never reach the session pipeline.
//
//   decide()  policy before decryption: rules that act on the destination
//             alone (source, tenant, destination jurisdiction; no text) may
//             refuse a connection to a catalogued host: 403 at CONNECT, a TLS
//             alert in transparent mode.
//   record()  one audit record (and the metrics) for each connection that is
//             refused before decryption, tunnelled uninspected, or whose client
//             rejected customsd's certificate.
//
// Built once per config (control plane, like the filter chains); both calls
// are data plane: called on the connection's worker thread, never throw.
// Without enforcement (no rules) the default allows everything and records
// nothing.

#include "daemon/catalogue/catalogue.hpp"
#include "daemon/filter.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon {

struct config;

// A connection as known before decryption.
struct edge_target {
  const flow_info* flow = nullptr;               // id, listener, peer, host, proxy tenant
  listener_mode mode = listener_mode::forward;
  std::string_view host;                          // normalised; empty when unknown (no SNI)
  std::uint16_t port = 0;
  const catalogue_entry* provider = nullptr;      // null: not in the catalogue
  std::string_view destination;                   // "address:port" when known
};

struct edge_decision {
  bool refuse = false;
  std::vector<std::string> rules;  // the rules that refused it
  std::string src, tenant;         // the source as resolved (for the log)
  std::string reason;              // why, for the client and the log
};

// Kinds of edge records.
enum class edge_event : std::uint8_t {
  refused,     // refused before decryption (policy, access rules, malformed hello, ...)
  tunnel,      // relayed as bytes, never decrypted
  untrusted,   // the client rejected customsd's certificate (handshake failed)
};
[[nodiscard]] std::string_view to_string(edge_event e) noexcept;

struct edge_record {
  edge_target target;
  edge_event event = edge_event::refused;
  std::string_view reason;  // stable code: policy, port, loopback, unknown_host, sni_mismatch, ...
  std::vector<std::string> rules;
  std::uint64_t bytes_up = 0;    // client -> destination
  std::uint64_t bytes_down = 0;  // destination -> client
  std::chrono::system_clock::time_point started_at;
  std::chrono::nanoseconds duration{0};
};

class edge_policy {
 public:
  virtual ~edge_policy() = default;
  [[nodiscard]] virtual edge_decision decide(const edge_target& t) const noexcept;
  virtual void record(const edge_record& r) const noexcept;
};

// Allows everything, records nothing: customsd without rules.
[[nodiscard]] std::shared_ptr<const edge_policy> default_edge_policy();

}  // namespace customs::daemon
