#include "daemon/enforce/edge_enforce.hpp"

#include "audit/audit.hpp"
#include "daemon/log.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace customs::daemon::enforce {
namespace {

namespace json = boost::json;

class enforce_edge_policy final : public edge_policy {
 public:
  explicit enforce_edge_policy(std::shared_ptr<const policy_snapshot> snap) : snap_(std::move(snap)) {
    for (const char* a : {"refused", "tunnel", "uninspected"}) snap_->stats->flows.ensure({"tunnel", a});
  }

  edge_decision decide(const edge_target& t) const noexcept override {
    edge_decision d;
    try {
      if (t.provider == nullptr || t.flow == nullptr) return d;
      const resolved_source src = snap_->sources.resolve(*t.flow, boost::beast::http::fields{});
      d.src = src.jurisdiction;
      d.tenant = src.tenant;
      if (src.origin == source_origin::none) {
        // The pipeline would refuse every request (403): refuse now.
        d.refuse = true;
        d.reason = src.error;
        return d;
      }
      policy::flow_context ctx;
      ctx.dir = policy::direction::request;
      ctx.src = src.jurisdiction;
      ctx.dst = t.provider->jurisdiction;
      ctx.tenant = src.tenant;
      ctx.route = t.provider->host;
      const policy::verdict v = snap_->rules->decide_destination(ctx);
      if (v.act == policy::action::block) {
        d.refuse = true;
        d.rules = v.rules;
        std::string rules;
        for (const auto& r : v.rules) rules += (rules.empty() ? "" : ", ") + r;
        d.reason = "the destination " + t.provider->host + " (" + t.provider->jurisdiction +
                   ") is refused by policy (rules: " + rules + ")";
      }
    } catch (const std::exception& e) {
      // Fail closed: a rule set that cannot decide does not let the connection through.
      d.refuse = true;
      d.reason = "internal error while deciding the destination";
      log_line(log_level::error, "enforcement_error").kv("flow", t.flow ? t.flow->id : "").kv("phase", "edge").kv("error", e.what());
    }
    return d;
  }

  void record(const edge_record& r) const noexcept override {
    try {
      const flow_info& info = *r.target.flow;
      const resolved_source src = snap_->sources.resolve(info, boost::beast::http::fields{});
      const catalogue_entry* p = r.target.provider;
      std::string_view action = "refused";
      if (r.event == edge_event::tunnel) action = p != nullptr ? "uninspected" : "tunnel";
      else if (r.event == edge_event::untrusted) action = "uninspected";

      audit::record rec;
      rec.kind = audit::record_kind::flow_closed;
      rec.flow_id = info.id;
      rec.index.route = p != nullptr ? p->host : "tunnel";
      rec.index.src = src.jurisdiction;
      rec.index.dst = p != nullptr ? p->jurisdiction : std::string();
      rec.index.tenant = src.tenant;
      rec.index.action = std::string(action);
      rec.index.rules = r.rules;
      rec.index.rule_set_hash = snap_->rules->hash();

      json::object o;
      o["edge"] = to_string(r.event);
      o["mode"] = to_string(r.target.mode);
      o["listener"] = info.listener;
      o["peer"] = info.peer.to_string();
      if (!r.target.host.empty()) o["host"] = r.target.host;
      if (r.target.port != 0) o["port"] = r.target.port;
      if (!r.target.destination.empty()) o["destination"] = r.target.destination;
      if (p != nullptr) o["provider"] = p->provider;
      o["reason"] = r.reason;
      if (!r.rules.empty()) {
        json::array a;
        for (const auto& x : r.rules) a.emplace_back(x);
        o["rules"] = std::move(a);
      }
      o["bytes"] = json::object{{"up", r.bytes_up}, {"down", r.bytes_down}};
      o["timings_ms"] = json::object{{"duration", static_cast<double>(r.duration.count()) / 1e6}};
      json::object source;
      source["jurisdiction"] = src.jurisdiction;
      source["tenant"] = src.tenant;
      source["origin"] = to_string(src.origin);
      o["source"] = std::move(source);
      o["rule_set"] = json::object{{"id", snap_->rules->id()}, {"version", snap_->rules->version()}};
      rec.payload = json::serialize(o);

      auto& stats = *snap_->stats;
      if (snap_->audit) {
        if (const auto ec = snap_->audit->append(std::move(rec)); ec) {
          stats.audit_failures.at(info.worker, {"edge_record"}).add();
        }
      }
      stats.flows.at(info.worker, {p != nullptr ? std::string_view(p->host) : std::string_view("tunnel"), action}).add();
      if (!src.jurisdiction.empty() && p != nullptr) stats.pairs.at(info.worker, {src.jurisdiction, p->jurisdiction}).add();
      for (const auto& x : r.rules) stats.rules.at(info.worker, {x}).add();
    } catch (const std::exception& e) {
      log_line(log_level::error, "enforcement_error").kv("phase", "edge_record").kv("error", e.what());
    } catch (...) {
      log_line(log_level::error, "enforcement_error").kv("phase", "edge_record");
    }
  }

 private:
  std::shared_ptr<const policy_snapshot> snap_;
};

}  // namespace

std::shared_ptr<const edge_policy> make_edge_policy(std::shared_ptr<const policy_snapshot> snap) {
  return std::make_shared<const enforce_edge_policy>(std::move(snap));
}

}  // namespace customs::daemon::enforce
