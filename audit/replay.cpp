#include "audit/replay.hpp"
#include "audit/replay_flow.hpp"

#include <boost/json.hpp>

#include <stdexcept>

namespace customs::audit {

namespace {

// A flow has two flow records (opened, closed); replay reads at most this many.
constexpr std::size_t max_records_per_flow = 16;

// The request verdict of a flow_opened payload that records no text whatever
// the payload mode (customsd records request_texts for decided requests only),
// with the detail customsd gave: "the request was unscannable (...)".
std::string no_text_reason(const boost::json::object& payload, std::string_view index_action) {
  std::string action(index_action);
  if (const auto* v = payload.if_contains("verdict"); v && v->is_object())
    if (const auto* a = v->get_object().if_contains("action"); a && a->is_string()) action = a->get_string();
  std::string what;
  if (action == "unscannable") what = "the request was unscannable";
  else if (action == "refused") what = "the request was refused";
  else if (action == "error") what = "the request failed";
  else return {};
  if (const auto* d = payload.if_contains("detail"); d && d->is_string() && !d->get_string().empty())
    what += " (" + std::string(d->get_string()) + ")";
  return "no text recorded: " + what;
}

// Appends the strings of payload[key] (if an array of strings) to out.
bool take_texts(const boost::json::object& payload, std::string_view key, std::vector<std::string>& out) {
  const auto* v = payload.if_contains(key);
  if (!v || !v->is_array()) return false;
  for (const auto& e : v->as_array())
    if (e.is_string()) out.emplace_back(e.as_string().c_str(), e.as_string().size());
  return true;
}

}  // namespace

void absorb(replay_flow& f, const read_record& rec) {
  if (!f.have_record) {
    f.in.flow_id = rec.flow_id;
    f.in.time_us = rec.time_us;
  }
  f.have_record = true;
  // The latest record's index fields win: the flow_closed record holds the final
  // verdict.
  if (!rec.index.route.empty()) f.in.route = rec.index.route;
  if (!rec.index.src.empty()) f.in.src = rec.index.src;
  if (!rec.index.dst.empty()) f.in.dst = rec.index.dst;
  if (!rec.index.tenant.empty()) f.in.tenant = rec.index.tenant;
  f.old_action = rec.index.action;
  f.old_rules = rec.index.rules;
  if (!rec.payload) {
    if (f.problem.empty()) f.problem = rec.erased ? "payload erased" : rec.payload_error;
    return;
  }
  boost::system::error_code ec;
  const auto v = boost::json::parse(*rec.payload, ec);
  if (ec || !v.is_object()) {
    if (f.problem.empty()) f.problem = "payload is not a JSON object";
    return;
  }
  const auto& o = v.as_object();
  if (rec.kind == record_kind::flow_opened && f.no_text_reason.empty())
    f.no_text_reason = no_text_reason(o, rec.index.action);
  const std::size_t request_base = f.in.request_texts.size();
  f.have_text |= take_texts(o, "request_texts", f.in.request_texts);
  if (const auto* a = o.if_contains("request_texts_apart"); a && a->is_array()) {
    for (const auto& e : a->get_array()) {
      // Indices of this record's texts; anything else (a hostile payload) is ignored.
      if (const auto* n = e.if_uint64(); n && *n < f.in.request_texts.size() - request_base)
        f.in.request_apart.push_back(request_base + static_cast<std::size_t>(*n));
      else if (const auto* i = e.if_int64(); i && *i >= 0 &&
               static_cast<std::uint64_t>(*i) < f.in.request_texts.size() - request_base)
        f.in.request_apart.push_back(request_base + static_cast<std::size_t>(*i));
    }
  }
  f.have_text |= take_texts(o, "response_texts", f.in.response_texts);
}

replay_summary replay(reader& r, const record_filter& filter, const replay_evaluator& eval) {
  replay_summary sum;
  const auto settle = [&](replay_flow& f) {
    ++sum.flows;
    if (!f.have_text) {
      ++sum.not_replayable;
      std::string why = f.problem;
      if (why.empty()) why = f.no_text_reason;
      if (why.empty()) why = "no text recorded (payload mode is not \"full\")";
      sum.skipped.push_back({f.in.flow_id, std::move(why)});
      return;
    }
    ++sum.replayed;
    auto out = eval(f.in);
    if (out.action != f.old_action) {
      ++sum.changed;
      sum.changes.push_back({f.in.flow_id, f.in.time_us, f.old_action, f.old_rules,
                             std::move(out.action), std::move(out.rules)});
    }
  };
  record_filter rf = filter;
  rf.include_internal = false;
  // One flow at a time (its records through the flow_id index), so that a trail
  // of many flows, or of flows that never close, does not grow memory.
  r.for_each_flow(rf, [&](const std::string& id) {
    record_filter one = rf;
    one.flow = id;
    replay_flow f;
    std::size_t n = 0;
    r.for_each(one, [&](const read_record& rec) {
      if (rec.kind != record_kind::flow_opened && rec.kind != record_kind::flow_closed) return true;
      if (++n > max_records_per_flow) {
        // customsd writes two records per flow: this trail was made otherwise.
        f.have_text = false;
        f.in.request_texts.clear();
        f.in.response_texts.clear();
        f.problem = "the flow has more than " + std::to_string(max_records_per_flow) + " flow records";
        return false;
      }
      absorb(f, rec);
      return true;
    });
    if (f.have_record) settle(f);
    return true;
  });
  return sum;
}

}  // namespace customs::audit
