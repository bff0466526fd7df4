#include "daemon/enforce/enforce_filter.hpp"

#include "audit/audit.hpp"
#include "daemon/dialect/dialect.hpp"
#include "daemon/dialect/endpoint.hpp"
#include "daemon/dialect/request.hpp"
#include "daemon/dialect/response.hpp"
#include "daemon/enforce/logprobs.hpp"
#include "daemon/enforce/metering.hpp"
#include "daemon/enforce/stream_guard.hpp"
#include "daemon/log.hpp"
#include "policy/volume.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <optional>

namespace customs::daemon::enforce {
namespace {

using clock = std::chrono::steady_clock;
namespace json = boost::json;

// The request side's outcome.
enum class request_outcome : std::uint8_t {
  unseen,       // the request phase never ran (the flow failed before)
  decided,      // scanned and decided: see the verdict's action
  unscannable,  // not parsed; handled per `unscannable`
  refused,      // no source: 403
  error,        // an internal failure while enforcing: 500
};

// The flow_opened record's way through the audit writer. Written by the writer
// thread (its durable handler), read by the flow's worker.
struct audit_ticket {
  enum state : int { pending = 0, durable = 1, failed = 2 };
  clock::time_point appended;
  std::atomic<int> st{pending};
  std::atomic<int> error{0};  // audit::errc
  std::atomic<std::int64_t> wait_ns{-1};
};

std::string_view audit_reason(int e) {
  switch (static_cast<audit::errc>(e)) {
    case audit::errc::queue_full: return "queue_full";
    case audit::errc::store_failed: return "store_failed";
    case audit::errc::closed: return "closed";
    case audit::errc::trail_lost: return "trail_lost";
  }
  return "store_failed";
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += sep;
    s += x;
  }
  return s;
}

std::vector<std::string> merge_sorted(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> out;
  out.reserve(a.size() + b.size());
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

local_response json_reply(dialect api, unsigned status, std::string_view message, std::string_view code) {
  local_response r;
  r.status = status;
  r.headers.push_back({"Content-Type", "application/json"});
  r.body = error_body(api, status, message, code);
  return r;
}

std::string blocked_message(std::string_view what, const std::vector<std::string>& rules) {
  std::string m = "customs: ";
  m += what;
  m += " blocked by policy";
  if (!rules.empty()) m += " (rules: " + join(rules) + ")";
  return m;
}

// The no-audit reply: nothing leaves or is answered without its record.
void refuse_for_audit(request_state& req, dialect api) {
  req.response = json_reply(api, 503, "customs: the audit trail cannot record this request; try again later",
                            "customs_audit_unavailable");
  req.response.headers.push_back({"Retry-After", "1"});
  req.response_headers.clear();
  req.response_headers.push_back({"X-Customs-Verdict", "refused"});
  req.upstream_headers.clear();
}

// Endpoints whose non-streamed answers carry model text.
bool answers_with_text(endpoint_kind e) {
  switch (e) {
    case endpoint_kind::openai_chat:
    case endpoint_kind::openai_responses:
    case endpoint_kind::anthropic_messages:
    case endpoint_kind::gemini_generate:
    case endpoint_kind::gemini_stream_generate:
      return true;
    default:
      return false;
  }
}

// The replacements that redact the slots holding redacted findings; the new
// texts live in `texts` (reserved so that the views stay valid).
void redactions(const policy::rule_set& rules, const std::vector<text_slot>& slots,
                const std::vector<policy::finding>& findings, std::vector<std::string>& texts,
                std::vector<text_replacement>& changes) {
  std::vector<std::uint8_t> touched(slots.size(), 0);
  for (const auto& f : findings) {
    if (f.applied == policy::action::redact && f.part < slots.size()) touched[f.part] = 1;
  }
  texts.reserve(slots.size());
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (!touched[i]) continue;
    texts.push_back(rules.redact(slots[i].text, findings, static_cast<std::uint32_t>(i)));
    changes.push_back({i, texts.back()});
  }
}

json::array findings_json(const std::vector<policy::finding>& findings, policy::direction dir, audit_content content) {
  json::array a;
  a.reserve(findings.size());
  for (const auto& f : findings) {
    json::object o;
    o["detector"] = f.detector;
    o["category"] = f.category;
    o["direction"] = policy::to_string(dir);
    o["part"] = f.part;
    o["start"] = f.start;
    o["end"] = f.end;
    o["applied"] = policy::to_string(f.applied);
    if (content != audit_content::none) o["text"] = f.text;
    a.push_back(std::move(o));
  }
  return a;
}

json::array strings_json(const std::vector<std::string>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

json::object verdict_json(std::string_view action, const policy::verdict* v) {
  json::object o;
  o["action"] = action;
  o["rules"] = v ? strings_json(v->rules) : json::array();
  o["tags"] = v ? strings_json(v->tags) : json::array();
  if (v && !v->exceptions.empty()) o["exceptions"] = strings_json(v->exceptions);
  return o;
}

class enforce_filter final : public filter {
 public:
  enforce_filter(std::shared_ptr<const policy_snapshot> snap, const flow_info& f)
      : snap_(std::move(snap)), info_(&f), shard_(&snap_->stats->shard(f.worker)) {
    if (f.route) {
      api_ = f.route->api;
      dst_ = f.route->jurisdiction;
      route_ = f.route->prefix;
    }
  }

  request_status on_request(request_state& req, const request_resume& resume) override;
  response_head_status on_response_head(response_head_state& head) override;
  event_status on_event(event_state& ev) override;
  event_status on_stream_end(stream_end_state& end) override;
  void on_response_body(response_body_state& body) override;
  void on_flow_end(const flow_summary& summary) noexcept override;

 private:
  [[nodiscard]] policy::flow_context context(policy::direction dir) const {
    policy::flow_context c;
    c.dir = dir;
    c.src = src_.jurisdiction;
    c.dst = dst_;
    c.tenant = src_.tenant;
    c.route = route_;
    return c;
  }
  request_status decide_request(request_state& req, const request_resume& resume);
  request_status count_rounds(request_state& req, const request_resume& resume);
  void on_counted(request_state& req, const request_resume& resume, volume::counter_result answer);
  request_status counted(request_state& req);
  request_status finish_request(request_state& req);
  request_status unscannable_request(request_state& req, std::string why);
  request_status commit(request_state& req, const request_resume& resume, request_status decision);
  void add_verdict_headers(request_state& req, std::string_view verdict, bool upstream_tags);
  [[nodiscard]] audit::index_fields index(std::string action, std::vector<std::string> rules) const;
  [[nodiscard]] std::string opened_payload() const;
  [[nodiscard]] policy::action response_action(std::optional<policy::verdict>& final_resp) const;
  void note_time(clock::time_point t0) { inspect_ += clock::now() - t0; }
  void count_volumes();

  std::shared_ptr<const policy_snapshot> snap_;
  const flow_info* info_;
  enforce_shard* shard_;
  dialect api_ = dialect::openai;
  std::string dst_, route_;
  resolved_source src_;

  request_outcome outcome_ = request_outcome::unseen;
  policy::verdict req_v_;
  std::string detail_;  // why unscannable / refused / error
  std::optional<endpoint_kind> endpoint_;
  std::string model_;
  bool stream_requested_ = false;
  bool logprobs_requested_ = false;
  bool usage_injected_ = false;  // customsd asked the provider for stream usage
  media_counts non_text_;
  std::vector<std::string> request_texts_;  // content full, until the opened record is built
  volume::counting_outcome volumes_;
  std::shared_ptr<audit_ticket> ticket_;
  // While the request is decided (also across a pending wait for the counter
  // store): the extraction, the context and the counting in progress.
  std::optional<request_extraction> ex_;
  policy::flow_context req_ctx_;
  volume::counting_state counting_;
  std::int64_t counted_at_ = 0;  // unix seconds: the flow's time for its counters

  // Response.
  std::optional<stream_guard> guard_;
  bool response_unscannable_ = false;  // response could not be inspected
  bool response_error_ = false;        // internal failure on the response
  std::string response_detail_;
  std::uint64_t unscanned_events_ = 0;
  std::optional<policy::verdict> body_v_;  // a non-streamed response's verdict
  std::vector<std::string> response_texts_;
  token_usage usage_;
  std::chrono::nanoseconds inspect_{0};
};

void enforce_filter::add_verdict_headers(request_state& req, std::string_view verdict, bool upstream_tags) {
  req.response_headers.push_back({"X-Customs-Verdict", std::string(verdict)});
  if (!req_v_.rules.empty() && req_v_.act >= policy::action::tag) {
    req.response_headers.push_back({"X-Customs-Rule", join(req_v_.rules)});
  }
  if (!req_v_.tags.empty()) {
    std::string tags = join(req_v_.tags);
    if (upstream_tags) req.upstream_headers.push_back({"X-Customs-Tags", tags});
    req.response_headers.push_back({"X-Customs-Tags", std::move(tags)});
  }
}

request_status enforce_filter::on_request(request_state& req, const request_resume& resume) {
  const auto t0 = clock::now();
  src_ = snap_->sources.resolve(*info_, req.headers);
  strip_customs_headers(req.headers);
  if (src_.header_ignored) {
    shard_->headers_ignored.add();
    log_line(log_level::warn, "source_header_ignored")
        .kv("flow", info_->id)
        .kv("peer", info_->peer.to_string())
        .kv("reason", "the peer is not in trusted_proxies");
  }
  request_status decision;
  if (src_.origin == source_origin::none) {
    outcome_ = request_outcome::refused;
    detail_ = src_.error;
    log_line(log_level::warn, "source_unresolved").kv("flow", info_->id).kv("peer", info_->peer.to_string()).kv("error", detail_);
    req.response = json_reply(api_, 403, "customs: " + detail_, "customs_unknown_source");
    req.response_headers.push_back({"X-Customs-Verdict", "refused"});
    decision = request_status::respond;
  } else {
    // A compressed answer could not be inspected: ask for an uncompressed one.
    req.upstream_headers.push_back({"Accept-Encoding", "identity"});
    decision = decide_request(req, resume);
  }
  note_time(t0);
  // Pending: the counter store answers later, and on_counted commits.
  if (decision == request_status::pending) return decision;
  return commit(req, resume, decision);
}

request_status enforce_filter::unscannable_request(request_state& req, std::string why) {
  outcome_ = request_outcome::unscannable;
  detail_ = std::move(why);
  if (auto m = classify_endpoint(api_, req.upstream_target)) endpoint_ = m->kind;
  switch (snap_->unscannable) {
    case unscannable_mode::block:
      req.response = json_reply(api_, 451, "customs: the request could not be inspected (" + detail_ + ")",
                                "customs_unscannable");
      req.response_headers.push_back({"X-Customs-Verdict", "unscannable"});
      return request_status::respond;
    case unscannable_mode::tag:
      req.upstream_headers.push_back({"X-Customs-Tags", "unscannable"});
      req.response_headers.push_back({"X-Customs-Tags", "unscannable"});
      [[fallthrough]];
    case unscannable_mode::allow:
      req.response_headers.push_back({"X-Customs-Verdict", "unscannable"});
      return request_status::proceed;
  }
  return request_status::respond;
}

void enforce_filter::count_volumes() {
  auto& stats = *snap_->stats;
  const unsigned w = info_->worker;
  const std::string_view backend = snap_->volumes->backend();
  if (!volumes_.errors.empty()) {
    stats.volume_ops.at(w, {backend, "unavailable"}).add();
    stats.volume_unavailable.at(w, {volumes_.refused ? "refuse" : "local"}).add();
  }
  if (volumes_.rounds > 0 && volumes_.errors.empty()) {
    stats.volume_ops.at(w, {backend, volumes_.added.empty() ? "limited" : "added"}).add();
  }
  for (const auto& h : req_v_.volumes) {
    if (!h.level.empty()) stats.volume_levels.at(w, {h.counter, h.level}).add();
  }
}

request_status enforce_filter::decide_request(request_state& req, const request_resume& resume) {
  auto extracted = extract_request(api_, req.upstream_target, req.body);
  if (!extracted) return unscannable_request(req, extracted.error().message());
  auto& ex = ex_.emplace(std::move(*extracted));
  endpoint_ = ex.endpoint;
  model_ = ex.model;
  stream_requested_ = ex.stream;
  logprobs_requested_ = ex.logprobs_requested;
  non_text_ = ex.non_text;

  const auto& rules = *snap_->rules;
  policy::flow_context ctx = context(policy::direction::request);
  for (std::size_t k = 0; k < media_kind_count; ++k) {
    const auto n = ex.non_text.count[k];
    if (n > 0) ctx.non_text_parts.emplace(std::string(to_string(static_cast<media_kind>(k))), n);
  }
  std::vector<policy::finding> found;
  for (std::size_t i = 0; i < ex.slots.size(); ++i) {
    auto f = rules.scan(ex.slots[i].text, static_cast<std::uint32_t>(i));
    if (found.empty()) found = std::move(f);
    else found.insert(found.end(), std::make_move_iterator(f.begin()), std::make_move_iterator(f.end()));
  }
  req_v_ = rules.decide(ctx, std::move(found));
  outcome_ = request_outcome::decided;
  if (snap_->volumes && policy::has_volumes(rules)) {
    req_ctx_ = std::move(ctx);
    counted_at_ = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    return count_rounds(req, resume);
  }
  return finish_request(req);
}

// Counting rounds (volume_counter::prepare): a synchronous store answers at
// once; an asynchronous one (Redis) answers on its own thread, and the flow
// waits pending while its worker serves other flows. The answer comes back to
// the worker through resume.post (which runs only while the flow still waits,
// so `this` and the request state exist), and on_counted goes on from there.
request_status enforce_filter::count_rounds(request_state& req, const request_resume& resume) {
  const auto& counter = *snap_->volumes;
  const auto& rules = *snap_->rules;
  while (counter.prepare(rules, req_ctx_, req_v_, counted_at_, counting_)) {
    auto& store = counter.store_for(counting_);
    if (!store.asynchronous()) {
      counter.take(rules, req_ctx_, req_v_, counting_, store.add(counting_.ops));
      continue;
    }
    request_state* r = &req;  // kept alive by the resume handle
    store.add_async(counting_.ops, [this, r, resume](volume::counter_result answer) {
      resume.post([this, r, resume, answer = std::move(answer)]() mutable { on_counted(*r, resume, std::move(answer)); });
    });
    return request_status::pending;
  }
  return counted(req);
}

void enforce_filter::on_counted(request_state& req, const request_resume& resume, volume::counter_result answer) {
  const auto t0 = clock::now();
  request_status st = request_status::respond;
  try {
    snap_->volumes->take(*snap_->rules, req_ctx_, req_v_, counting_, std::move(answer));
    st = count_rounds(req, resume);
    if (st != request_status::pending) st = commit(req, resume, st);
  } catch (...) {
    // Out of memory while deciding: no record was appended, nothing leaves.
    outcome_ = request_outcome::error;
    detail_ = "internal error after counting";
    req.response = json_reply(api_, 500, "customs: internal error while enforcing the policy", "customs_inspection_error");
    req.response_headers.push_back({"X-Customs-Verdict", "error"});
    st = request_status::respond;
  }
  note_time(t0);
  if (st != request_status::pending) resume(st);
}

request_status enforce_filter::counted(request_state& req) {
  volumes_ = std::move(counting_.out);
  counting_ = {};
  count_volumes();
  if (volumes_.refused) {
    outcome_ = request_outcome::refused;
    detail_ = "volume counters unavailable: " + volumes_.detail;
    log_line(log_level::warn, "volumes_unavailable").kv("flow", info_->id).kv("error", volumes_.detail).kv("on_unavailable", "refuse");
    req.response = json_reply(api_, 503, "customs: the volume counters cannot be reached; try again later",
                              "customs_volumes_unavailable");
    req.response.headers.push_back({"Retry-After", "1"});
    req.response_headers.push_back({"X-Customs-Verdict", "refused"});
    return request_status::respond;
  }
  if (volumes_.used_local) {
    log_line(log_level::warn, "volumes_unavailable").kv("flow", info_->id).kv("error", volumes_.detail).kv("on_unavailable", "local");
  }
  return finish_request(req);
}

// The decided verdict applied to the request (and the metering request).
request_status enforce_filter::finish_request(request_state& req) {
  auto& ex = *ex_;
  const auto& rules = *snap_->rules;
  if (snap_->content == audit_content::full) {
    request_texts_.reserve(ex.slots.size());
    for (const auto& s : ex.slots) request_texts_.emplace_back(s.text);
  }
  // Metering: an OpenAI chat stream reports usage only when asked. Done last:
  // the extraction's slots are not used after it.
  const auto meter = [&] {
    if (snap_->inject_stream_usage && ex.endpoint == endpoint_kind::openai_chat && ex.stream && !ex.include_usage) {
      usage_injected_ = request_stream_usage(ex, req.body);
    }
  };

  switch (req_v_.act) {
    case policy::action::block:
      req.response = json_reply(api_, 451, blocked_message("the request was", req_v_.rules), "customs_blocked");
      add_verdict_headers(req, "block", false);
      return request_status::respond;
    case policy::action::redact: {
      std::vector<std::string> texts;
      std::vector<text_replacement> changes;
      redactions(rules, ex.slots, req_v_.findings, texts, changes);
      auto body = rewrite_request(ex, changes);
      if (!body) {
        outcome_ = request_outcome::error;
        detail_ = "rewrite_request: " + body.error().message();
        log_line(log_level::error, "enforcement_error").kv("flow", info_->id).kv("error", detail_);
        req.response = json_reply(api_, 500, "customs: internal error while enforcing the policy", "customs_inspection_error");
        req.response_headers.push_back({"X-Customs-Verdict", "error"});
        return request_status::respond;
      }
      req.body = std::move(*body);
      meter();
      add_verdict_headers(req, "redact", true);
      return request_status::proceed;
    }
    case policy::action::tag:
      meter();
      add_verdict_headers(req, "tag", true);
      return request_status::proceed;
    case policy::action::allow:
      meter();
      add_verdict_headers(req, "allow", true);
      return request_status::proceed;
  }
  return request_status::proceed;
}

audit::index_fields enforce_filter::index(std::string action, std::vector<std::string> rules) const {
  audit::index_fields x;
  x.route = route_;
  x.src = src_.jurisdiction;
  x.dst = dst_;
  x.tenant = src_.tenant;
  x.action = std::move(action);
  x.rules = std::move(rules);
  x.rule_set_hash = snap_->rules->hash();
  return x;
}

std::string enforce_filter::opened_payload() const {
  json::object p;
  p["listener"] = info_->listener;
  p["peer"] = info_->peer.to_string();
  json::object source;
  source["jurisdiction"] = src_.jurisdiction;
  source["tenant"] = src_.tenant;
  source["origin"] = to_string(src_.origin);
  if (!info_->client_subject.empty()) source["client_cert_subject"] = info_->client_subject;
  p["source"] = std::move(source);
  if (endpoint_) p["endpoint"] = to_string(*endpoint_);
  if (!model_.empty()) p["model"] = model_;
  p["stream"] = stream_requested_;
  std::string_view action = "refused";
  if (outcome_ == request_outcome::decided) action = policy::to_string(req_v_.act);
  else if (outcome_ == request_outcome::unscannable) action = "unscannable";
  else if (outcome_ == request_outcome::error) action = "error";
  p["verdict"] = verdict_json(action, outcome_ == request_outcome::decided ? &req_v_ : nullptr);
  if (non_text_.total() > 0) {
    json::object parts;
    for (std::size_t k = 0; k < media_kind_count; ++k) {
      if (non_text_.count[k] > 0) parts[to_string(static_cast<media_kind>(k))] = non_text_.count[k];
    }
    p["non_text"] = std::move(parts);
  }
  p["findings"] = findings_json(req_v_.findings, policy::direction::request, snap_->content);
  if (!req_v_.volumes.empty()) {
    json::array hits;
    for (const auto& h : req_v_.volumes) {
      json::object o;
      o["counter"] = h.counter;
      o["scope"] = h.scope;
      o["window"] = h.window;
      o["count"] = h.count;
      o["added"] = h.added;
      if (!h.level.empty()) o["level"] = h.level;
      o["action"] = policy::to_string(h.act);
      hits.push_back(std::move(o));
    }
    p["volumes"] = std::move(hits);
  }
  if (!volumes_.added.empty()) {
    // The keyed hashes this flow added per counter key: what an auditor
    // recomputes the counters from (customsctl audit volumes).
    json::array keys;
    for (const auto& k : volumes_.added) {
      json::array subjects;
      subjects.reserve(k.subjects.size());
      for (const auto& h : k.subjects) subjects.emplace_back(volume::to_hex(h));
      keys.push_back(json::object{{"counter", k.counter}, {"scope", k.scope}, {"window", k.window},
                                  {"subjects", std::move(subjects)}});
    }
    p["volume_subjects"] = std::move(keys);
  }
  if (volumes_.used_local) p["volume_store"] = "local";
  if (snap_->content == audit_content::full && outcome_ == request_outcome::decided) {
    p["request_texts"] = strings_json(request_texts_);
  }
  if (!detail_.empty()) p["detail"] = detail_;
  p["rule_set"] = json::object{{"id", snap_->rules->id()}, {"version", snap_->rules->version()}};
  return json::serialize(p);
}

request_status enforce_filter::commit(request_state& req, const request_resume& resume, request_status decision) {
  const auto& trail = snap_->audit;
  std::string action = "refused";
  if (outcome_ == request_outcome::decided) action = policy::to_string(req_v_.act);
  else if (outcome_ == request_outcome::unscannable) action = "unscannable";
  else if (outcome_ == request_outcome::error) action = "error";
  audit::record rec;
  rec.kind = audit::record_kind::flow_opened;
  rec.flow_id = info_->id;
  rec.index = index(std::move(action), req_v_.rules);
  rec.index.tokens_in = rec.index.tokens_out = audit::tokens_unknown;  // not answered yet
  rec.payload = opened_payload();
  request_texts_.clear();
  request_texts_.shrink_to_fit();
  ex_.reset();
  if (!trail) return decision;

  auto ticket = std::make_shared<audit_ticket>();
  ticket_ = ticket;
  ticket->appended = clock::now();
  const bool refuse = snap_->refuse_on_audit_failure;
  const dialect api = api_;
  request_state* r = &req;  // kept alive by the resume handle the handler holds
  const std::error_code ec = trail->append(
      std::move(rec), [ticket, resume, r, decision, refuse, api](std::error_code e, std::uint64_t) {
        ticket->wait_ns.store((clock::now() - ticket->appended).count());
        if (!e) {
          ticket->st.store(audit_ticket::durable);
          resume(decision);
          return;
        }
        ticket->error.store(e.value());
        ticket->st.store(audit_ticket::failed);
        if (refuse) {
          refuse_for_audit(*r, api);
          resume(request_status::respond);
        } else {
          resume(decision);
        }
      });
  if (!ec) return request_status::pending;
  ticket->error.store(ec.value());
  ticket->st.store(audit_ticket::failed);
  if (!refuse) return decision;
  refuse_for_audit(req, api_);
  return request_status::respond;
}

response_head_status enforce_filter::on_response_head(response_head_state& head) {
  if (!endpoint_ || outcome_ != request_outcome::decided) {
    // Forwarded without inspection (unscannable: tag or allow): the response
    // cannot be decoded either.
    if (outcome_ == request_outcome::unscannable) response_unscannable_ = head.kind != body_kind::none;
    return response_head_status::proceed;
  }
  if (head.kind == body_kind::event_stream) {
    const auto t0 = clock::now();
    stream_guard_options o;
    o.unscannable = snap_->unscannable;
    o.keep_texts = snap_->content == audit_content::full;
    o.stats = shard_;
    o.strip_usage = usage_injected_;
    auto g = stream_guard::create(api_, *endpoint_, snap_->rules, context(policy::direction::response), o);
    if (g) guard_.emplace(std::move(*g));
    else response_detail_ = "event stream on " + std::string(to_string(*endpoint_)) + ": " + g.error().message();
    note_time(t0);
    return response_head_status::proceed;
  }
  if (head.kind == body_kind::whole && head.status >= 200 && head.status < 300 && answers_with_text(*endpoint_)) {
    return response_head_status::inspect_body;
  }
  return response_head_status::proceed;
}

event_status enforce_filter::on_event(event_state& ev) {
  if (!guard_) {
    // Nothing can decode this stream.
    if (snap_->unscannable == unscannable_mode::block && outcome_ == request_outcome::decided) {
      response_unscannable_ = true;
      ev.out.push_back(stream_error_event(api_, 451, "customs: the response could not be inspected", "customs_unscannable"));
      return event_status::stop;
    }
    if (ev.event->has_data) {
      ++unscanned_events_;
      shard_->unscanned_events.add();
    }
    return event_status::pass;
  }
  const auto t0 = clock::now();
  const auto s = guard_->on_event(*ev.event, ev.out);
  note_time(t0);
  switch (s) {
    case stream_guard::step::pass: return event_status::pass;
    case stream_guard::step::replace: return event_status::replace;
    case stream_guard::step::stop: return event_status::stop;
  }
  return event_status::stop;
}

event_status enforce_filter::on_stream_end(stream_end_state& end) {
  if (!guard_) return event_status::pass;
  const auto t0 = clock::now();
  const auto s = guard_->on_end(end.out);
  note_time(t0);
  return s == stream_guard::step::stop ? event_status::stop : event_status::pass;
}

void enforce_filter::on_response_body(response_body_state& body) {
  const auto t0 = clock::now();
  auto ex = extract_response(api_, *endpoint_, body.body);
  if (!ex) {
    response_detail_ = "response: " + ex.error().message();
    if (snap_->unscannable == unscannable_mode::block) {
      response_unscannable_ = true;
      body.status = 451;
      body.body = error_body(api_, 451, "customs: the response could not be inspected", "customs_unscannable");
      body.add_headers.push_back({"Content-Type", "application/json"});
      body.add_headers.push_back({"X-Customs-Response-Verdict", "unscannable"});
    } else {
      response_unscannable_ = true;
    }
    note_time(t0);
    return;
  }
  usage_.merge(ex->usage);
  if (ex->provider_error) {
    note_time(t0);
    return;
  }
  const auto& rules = *snap_->rules;
  std::vector<policy::finding> found;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) {
    auto f = rules.scan(ex->slots[i].text, static_cast<std::uint32_t>(i));
    found.insert(found.end(), std::make_move_iterator(f.begin()), std::make_move_iterator(f.end()));
  }
  body_v_ = rules.decide(context(policy::direction::response), std::move(found));
  const policy::verdict& v = *body_v_;
  if (snap_->content == audit_content::full) {
    for (const auto& s : ex->slots) response_texts_.emplace_back(s.text);
  }
  if (v.act == policy::action::block) {
    body.status = 451;
    body.body = error_body(api_, 451, blocked_message("the response was", v.rules), "customs_blocked");
    body.add_headers.push_back({"Content-Type", "application/json"});
    body.add_headers.push_back({"X-Customs-Response-Verdict", "block"});
    body.add_headers.push_back({"X-Customs-Response-Rule", join(v.rules)});
    note_time(t0);
    return;
  }
  bool rewrite = logprobs_requested_ && strip_logprobs(ex->document);
  std::vector<std::string> texts;
  std::vector<text_replacement> changes;
  if (v.act == policy::action::redact) {
    redactions(rules, ex->slots, v.findings, texts, changes);
    rewrite = true;
  }
  if (rewrite) {
    auto out = rewrite_response(*ex, changes);
    if (!out) {
      response_error_ = true;
      response_detail_ = "rewrite_response: " + out.error().message();
      log_line(log_level::error, "enforcement_error").kv("flow", info_->id).kv("error", response_detail_);
      body.status = 500;
      body.body = error_body(api_, 500, "customs: internal error while enforcing the policy", "customs_inspection_error");
      body.add_headers.push_back({"Content-Type", "application/json"});
      note_time(t0);
      return;
    }
    body.body = std::move(*out);
  }
  if (v.act >= policy::action::tag) {
    body.add_headers.push_back({"X-Customs-Response-Verdict", std::string(policy::to_string(v.act))});
    if (!v.rules.empty()) body.add_headers.push_back({"X-Customs-Response-Rule", join(v.rules)});
    if (!v.tags.empty()) body.add_headers.push_back({"X-Customs-Response-Tags", join(v.tags)});
  }
  note_time(t0);
}

policy::action enforce_filter::response_action(std::optional<policy::verdict>& final_resp) const {
  if (body_v_) {
    final_resp = *body_v_;
  } else if (guard_ && (guard_->segments() > 0 || guard_->cut() == cut_reason::blocked)) {
    // The stream's verdict, decided as audit replay decides the recorded texts:
    // all segments together, one part each.
    final_resp = snap_->rules->decide(context(policy::direction::response), guard_->findings());
  }
  return final_resp ? final_resp->act : policy::action::allow;
}

void enforce_filter::on_flow_end(const flow_summary& summary) noexcept {
  try {
    if (outcome_ == request_outcome::unseen) {
      // Never inspected, never forwarded: the trail still shows the attempt.
      src_ = snap_->sources.resolve(*info_, boost::beast::http::fields{});
    }
    std::optional<policy::verdict> resp;
    const policy::action resp_act = response_action(resp);
    const cut_reason cut = guard_ ? guard_->cut() : cut_reason::none;
    if (guard_) {
      usage_.merge(guard_->usage());
      unscanned_events_ += guard_->unscanned_events();
      if (guard_->cut() != cut_reason::none || guard_->unscanned_events() > 0) response_detail_ = guard_->detail();
      if (snap_->content == audit_content::full) response_texts_ = guard_->texts();
    }
    const bool resp_unscannable = response_unscannable_ || cut == cut_reason::unscannable || unscanned_events_ > 0;
    const bool resp_error = response_error_ || cut == cut_reason::engine_error;

    // The audit trail's view of the opened record.
    bool audit_refused = false;
    std::string_view audit_failure;
    std::int64_t wait_ns = -1;
    if (ticket_) {
      const int st = ticket_->st.load();
      if (st == audit_ticket::failed) {
        audit_failure = audit_reason(ticket_->error.load());
        audit_refused = snap_->refuse_on_audit_failure;
      } else if (st == audit_ticket::durable) {
        wait_ns = ticket_->wait_ns.load();
      }
    }

    std::string action;
    if (outcome_ == request_outcome::unseen || outcome_ == request_outcome::error) action = "error";
    else if (outcome_ == request_outcome::refused || audit_refused) action = "refused";
    else if ((outcome_ == request_outcome::decided && req_v_.act == policy::action::block) || resp_act == policy::action::block) action = "block";
    else if (resp_error) action = "error";
    else if (outcome_ == request_outcome::unscannable || resp_unscannable) action = "unscannable";
    else action = policy::to_string(std::max(req_v_.act, resp_act));

    const std::vector<std::string> rules = resp ? merge_sorted(req_v_.rules, resp->rules) : req_v_.rules;

    audit::record rec;
    rec.kind = audit::record_kind::flow_closed;
    rec.flow_id = info_->id;
    rec.index = index(action, rules);
    rec.index.tokens_in = usage_.input_tokens.value_or(audit::tokens_unknown);
    rec.index.tokens_out = usage_.output_tokens.value_or(audit::tokens_unknown);

    json::object p;
    p["outcome"] = to_string(summary.outcome);
    if (!summary.failure.empty()) p["failure"] = summary.failure;
    p["status"] = summary.status;
    p["cut"] = summary.stream_cut;
    if (cut != cut_reason::none) p["cut_reason"] = to_string(cut);
    json::object verdict;
    verdict["action"] = action;
    std::string_view req_action = "none";
    if (outcome_ == request_outcome::decided) req_action = policy::to_string(req_v_.act);
    else if (outcome_ == request_outcome::unscannable) req_action = "unscannable";
    else if (outcome_ == request_outcome::refused) req_action = "refused";
    else if (outcome_ == request_outcome::error) req_action = "error";
    verdict["request"] = req_action;
    verdict["response"] = resp ? policy::to_string(resp->act) : std::string_view(resp_unscannable ? "unscannable" : "none");
    verdict["rules"] = strings_json(rules);
    verdict["tags"] = strings_json(resp ? merge_sorted(req_v_.tags, resp->tags) : req_v_.tags);
    p["verdict"] = std::move(verdict);
    json::object usage;
    if (usage_.input_tokens) usage["input_tokens"] = *usage_.input_tokens;
    if (usage_.output_tokens) usage["output_tokens"] = *usage_.output_tokens;
    p["usage"] = std::move(usage);
    if (usage_injected_) p["usage_requested"] = true;
    if (!model_.empty()) p["model"] = model_;
    p["bytes"] = json::object{{"in", summary.bytes_in},
                              {"out", summary.bytes_out},
                              {"upstream_in", summary.upstream_bytes_in},
                              {"upstream_out", summary.upstream_bytes_out}};
    p["events"] = summary.events;
    json::object t;
    t["duration"] = static_cast<double>(summary.duration.count()) / 1e6;
    if (summary.ttfb.count() >= 0) t["ttfb"] = static_cast<double>(summary.ttfb.count()) / 1e6;
    if (summary.upstream_ttfb.count() >= 0) t["upstream_ttfb"] = static_cast<double>(summary.upstream_ttfb.count()) / 1e6;
    t["inspect"] = static_cast<double>(inspect_.count()) / 1e6;
    if (wait_ns >= 0) t["audit_wait"] = static_cast<double>(wait_ns) / 1e6;
    p["timings_ms"] = std::move(t);
    json::array findings = findings_json(req_v_.findings, policy::direction::request, snap_->content);
    if (resp) {
      for (auto& f : findings_json(resp->findings, policy::direction::response, snap_->content)) findings.push_back(std::move(f));
    }
    p["findings"] = std::move(findings);
    if (snap_->content == audit_content::full && (resp || !response_texts_.empty())) {
      p["response_texts"] = strings_json(response_texts_);
    }
    if (unscanned_events_ > 0) p["unscanned_events"] = unscanned_events_;
    if (!audit_failure.empty()) p["audit_failure"] = audit_failure;
    if (!detail_.empty()) p["detail"] = detail_;
    if (!response_detail_.empty()) p["response_detail"] = response_detail_;
    rec.payload = json::serialize(p);

    if (snap_->audit) {
      if (const auto ec = snap_->audit->append(std::move(rec)); ec) {
        snap_->stats->audit_failures.at(info_->worker, {audit_reason(ec.value())}).add();
      }
    }

    // Metrics (this worker's shards).
    auto& stats = *snap_->stats;
    const unsigned w = info_->worker;
    stats.flows.at(w, {route_, action}).add();
    if (!src_.jurisdiction.empty()) stats.pairs.at(w, {src_.jurisdiction, dst_}).add();
    for (const auto& r : rules) stats.rules.at(w, {r}).add();
    {
      const std::string_view model = stats.models.admit(model_);
      const std::string_view tenant = stats.tenants.admit(src_.tenant);
      if (usage_.empty()) {
        if (outcome_ == request_outcome::decided && req_v_.act != policy::action::block) {
          stats.usage_unknown.at(w, {route_, model}).add();
        }
      } else {
        if (usage_.input_tokens) {
          stats.tokens.at(w, {route_, tenant, src_.jurisdiction, dst_, model, "in"}).add(*usage_.input_tokens);
        }
        if (usage_.output_tokens) {
          stats.tokens.at(w, {route_, tenant, src_.jurisdiction, dst_, model, "out"}).add(*usage_.output_tokens);
        }
      }
    }
    for (const auto& f : req_v_.findings) stats.findings.at(w, {f.detector, "request"}).add();
    if (resp) {
      for (const auto& f : resp->findings) stats.findings.at(w, {f.detector, "response"}).add();
    }
    if (!audit_failure.empty()) {
      stats.audit_failures.at(w, {audit_failure}).add();
      if (audit_refused) stats.audit_refusals.at(w, {audit_failure}).add();
      static std::atomic<std::int64_t> last_log{0};
      const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(clock::now().time_since_epoch()).count();
      if (last_log.exchange(now_s) != now_s) {
        log_line(log_level::error, "audit_refused")
            .kv("flow", info_->id)
            .kv("reason", audit_failure)
            .kv("on_failure", snap_->refuse_on_audit_failure ? "refuse" : "allow");
      }
    }
    if (wait_ns >= 0) shard_->audit_wait.observe(std::chrono::nanoseconds(wait_ns));
    if (outcome_ != request_outcome::unseen) shard_->inspect.observe(inspect_);
  } catch (const std::exception& e) {
    log_line(log_level::error, "enforcement_error").kv("flow", info_->id).kv("phase", "flow_end").kv("error", e.what());
  } catch (...) {
    log_line(log_level::error, "enforcement_error").kv("flow", info_->id).kv("phase", "flow_end");
  }
}

}  // namespace

std::vector<filter_factory> enforce_chain(std::shared_ptr<const policy_snapshot> snap, const route_config& route) {
  for (const char* a : {"allow", "tag", "redact", "block", "unscannable", "refused", "error"}) {
    snap->stats->flows.ensure({route.prefix, a});
  }
  return {[snap = std::move(snap)](const flow_info& f) -> std::unique_ptr<filter> {
    return std::make_unique<enforce_filter>(snap, f);
  }};
}

}  // namespace customs::daemon::enforce
