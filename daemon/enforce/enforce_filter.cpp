#include "daemon/enforce/enforce_filter.hpp"

#include "audit/audit.hpp"
#include "daemon/dialect/dialect.hpp"
#include "daemon/dialect/endpoint.hpp"
#include "daemon/dialect/request.hpp"
#include "daemon/dialect/response.hpp"
#include "daemon/enforce/inspect_pool.hpp"
#include "daemon/enforce/kept_texts.hpp"
#include "daemon/enforce/logprobs.hpp"
#include "daemon/enforce/metering.hpp"
#include "daemon/enforce/payload_json.hpp"
#include "daemon/enforce/stream_guard.hpp"
#include "daemon/http_util.hpp"
#include "daemon/log.hpp"
#include "policy/parts.hpp"
#include "policy/volume.hpp"

#include <boost/json/array.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <mutex>
#include <optional>

namespace customs::daemon::enforce {
namespace {

using clock = std::chrono::steady_clock;
namespace json = boost::json;

// The content codings of a response other than identity, as received (every
// Content-Encoding field, each a comma-separated list), joined by ", "; empty
// when the body is as sent.
std::string content_coding(const boost::beast::http::fields& headers) {
  std::string out;
  for (const auto& field : headers) {
    if (field.name() != boost::beast::http::field::content_encoding) continue;
    std::string_view list(field.value().data(), field.value().size());
    while (!list.empty()) {
      const auto comma = list.find(',');
      std::string_view token = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      if (token.empty() || iequals(token, "identity")) continue;
      if (!out.empty()) out += ", ";
      out.append(token.data(), std::min<std::size_t>(token.size(), 64));
      if (out.size() > 256) return out;
    }
  }
  return out;
}

// The request side's outcome.
enum class request_outcome : std::uint8_t {
  unseen,       // the request phase never ran (the flow failed before)
  decided,      // scanned and decided: see the verdict's action
  unscannable,  // not parsed (or not scanned whole); handled per `unscannable`
  refused,      // no source (403), or no room to inspect it (503)
  error,        // an internal failure while enforcing (500), or the inspection
                // had not finished when the flow ended
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

// Runs a function when the scope ends.
template <class F>
struct scope_exit {
  F f;
  ~scope_exit() { f(); }
};
template <class F>
scope_exit(F) -> scope_exit<F>;

// Where a scanned text sits (findings name it by index).
struct part_info {
  slot_role role = slot_role::prose;
  std::string where;
};

std::vector<part_info> parts_of(const std::vector<text_slot>& slots) {
  std::vector<part_info> p;
  p.reserve(slots.size());
  for (const auto& s : slots) p.push_back({s.role, s.where.empty() ? s.channel : s.where});
  return p;
}

// Whether a request text is joined with the conversation's texts. The request
// target and the header fields are not: the model reads neither, so a text
// split between them and the conversation is not one text to it; they are
// joined with each other (both reach the provider, side by side), apart from
// the conversation (docs/operator-guide.md). The opened record lists them
// ("request_texts_apart"), so that replay judges the texts the same way.
bool joins(slot_role r) noexcept { return r != slot_role::target && r != slot_role::header; }

void write_findings(json_out& out, const std::vector<policy::finding>& findings, policy::direction dir,
                    audit_content content, const std::vector<part_info>* parts) {
  for (const auto& f : findings) {
    out.begin_object()
        .member("detector", f.detector)
        .member("category", f.category)
        .member("direction", policy::to_string(dir))
        .member("part", f.part);
    if (parts != nullptr && f.part < parts->size()) {
      out.member("role", to_string((*parts)[f.part].role));
      if (!(*parts)[f.part].where.empty()) out.member("where", (*parts)[f.part].where);
    }
    out.member("start", std::uint64_t{f.start})
        .member("end", std::uint64_t{f.end})
        .member("applied", policy::to_string(f.applied));
    if (content != audit_content::none) out.member("text", f.text);
    out.end_object();
  }
}

void write_strings(json_out& out, plain_key key, const std::vector<std::string>& v) {
  out.key(key).begin_array();
  for (const auto& s : v) out.value(s);
  out.end_array();
}

// What a flow is, copied once: usable from any thread (the inspection pool
// runs large requests away from the flow's worker).
struct flow_env {
  std::shared_ptr<const policy_snapshot> snap;
  dialect api = dialect::openai;
  std::string dst, route;
  std::string flow_id, listener, peer, client_subject;
  unsigned worker = 0;
  // Forward and transparent listeners: how the flow arrived, the host asked
  // for and the destination address (see flow_info).
  listener_mode mode = listener_mode::reverse;
  std::string host, destination;
  resolved_source src;

  [[nodiscard]] policy::flow_context context(policy::direction dir) const {
    policy::flow_context c;
    c.dir = dir;
    c.src = src.jurisdiction;
    c.dst = dst;
    c.tenant = src.tenant;
    c.route = route;
    return c;
  }
};

// What the request phase decided. Written by whichever thread inspects the
// request, read by the worker in the later phases.
struct request_result {
  request_outcome outcome = request_outcome::unseen;
  policy::verdict verdict;
  std::string detail;  // why unscannable / refused / error / blocked beyond the rules
  std::optional<endpoint_kind> endpoint;
  std::string model;
  bool stream = false;
  bool logprobs = false;
  media_counts non_text;
  std::vector<part_info> parts;
  std::optional<kept_texts> texts;  // content full: until the opened record is built
  std::shared_ptr<audit_ticket> ticket;
  bool findings_limit = false;  // limits.findings_per_flow reached
  bool decoded_limit = false;   // inline files past the decoded text bound
  bool content_limit = false;   // texts cut in the opened record
  bool offloaded = false;       // inspected on the pool
  bool usage_injected = false;  // customsd asked the provider for stream usage
  volume::counting_outcome volumes;
  std::chrono::nanoseconds inspect{0};
  // While the request is decided (also across a pending wait for the counter
  // store): the extraction, the context and the counting in progress.
  std::optional<request_extraction> ex;
  policy::flow_context ctx;
  volume::counting_state counting;
  std::int64_t counted_at = 0;  // unix seconds: the flow's time for its counters
};

// The request side of a flow and its hand-over between threads: a request
// inspected on the pool publishes its result under `lock` unless the flow
// already ended (on_flow_end set `abandoned`), and appends its opened record
// under the same lock, so that the closed record always follows it.
struct request_side {
  std::mutex lock;
  bool abandoned = false;
  bool published = false;
  request_result r;
};

void add_verdict_headers(request_state& req, const request_result& r, std::string_view verdict, bool upstream_tags) {
  req.response_headers.push_back({"X-Customs-Verdict", std::string(verdict)});
  if (!r.verdict.rules.empty() && r.verdict.act >= policy::action::tag) {
    req.response_headers.push_back({"X-Customs-Rule", join(r.verdict.rules)});
  }
  if (!r.verdict.tags.empty()) {
    std::string tags = join(r.verdict.tags);
    if (upstream_tags) req.upstream_headers.push_back({"X-Customs-Tags", tags});
    req.response_headers.push_back({"X-Customs-Tags", std::move(tags)});
  }
}

request_status unscannable_request(const flow_env& env, request_state& req, request_result& r, std::string why) {
  r.outcome = request_outcome::unscannable;
  r.detail = std::move(why);
  if (auto m = classify_endpoint(env.api, req.upstream_target)) r.endpoint = m->kind;
  switch (env.snap->unscannable) {
    case unscannable_mode::block:
      req.response = json_reply(env.api, 451, "customs: the request could not be inspected (" + r.detail + ")",
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

// Scans and decides the request; fills `r` and sets the reply, headers and
// body on `req`. Any thread (see request_side).
request_status inspect_request(const flow_env& env, request_state& req, request_result& r) {
  const policy_snapshot& snap = *env.snap;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  for (const auto& h : req.headers) headers.emplace_back(h.name_string(), h.value());
  // A coded body (gzip, ...) is not what would be parsed below: a body that
  // happened to parse as JSON would be scanned as something the provider
  // never reads.
  if (const auto coding = content_coding(req.headers); !coding.empty())
    return unscannable_request(env, req, r, "request body has Content-Encoding: " + coding);
  request_options opts;
  opts.headers = headers;
  opts.max_decoded_text = snap.decoded_text_bytes;
  auto ex = extract_request(env.api, req.upstream_target, req.body, opts);
  if (!ex) {
    if (ex.error().code == codec_errc::too_much_text) r.decoded_limit = true;
    return unscannable_request(env, req, r, ex.error().message());
  }
  r.endpoint = ex->endpoint;
  r.model = ex->model;
  r.stream = ex->stream;
  r.logprobs = ex->logprobs_requested;
  r.non_text = ex->non_text;
  r.parts = parts_of(ex->slots);

  const auto& rules = *snap.rules;
  policy::flow_context ctx = env.context(policy::direction::request);
  for (std::size_t k = 0; k < media_kind_count; ++k) {
    const auto n = ex->non_text.count[k];
    if (n > 0) ctx.non_text_parts.emplace(std::string(to_string(static_cast<media_kind>(k))), n);
  }
  std::vector<std::string_view> texts;
  texts.reserve(ex->slots.size());
  policy::parts_options po;
  po.max_findings = snap.findings_per_flow;
  po.join_group.reserve(ex->slots.size());
  for (const auto& s : ex->slots) {
    texts.push_back(s.text);
    po.join_group.push_back(joins(s.role) ? 0 : 1);
  }
  auto scanned = policy::scan_parts(snap.rules, ctx, texts, po);
  r.verdict = rules.decide(ctx, std::move(scanned.findings));
  policy::settle_split(r.verdict, scanned.continued);
  if (snap.content == audit_content::full) {
    r.texts.emplace(snap.content_bytes);
    for (auto t : texts) r.texts->add(t);
    r.content_limit = r.texts->cut();
  }
  if (scanned.truncated) {
    r.findings_limit = true;
    const std::string why = "more than " + std::to_string(snap.findings_per_flow) + " findings";
    if (r.verdict.act != policy::action::block) return unscannable_request(env, req, r, why);
    r.detail = why;  // enough to block
  }
  r.outcome = request_outcome::decided;
  r.ctx = std::move(ctx);
  r.ex.emplace(std::move(*ex));
  return request_status::pending;  // decided: the counters (if any), then finish_request
}

// The decided verdict applied to the request (and the metering request).
request_status finish_request(const flow_env& env, request_state& req, request_result& r) {
  const policy_snapshot& snap = *env.snap;
  const auto& rules = *snap.rules;
  auto* ex = &*r.ex;
  // Metering: an OpenAI chat stream reports usage only when asked. Done last:
  // the extraction's slots are not used after it.
  const auto meter = [&] {
    if (snap.inject_stream_usage && ex->endpoint == endpoint_kind::openai_chat && ex->stream && !ex->include_usage) {
      r.usage_injected = request_stream_usage(*ex, req.body);
    }
  };

  if (r.verdict.act == policy::action::redact) {
    // A redaction that nothing can take (an identifier, a key, the target, a
    // header: see request.hpp) blocks instead.
    // An inline file's own string (base64, a data: URL) is scanned as it is
    // and cannot take a replacement, but it is rewritten whole from its decoded
    // text: a finding in it is covered when it lies in the encoded payload
    // (which is rewritten) and the same detector's match is redacted in the
    // decoded text of the same string. A finding in a data: URL's media type or
    // parameters is not covered: they are written back as they were.
    const auto covered_by_attachment = [&](const policy::finding& f) {
      const auto* target = ex->slots[f.part].target;
      if (target == nullptr) return false;
      for (const auto& g : r.verdict.findings) {
        if (g.part >= ex->slots.size() || g.applied != policy::action::redact) continue;
        const auto& a = ex->slots[g.part];
        if (a.role == slot_role::attachment && a.target == target && a.writable() && g.detector == f.detector &&
            f.start >= a.payload) {
          return true;
        }
      }
      return false;
    };
    for (const auto& f : r.verdict.findings) {
      if (f.applied != policy::action::redact || f.part >= ex->slots.size() || ex->slots[f.part].writable()) continue;
      if (covered_by_attachment(f)) continue;
      const auto& s = ex->slots[f.part];
      r.verdict.act = policy::action::block;
      r.detail = "a finding to redact is in " + std::string(to_string(s.role)) +
                 (s.where.empty() ? std::string() : " at " + s.where) + ", which cannot take a replacement";
      break;
    }
  }

  switch (r.verdict.act) {
    case policy::action::block: {
      std::string msg = blocked_message("the request was", r.verdict.rules);
      if (!r.detail.empty()) msg += ": " + r.detail;
      req.response = json_reply(env.api, 451, msg, "customs_blocked");
      add_verdict_headers(req, r, "block", false);
      return request_status::respond;
    }
    case policy::action::redact: {
      std::vector<std::string> replaced;
      std::vector<text_replacement> changes;
      // Findings in slots that cannot take a replacement reach here only when
      // they are covered (an inline file's own string, rewritten whole from its
      // decoded text, see above); any other such finding blocked the flow.
      std::vector<policy::finding> writable_findings;
      writable_findings.reserve(r.verdict.findings.size());
      for (const auto& f : r.verdict.findings) {
        if (f.part < ex->slots.size() && !ex->slots[f.part].writable() && f.applied == policy::action::redact) continue;
        writable_findings.push_back(f);
      }
      redactions(rules, ex->slots, writable_findings, replaced, changes);
      auto body = rewrite_request(*ex, changes);
      if (!body) {
        r.outcome = request_outcome::error;
        r.detail = "rewrite_request: " + body.error().message();
        log_line(log_level::error, "enforcement_error").kv("flow", env.flow_id).kv("error", r.detail);
        req.response =
            json_reply(env.api, 500, "customs: internal error while enforcing the policy", "customs_inspection_error");
        req.response_headers.push_back({"X-Customs-Verdict", "error"});
        return request_status::respond;
      }
      req.body = std::move(*body);
      meter();
      add_verdict_headers(req, r, "redact", true);
      return request_status::proceed;
    }
    case policy::action::tag:
      meter();
      add_verdict_headers(req, r, "tag", true);
      return request_status::proceed;
    case policy::action::allow:
      meter();
      add_verdict_headers(req, r, "allow", true);
      return request_status::proceed;
  }
  return request_status::proceed;
}

audit::index_fields index_of(const flow_env& env, std::string action, std::vector<std::string> rules) {
  audit::index_fields x;
  x.route = env.route;
  x.src = env.src.jurisdiction;
  x.dst = env.dst;
  x.tenant = env.src.tenant;
  x.action = std::move(action);
  x.rules = std::move(rules);
  x.rule_set_hash = env.snap->rules->hash();
  return x;
}

std::string_view request_action(const request_result& r) {
  switch (r.outcome) {
    case request_outcome::decided: return policy::to_string(r.verdict.act);
    case request_outcome::unscannable: return "unscannable";
    case request_outcome::error: return "error";
    case request_outcome::refused:
    case request_outcome::unseen: return "refused";
  }
  return "refused";
}

std::string opened_payload(const flow_env& env, request_result& r) {
  const policy_snapshot& snap = *env.snap;
  std::string text;
  text.reserve(1024);
  json_out p(text);
  p.begin_object().member("listener", env.listener).member("peer", env.peer);
  if (env.mode != listener_mode::reverse) {
    p.member("mode", to_string(env.mode)).member("host", env.host);
    if (!env.destination.empty()) p.member("destination", env.destination);
  }
  p.key("source")
      .begin_object()
      .member("jurisdiction", env.src.jurisdiction)
      .member("tenant", env.src.tenant)
      .member("origin", to_string(env.src.origin));
  if (!env.client_subject.empty()) p.member("client_cert_subject", env.client_subject);
  p.end_object();
  if (r.endpoint) p.member("endpoint", to_string(*r.endpoint));
  if (!r.model.empty()) p.member("model", r.model);
  p.member("stream", r.stream);
  p.key("verdict").begin_object().member("action", request_action(r));
  if (r.outcome == request_outcome::decided) {
    write_strings(p, "rules", r.verdict.rules);
    write_strings(p, "tags", r.verdict.tags);
    if (!r.verdict.exceptions.empty()) write_strings(p, "exceptions", r.verdict.exceptions);
  } else {
    p.key("rules").begin_array().end_array().key("tags").begin_array().end_array();
  }
  p.end_object();
  if (r.non_text.total() > 0) {
    p.key("non_text").begin_object();
    for (std::size_t k = 0; k < media_kind_count; ++k) {
      if (r.non_text.count[k] > 0) p.escaped_key(to_string(static_cast<media_kind>(k))).value(r.non_text.count[k]);
    }
    p.end_object();
  }
  p.key("findings").begin_array();
  write_findings(p, r.verdict.findings, policy::direction::request, snap.content, &r.parts);
  p.end_array();
  if (!r.verdict.volumes.empty()) {
    p.key("volumes").begin_array();
    for (const auto& h : r.verdict.volumes) {
      p.begin_object()
          .member("counter", h.counter)
          .member("scope", h.scope)
          .member("window", h.window)
          .member("count", h.count)
          .member("added", h.added);
      if (!h.level.empty()) p.member("level", h.level);
      p.member("action", policy::to_string(h.act)).end_object();
    }
    p.end_array();
  }
  if (!r.volumes.added.empty()) {
    // The keyed hashes this flow added per counter key: what an auditor
    // recomputes the counters from (customsctl audit volumes).
    p.key("volume_subjects").begin_array();
    for (const auto& k : r.volumes.added) {
      p.begin_object()
          .member("counter", k.counter)
          .member("scope", k.scope)
          .member("window", k.window)
          .member("zone", k.zone)
          .key("subjects")
          .begin_array();
      for (const auto& h : k.subjects) p.value(volume::to_hex(h));
      p.end_array().end_object();
    }
    p.end_array();
  }
  if (r.volumes.used_local) p.member("volume_store", "local");
  if (snap.content == audit_content::full && r.texts &&
      (r.outcome == request_outcome::decided || r.findings_limit)) {
    p.key("request_texts");
    r.texts->write_texts(p);
    bool apart = false;
    for (std::size_t i = 0; i < r.parts.size() && i < r.texts->size(); ++i) {
      if (joins(r.parts[i].role)) continue;
      if (!apart) p.key("request_texts_apart").begin_array();
      apart = true;
      p.value(std::uint64_t{i});
    }
    if (apart) p.end_array();
    if (r.texts->cut()) {
      p.key("request_texts_cut");
      r.texts->write_markers(p);
    }
  }
  if (r.findings_limit) p.member("findings_limit", snap.findings_per_flow);
  if (!r.detail.empty()) p.member("detail", r.detail);
  p.key("rule_set")
      .begin_object()
      .member("id", snap.rules->id())
      .member("version", snap.rules->version())
      .end_object();
  p.end_object();
  return text;
}

// Appends the opened record; the request goes on (or is answered) once it is
// durable. Returns pending, or the decision when it is final now.
request_status commit_request(const flow_env& env, request_state& req, request_result& r, const request_resume& resume,
                              request_status decision) {
  const auto& trail = env.snap->audit;
  audit::record rec;
  rec.kind = audit::record_kind::flow_opened;
  rec.flow_id = env.flow_id;
  rec.index = index_of(env, std::string(request_action(r)), r.verdict.rules);
  rec.index.tokens_in = rec.index.tokens_out = audit::tokens_unknown;  // not answered yet
  rec.payload = opened_payload(env, r);
  r.texts.reset();
  r.ex.reset();
  if (!trail) return decision;

  auto ticket = std::make_shared<audit_ticket>();
  r.ticket = ticket;
  ticket->appended = clock::now();
  const bool refuse = env.snap->refuse_on_audit_failure;
  const dialect api = env.api;
  request_state* rq = &req;  // kept alive by the resume handle the handler holds
  const std::error_code ec = trail->append(
      std::move(rec), [ticket, resume, rq, decision, refuse, api](std::error_code e, std::uint64_t) {
        ticket->wait_ns.store((clock::now() - ticket->appended).count());
        if (!e) {
          ticket->st.store(audit_ticket::durable);
          resume(decision);
          return;
        }
        ticket->error.store(e.value());
        ticket->st.store(audit_ticket::failed);
        if (refuse) {
          refuse_for_audit(*rq, api);
          resume(request_status::respond);
        } else {
          resume(decision);
        }
      });
  if (!ec) return request_status::pending;
  ticket->error.store(ec.value());
  ticket->st.store(audit_ticket::failed);
  if (!refuse) return decision;
  refuse_for_audit(req, api);
  return request_status::respond;
}

// The counters' answer taken: a refusing store answers 503, else the verdict
// (with its volume hits) is applied.
request_status counted(const flow_env& env, request_state& req, request_result& r) {
  r.volumes = std::move(r.counting.out);
  r.counting = {};
  if (r.volumes.refused) {
    r.outcome = request_outcome::refused;
    r.detail = "volume counters unavailable: " + r.volumes.detail;
    log_line(log_level::warn, "volumes_unavailable")
        .kv("flow", env.flow_id)
        .kv("error", r.volumes.detail)
        .kv("on_unavailable", "refuse");
    req.response = json_reply(env.api, 503, "customs: the volume counters cannot be reached; try again later",
                              "customs_volumes_unavailable");
    req.response.headers.push_back({"Retry-After", "1"});
    req.response_headers.push_back({"X-Customs-Verdict", "refused"});
    return request_status::respond;
  }
  if (r.volumes.used_local) {
    log_line(log_level::warn, "volumes_unavailable")
        .kv("flow", env.flow_id)
        .kv("error", r.volumes.detail)
        .kv("on_unavailable", "local");
  }
  return finish_request(env, req, r);
}

void on_counted(const std::shared_ptr<flow_env>& env, const std::shared_ptr<request_side>& side, request_state& req,
                const request_resume& resume, volume::counter_result answer);

// Counting rounds (volume_counter::prepare), with side->lock held (or on the
// worker before the request side is shared): a
// synchronous store answers at once; an asynchronous one (Redis, and SQLite, whose answer waits for its group commit) answers on its
// own thread, and the flow waits pending while its worker serves other flows.
// The answer comes back to the worker through resume.post (which runs only
// while the flow still waits, so the request state exists), and on_counted goes
// on from there.
request_status count_rounds(const std::shared_ptr<flow_env>& env, const std::shared_ptr<request_side>& side,
                            request_state& req, const request_resume& resume) {
  request_result& r = side->r;
  const auto& counter = *env->snap->volumes;
  const auto& rules = *env->snap->rules;
  while (counter.prepare(rules, r.ctx, r.verdict, r.counted_at, r.counting)) {
    auto& store = counter.store_for(r.counting);
    if (!store.asynchronous()) {
      counter.take(rules, r.ctx, r.verdict, r.counting, store.add(r.counting.ops));
      continue;
    }
    request_state* rq = &req;  // kept alive by the resume handle
    store.add_async(r.counting.ops, [env, side, rq, resume](volume::counter_result answer) {
      resume.post([env, side, rq, resume, answer = std::move(answer)]() mutable {
        on_counted(env, side, *rq, resume, std::move(answer));
      });
    });
    return request_status::pending;
  }
  return counted(*env, req, r);
}

void on_counted(const std::shared_ptr<flow_env>& env, const std::shared_ptr<request_side>& side, request_state& req,
                const request_resume& resume, volume::counter_result answer) {
  const auto t0 = clock::now();
  request_status st = request_status::respond;
  {
    std::lock_guard lock(side->lock);
    if (side->abandoned) return;
    request_result& r = side->r;
    try {
      env->snap->volumes->take(*env->snap->rules, r.ctx, r.verdict, r.counting, std::move(answer));
      st = count_rounds(env, side, req, resume);
      if (st != request_status::pending) st = commit_request(*env, req, r, resume, st);
    } catch (...) {
      // Out of memory while deciding: no record was appended, nothing leaves.
      r.outcome = request_outcome::error;
      r.detail = "internal error after counting";
      req.response =
          json_reply(env->api, 500, "customs: internal error while enforcing the policy", "customs_inspection_error");
      req.response_headers.push_back({"X-Customs-Verdict", "error"});
      st = request_status::respond;
    }
    r.inspect += clock::now() - t0;
  }
  if (st != request_status::pending) resume(st);
}

// After inspect_request, with side->lock held (or on the worker before the
// request side is shared): a decided request (`decision`
// pending) goes through the volume counters, if the rule set has any, and has
// its verdict applied; then the opened record is appended.
request_status settle_request(const std::shared_ptr<flow_env>& env, const std::shared_ptr<request_side>& side,
                              request_state& req, const request_resume& resume, request_status decision) {
  request_result& r = side->r;
  if (decision == request_status::pending) {
    const policy_snapshot& snap = *env->snap;
    if (snap.volumes && policy::has_volumes(*snap.rules)) {
      r.counted_at = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
      decision = count_rounds(env, side, req, resume);
      if (decision == request_status::pending) return decision;
    } else {
      decision = finish_request(*env, req, r);
    }
  }
  return commit_request(*env, req, r, resume, decision);
}

// The volume metrics of a flow (on its worker, at its end).
void count_volumes(enforce_metrics& stats, unsigned w, std::string_view backend, const request_result& r) {
  const auto& v = r.volumes;
  if (!v.errors.empty()) {
    stats.volume_ops.at(w, {backend, "unavailable"}).add();
    stats.volume_unavailable.at(w, {v.refused ? "refuse" : "local"}).add();
  }
  if (v.rounds > 0 && v.errors.empty()) {
    stats.volume_ops.at(w, {backend, v.added.empty() ? "limited" : "added"}).add();
  }
  for (const auto& h : r.verdict.volumes) {
    if (!h.level.empty()) stats.volume_levels.at(w, {h.counter, h.level}).add();
  }
}

class enforce_filter final : public filter {
 public:
  enforce_filter(std::shared_ptr<const policy_snapshot> snap, const flow_info& f)
      : info_(&f), shard_(&snap->stats->shard(f.worker)), env_(std::make_shared<flow_env>()),
        side_(std::make_shared<request_side>()) {
    env_->snap = std::move(snap);
    env_->flow_id = f.id;
    env_->worker = f.worker;
    env_->listener = f.listener;
    env_->peer = f.peer.to_string();
    env_->client_subject = f.client_subject;
    env_->mode = f.mode;
    env_->host = f.host;
    env_->destination = f.destination;
    if (f.route) {
      env_->api = f.route->api;
      env_->dst = f.route->jurisdiction;
      env_->route = f.route->prefix;
    }
  }

  request_status on_request(request_state& req, const request_resume& resume) override;
  response_head_status on_response_head(response_head_state& head) override;
  event_status on_event(event_state& ev) override;
  event_status on_stream_end(stream_end_state& end) override;
  void on_response_body(response_body_state& body) override;
  void on_flow_end(const flow_summary& summary) noexcept override;
  void close_minimal(const flow_summary& summary) noexcept;

 private:
  // The request result, for the phases after the request went on: whoever
  // inspected it has finished (the resume that let the flow go on came after).
  [[nodiscard]] const request_result& req() const noexcept { return side_->r; }
  [[nodiscard]] const policy_snapshot& snap() const noexcept { return *env_->snap; }
  [[nodiscard]] policy::action response_action(std::optional<policy::verdict>& final_resp) const;
  void response_unscannable(response_body_state& body, std::string why);
  void note_time(clock::time_point t0) { inspect_ += clock::now() - t0; }

  const flow_info* info_;
  enforce_shard* shard_;
  std::shared_ptr<flow_env> env_;
  std::shared_ptr<request_side> side_;

  // Response.
  std::optional<stream_guard> guard_;
  bool response_unscannable_ = false;  // response could not be inspected
  bool response_encoded_ = false;      // the upstream's body has a Content-Encoding (not identity)
  bool response_error_ = false;        // internal failure on the response
  bool response_findings_limit_ = false;
  std::string response_detail_;
  std::uint64_t unscanned_events_ = 0;
  std::optional<policy::verdict> body_v_;  // a non-streamed response's verdict
  std::vector<part_info> body_parts_;
  std::optional<kept_texts> response_texts_;
  token_usage usage_;
  std::chrono::nanoseconds inspect_{0};
};

request_status enforce_filter::on_request(request_state& req, const request_resume& resume) {
  const auto t0 = clock::now();
  flow_env& env = *env_;
  request_result& r = side_->r;
  env.src = snap().sources.resolve(*info_, req.headers);
  strip_customs_headers(req.headers);
  if (env.src.header_ignored) {
    shard_->headers_ignored.add();
    log_line(log_level::warn, "source_header_ignored")
        .kv("flow", info_->id)
        .kv("peer", info_->peer.to_string())
        .kv("reason", "the peer is not in trusted_proxies");
  }
  if (env.src.origin == source_origin::none) {
    r.outcome = request_outcome::refused;
    r.detail = env.src.error;
    log_line(log_level::warn, "source_unresolved").kv("flow", info_->id).kv("peer", info_->peer.to_string()).kv("error", r.detail);
    req.response = json_reply(env.api, 403, "customs: " + r.detail, "customs_unknown_source");
    req.response_headers.push_back({"X-Customs-Verdict", "refused"});
    note_time(t0);
    return commit_request(env, req, r, resume, request_status::respond);
  }
  // A compressed answer could not be inspected: ask for an uncompressed one.
  req.upstream_headers.push_back({"Accept-Encoding", "identity"});

  if (req.body.size() >= inspect_pool::offload_bytes && snap().pool) {
    // A large body is inspected on the pool, so that this worker's other flows
    // go on meanwhile.
    r.offloaded = true;
    const bool posted = snap().pool->try_post([env = env_, side = side_, rq = &req, resume]() {
      try {
        request_result res;
        res.offloaded = true;
        const auto start = clock::now();
        const request_status decision = inspect_request(*env, *rq, res);
        res.inspect = clock::now() - start;
        request_status now = request_status::pending;
        {
          std::lock_guard lock(side->lock);
          if (side->abandoned) return;  // the flow ended meanwhile: nothing goes on
          side->r = std::move(res);
          side->published = true;
          now = settle_request(env, side, *rq, resume, decision);
        }
        if (now != request_status::pending) resume(now);
      } catch (const std::exception& e) {
        log_line(log_level::error, "enforcement_error").kv("flow", env->flow_id).kv("phase", "request").kv("error", e.what());
      } catch (...) {
        log_line(log_level::error, "enforcement_error").kv("flow", env->flow_id).kv("phase", "request");
      }
      // On an exception the resume handle is dropped uncalled: the client gets 500.
    });
    if (posted) {
      shard_->offloaded.add();
      note_time(t0);
      return request_status::pending;
    }
    r.offloaded = false;
    r.outcome = request_outcome::refused;
    r.detail = "inspect_queue";
    snap().stats->limit_hits.at(info_->worker, {"inspect_queue"}).add();
    req.response = json_reply(env.api, 503, "customs: too many large requests are being inspected; try again later",
                              "customs_busy");
    req.response.headers.push_back({"Retry-After", "1"});
    req.response_headers.push_back({"X-Customs-Verdict", "refused"});
    note_time(t0);
    return commit_request(env, req, r, resume, request_status::respond);
  }
  // On the worker, nothing else sees the request side yet: no lock needed
  // (an asynchronous counter store's answer comes back on this worker later).
  const request_status decision = inspect_request(env, req, r);
  side_->published = true;
  const request_status now = settle_request(env_, side_, req, resume, decision);
  note_time(t0);
  return now;
}

response_head_status enforce_filter::on_response_head(response_head_state& head) {
  const request_result& r = req();
  if (!r.endpoint || r.outcome != request_outcome::decided) {
    // Forwarded without inspection (unscannable: tag or allow): the response
    // cannot be decoded either.
    if (r.outcome == request_outcome::unscannable) response_unscannable_ = head.kind != body_kind::none;
    return response_head_status::proceed;
  }
  // A compressed (or otherwise encoded) body cannot be scanned, whatever
  // was asked for: it is unscannable, never relayed as if it had been read.
  // (Bodies that are never scanned, the 2xx answers of endpoints without
  // text, are relayed as they come, coded or not.)
  const bool never_scanned = head.kind == body_kind::whole && head.status >= 200 && head.status < 300 &&
                             !answers_with_text(*r.endpoint);
  if (head.kind != body_kind::none && head.headers != nullptr && !never_scanned) {
    if (const auto coding = content_coding(*head.headers); !coding.empty()) {
      response_encoded_ = true;
      response_detail_ = "response body has Content-Encoding: " + coding;
      if (head.kind == body_kind::whole) return response_head_status::inspect_body;
      // The stream is not decoded (no guard): every block is unscanned, and
      // in block mode the first one is answered with an error event, which
      // the client reads uncompressed.
      if (snap().unscannable == unscannable_mode::block) head.add_headers.push_back({"Content-Encoding", "identity"});
      return response_head_status::proceed;
    }
  }
  if (head.kind == body_kind::event_stream) {
    const auto t0 = clock::now();
    stream_guard_options o;
    o.unscannable = snap().unscannable;
    o.keep_texts = snap().content == audit_content::full;
    o.keep_bytes = snap().content_bytes;
    o.max_findings = snap().findings_per_flow;
    o.stats = shard_;
    o.strip_usage = r.usage_injected;
    auto g = stream_guard::create(env_->api, *r.endpoint, snap().rules, env_->context(policy::direction::response), o);
    if (g) guard_.emplace(std::move(*g));
    else response_detail_ = "event stream on " + std::string(to_string(*r.endpoint)) + ": " + g.error().message();
    note_time(t0);
    return response_head_status::proceed;
  }
  if (head.kind != body_kind::whole) return response_head_status::proceed;
  // Answers with text, and provider errors of any endpoint (an error may quote
  // what it refuses), are read whole and scanned.
  if (head.status >= 200 && head.status < 300) {
    return answers_with_text(*r.endpoint) ? response_head_status::inspect_body : response_head_status::proceed;
  }
  // Any other status (3xx included: clients and SDKs show its body too).
  return response_head_status::inspect_body;
}

event_status enforce_filter::on_event(event_state& ev) {
  if (!guard_) {
    // Nothing can decode this stream.
    if (snap().unscannable == unscannable_mode::block && req().outcome == request_outcome::decided) {
      response_unscannable_ = true;
      ev.out.push_back(
          stream_error_event(env_->api, 451, "customs: the response could not be inspected", "customs_unscannable"));
      return event_status::stop;
    }
    if (ev.event->has_data || response_encoded_) {
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

void enforce_filter::response_unscannable(response_body_state& body, std::string why) {
  response_detail_ = std::move(why);
  response_unscannable_ = true;
  if (snap().unscannable != unscannable_mode::block) return;
  body.status = 451;
  body.local_answer = true;
  body.body = error_body(env_->api, 451, "customs: the response could not be inspected", "customs_unscannable");
  body.add_headers.push_back({"Content-Type", "application/json"});
  body.add_headers.push_back({"X-Customs-Response-Verdict", "unscannable"});
}

void enforce_filter::on_response_body(response_body_state& body) {
  const auto t0 = clock::now();
  const scope_exit done{[this, t0] { note_time(t0); }};
  if (response_encoded_) return response_unscannable(body, response_detail_);
  const bool success = body.status >= 200 && body.status < 300;
  // A 2xx answer in the endpoint's shape, or (any status) a provider error,
  // whose every string is scanned; a non-JSON error body is scanned as text.
  auto ex = success ? extract_response(env_->api, *req().endpoint, body.body) : extract_error_body(body.body);
  std::optional<std::string> raw;  // a non-JSON error body, scanned as one text
  if (!ex) {
    if (success) return response_unscannable(body, "response: " + ex.error().message());
    raw = body.body;
  } else {
    usage_.merge(ex->usage);
  }
  const auto& rules = *snap().rules;
  const policy::flow_context ctx = env_->context(policy::direction::response);
  std::vector<std::string_view> texts;
  if (raw) {
    texts.push_back(*raw);
    body_parts_.push_back({slot_role::error, {}});
  } else {
    for (const auto& s : ex->slots) texts.push_back(s.text);
    body_parts_ = parts_of(ex->slots);
  }
  policy::parts_options po;
  po.join = false;  // as streams are scanned: each text alone (and as replay judges them)
  po.max_findings = snap().findings_per_flow;
  auto scanned = policy::scan_parts(snap().rules, ctx, texts, po);
  body_v_ = rules.decide(ctx, std::move(scanned.findings));
  const policy::verdict& v = *body_v_;
  if (snap().content == audit_content::full) {
    response_texts_.emplace(snap().content_bytes);
    for (auto t : texts) response_texts_->add(t);
  }
  if (v.act == policy::action::block) {
    body.status = 451;
    body.local_answer = true;
    body.body = error_body(env_->api, 451, blocked_message("the response was", v.rules), "customs_blocked");
    body.add_headers.push_back({"Content-Type", "application/json"});
    body.add_headers.push_back({"X-Customs-Response-Verdict", "block"});
    body.add_headers.push_back({"X-Customs-Response-Rule", join(v.rules)});
    return;
  }
  if (scanned.truncated) {
    response_findings_limit_ = true;
    response_unscannable(body, "response: more than " + std::to_string(snap().findings_per_flow) + " findings");
    return;
  }
  if (raw) {
    if (v.act == policy::action::redact) body.body = rules.redact(*raw, v.findings, 0);
  } else {
    // A body that repeated a key is forwarded re-serialised from what was read.
    bool rewrite = (success && req().logprobs && strip_logprobs(ex->document)) || ex->duplicate_keys;
    std::vector<std::string> texts_out;
    std::vector<text_replacement> changes;
    if (v.act == policy::action::redact) {
      redactions(rules, ex->slots, v.findings, texts_out, changes);
      rewrite = true;
    }
    if (rewrite) {
      auto out = rewrite_response(*ex, changes);
      if (!out) {
        response_error_ = true;
        response_detail_ = "rewrite_response: " + out.error().message();
        log_line(log_level::error, "enforcement_error").kv("flow", info_->id).kv("error", response_detail_);
        body.status = 500;
        body.body = error_body(env_->api, 500, "customs: internal error while enforcing the policy",
                               "customs_inspection_error");
        body.add_headers.push_back({"Content-Type", "application/json"});
        return;
      }
      body.body = std::move(*out);
    }
  }
  if (v.act >= policy::action::tag) {
    body.add_headers.push_back({"X-Customs-Response-Verdict", std::string(policy::to_string(v.act))});
    if (!v.rules.empty()) body.add_headers.push_back({"X-Customs-Response-Rule", join(v.rules)});
    if (!v.tags.empty()) body.add_headers.push_back({"X-Customs-Response-Tags", join(v.tags)});
  }
}

policy::action enforce_filter::response_action(std::optional<policy::verdict>& final_resp) const {
  if (body_v_) {
    final_resp = *body_v_;
  } else if (guard_ && (guard_->segments() > 0 || guard_->cut() == cut_reason::blocked)) {
    // The stream's verdict, decided as audit replay decides the recorded texts:
    // all segments together, one part each.
    final_resp = snap().rules->decide(env_->context(policy::direction::response), guard_->findings());
    // A finding that asks for a redaction where the text cannot be rewritten
    // (an event name, an error event's type) cuts the stream as a block: the
    // record says what was done.
    if (guard_->cut() == cut_reason::blocked) final_resp->act = policy::action::block;
  }
  return final_resp ? final_resp->act : policy::action::allow;
}

void enforce_filter::on_flow_end(const flow_summary& summary) noexcept {
  bool closed = false;  // the closing record was handed to the trail (or refused by it)
  try {
    // Take the request side: a request still being inspected on the pool is
    // abandoned (it will neither commit nor go on).
    std::unique_lock lock(side_->lock);
    side_->abandoned = true;
    request_result& r = side_->r;
    const bool inspecting = r.offloaded && !side_->published;
    if (r.outcome == request_outcome::unseen && !inspecting) {
      // Never inspected, never forwarded: the trail still shows the attempt.
      env_->src = snap().sources.resolve(*info_, boost::beast::http::fields{});
    }
    if (inspecting) {
      r.outcome = request_outcome::error;
      r.detail = "the flow ended while its request was being inspected";
    }
    const policy_snapshot& sn = snap();
    std::optional<policy::verdict> resp;
    const policy::action resp_act = response_action(resp);
    const cut_reason cut = guard_ ? guard_->cut() : cut_reason::none;
    bool resp_findings_limit = response_findings_limit_;
    if (guard_) {
      usage_.merge(guard_->usage());
      unscanned_events_ += guard_->unscanned_events();
      if (guard_->cut() != cut_reason::none || guard_->unscanned_events() > 0) response_detail_ = guard_->detail();
      resp_findings_limit = resp_findings_limit || guard_->findings_limit();
    }
    const bool resp_unscannable = response_unscannable_ || cut == cut_reason::unscannable || unscanned_events_ > 0;
    const bool resp_error = response_error_ || cut == cut_reason::engine_error;

    // The audit trail's view of the opened record.
    bool audit_refused = false;
    std::string_view audit_failure;
    std::int64_t wait_ns = -1;
    if (r.ticket) {
      const int st = r.ticket->st.load();
      if (st == audit_ticket::failed) {
        audit_failure = audit_reason(r.ticket->error.load());
        audit_refused = sn.refuse_on_audit_failure;
      } else if (st == audit_ticket::durable) {
        wait_ns = r.ticket->wait_ns.load();
      }
    }

    const bool decided = r.outcome == request_outcome::decided;
    std::string action;
    if (r.outcome == request_outcome::unseen || r.outcome == request_outcome::error) action = "error";
    else if (r.outcome == request_outcome::refused || audit_refused) action = "refused";
    else if ((decided && r.verdict.act == policy::action::block) || resp_act == policy::action::block) action = "block";
    else if (resp_error) action = "error";
    else if (r.outcome == request_outcome::unscannable || resp_unscannable) action = "unscannable";
    else action = policy::to_string(std::max(r.verdict.act, resp_act));

    const std::vector<std::string> rules = resp ? merge_sorted(r.verdict.rules, resp->rules) : r.verdict.rules;

    audit::record rec;
    rec.kind = audit::record_kind::flow_closed;
    rec.flow_id = info_->id;
    rec.index = index_of(*env_, action, rules);
    rec.index.tokens_in = usage_.input_tokens.value_or(audit::tokens_unknown);
    rec.index.tokens_out = usage_.output_tokens.value_or(audit::tokens_unknown);

    std::string& text = rec.payload;
    text.reserve(1024);
    json_out p(text);
    p.begin_object().member("outcome", to_string(summary.outcome));
    if (!summary.failure.empty()) p.member("failure", summary.failure);
    p.member("status", summary.status).member("cut", summary.stream_cut);
    if (cut != cut_reason::none) p.member("cut_reason", to_string(cut));
    std::string_view req_action = "none";
    if (decided) req_action = policy::to_string(r.verdict.act);
    else if (r.outcome == request_outcome::unscannable) req_action = "unscannable";
    else if (r.outcome == request_outcome::refused) req_action = "refused";
    else if (r.outcome == request_outcome::error) req_action = "error";
    p.key("verdict")
        .begin_object()
        .member("action", action)
        .member("request", req_action)
        .member("response",
                resp ? policy::to_string(resp->act) : std::string_view(resp_unscannable ? "unscannable" : "none"));
    write_strings(p, "rules", rules);
    write_strings(p, "tags", resp ? merge_sorted(r.verdict.tags, resp->tags) : r.verdict.tags);
    p.end_object();
    p.key("usage").begin_object();
    if (usage_.input_tokens) p.member("input_tokens", *usage_.input_tokens);
    if (usage_.output_tokens) p.member("output_tokens", *usage_.output_tokens);
    p.end_object();
    if (r.usage_injected) p.member("usage_requested", true);
    if (!r.model.empty()) p.member("model", r.model);
    p.key("bytes")
        .begin_object()
        .member("in", summary.bytes_in)
        .member("out", summary.bytes_out)
        .member("upstream_in", summary.upstream_bytes_in)
        .member("upstream_out", summary.upstream_bytes_out)
        .end_object();
    p.member("events", summary.events);
    p.key("timings_ms").begin_object().member("duration", static_cast<double>(summary.duration.count()) / 1e6);
    if (summary.ttfb.count() >= 0) p.member("ttfb", static_cast<double>(summary.ttfb.count()) / 1e6);
    if (summary.upstream_ttfb.count() >= 0) {
      p.member("upstream_ttfb", static_cast<double>(summary.upstream_ttfb.count()) / 1e6);
    }
    const auto inspected = inspect_ + r.inspect;
    p.member("inspect", static_cast<double>(inspected.count()) / 1e6);
    if (wait_ns >= 0) p.member("audit_wait", static_cast<double>(wait_ns) / 1e6);
    p.end_object();
    p.key("findings").begin_array();
    write_findings(p, r.verdict.findings, policy::direction::request, sn.content, &r.parts);
    if (resp) {
      write_findings(p, resp->findings, policy::direction::response, sn.content, body_v_ ? &body_parts_ : nullptr);
    }
    p.end_array();
    bool content_cut = r.content_limit;
    if (sn.content == audit_content::full) {
      kept_texts* kept = guard_ ? &guard_->kept() : (response_texts_ ? &*response_texts_ : nullptr);
      if (kept != nullptr && (resp || kept->size() > 0)) {
        p.key("response_texts");
        kept->write_texts(p);
        if (kept->cut()) {
          p.key("response_texts_cut");
          kept->write_markers(p);
          content_cut = true;
        }
      }
    }
    if (resp_findings_limit) p.member("findings_limit", sn.findings_per_flow);
    if (unscanned_events_ > 0) p.member("unscanned_events", unscanned_events_);
    if (!audit_failure.empty()) p.member("audit_failure", audit_failure);
    if (!r.detail.empty()) p.member("detail", r.detail);
    if (!response_detail_.empty()) p.member("response_detail", response_detail_);
    p.end_object();

    if (summary.report != nullptr) {
      // The flow_end log line: the same facts as the closing record's index,
      // without content.
      flow_report& rep = *summary.report;
      rep.src_jurisdiction = env_->src.jurisdiction;
      if (!env_->dst.empty()) rep.dst_jurisdiction = env_->dst;
      rep.tenant = env_->src.tenant;
      rep.verdict = action;
      rep.rules = rules;
      if (usage_.input_tokens) rep.tokens_in = static_cast<std::int64_t>(*usage_.input_tokens);
      if (usage_.output_tokens) rep.tokens_out = static_cast<std::int64_t>(*usage_.output_tokens);
      if (r.outcome != request_outcome::unseen) rep.inspect = std::chrono::duration_cast<std::chrono::nanoseconds>(inspected);
      if (wait_ns >= 0) rep.audit_wait = std::chrono::nanoseconds(wait_ns);
    }

    if (sn.audit) {
      const auto ec = sn.audit->append(std::move(rec));
      closed = true;
      if (ec) sn.stats->audit_failures.at(info_->worker, {audit_reason(ec.value())}).add();
    }
    lock.unlock();

    // Metrics (this worker's shards).
    auto& stats = *sn.stats;
    const unsigned w = info_->worker;
    stats.flows.at(w, {env_->route, action}).add();
    if (!env_->src.jurisdiction.empty()) stats.pairs.at(w, {env_->src.jurisdiction, env_->dst}).add();
    for (const auto& rule : rules) stats.rules.at(w, {rule}).add();
    {
      const std::string_view model = stats.models.admit(r.model);
      const std::string_view tenant = stats.tenants.admit(env_->src.tenant);
      if (usage_.empty()) {
        if (decided && r.verdict.act != policy::action::block) stats.usage_unknown.at(w, {env_->route, model}).add();
      } else {
        const auto& e = *env_;
        if (usage_.input_tokens) {
          stats.tokens.at(w, {e.route, tenant, e.src.jurisdiction, e.dst, model, "in"}).add(*usage_.input_tokens);
        }
        if (usage_.output_tokens) {
          stats.tokens.at(w, {e.route, tenant, e.src.jurisdiction, e.dst, model, "out"}).add(*usage_.output_tokens);
        }
      }
    }
    if (sn.volumes) count_volumes(stats, w, sn.volumes->backend(), r);
    for (const auto& f : r.verdict.findings) stats.findings.at(w, {f.detector, "request"}).add();
    if (resp) {
      for (const auto& f : resp->findings) stats.findings.at(w, {f.detector, "response"}).add();
    }
    if (r.findings_limit || resp_findings_limit) stats.limit_hits.at(w, {"findings_per_flow"}).add();
    if (r.decoded_limit) stats.limit_hits.at(w, {"decoded_text_bytes"}).add();
    if (content_cut) stats.limit_hits.at(w, {"audit_content_bytes"}).add();
    if (!audit_failure.empty()) {
      stats.audit_failures.at(w, {audit_failure}).add();
      if (audit_refused) stats.audit_refusals.at(w, {audit_failure}).add();
      static std::atomic<std::int64_t> last_log{0};
      const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(clock::now().time_since_epoch()).count();
      if (last_log.exchange(now_s) != now_s) {
        log_line(log_level::error, "audit_refused")
            .kv("flow", info_->id)
            .kv("reason", audit_failure)
            .kv("on_failure", sn.refuse_on_audit_failure ? "refuse" : "allow");
      }
    }
    if (wait_ns >= 0) shard_->audit_wait.observe(std::chrono::nanoseconds(wait_ns));
    if (r.outcome != request_outcome::unseen) shard_->inspect.observe(inspected);
  } catch (const std::exception& e) {
    log_line(log_level::error, "enforcement_error").kv("flow", info_->id).kv("phase", "flow_end").kv("error", e.what());
  } catch (...) {
    log_line(log_level::error, "enforcement_error").kv("flow", info_->id).kv("phase", "flow_end");
  }
  if (!closed) close_minimal(summary);
}

// The closing record when the full one could not be made (an allocation
// failed while building it): the flow still ends in the trail, as an error,
// with what costs a few small allocations. Under lasting memory exhaustion
// this fails too; the opened record then stands alone.
void enforce_filter::close_minimal(const flow_summary& summary) noexcept {
  try {
    const policy_snapshot& sn = snap();
    if (!sn.audit) return;
    audit::record rec;
    rec.kind = audit::record_kind::flow_closed;
    rec.flow_id = info_->id;
    rec.index = index_of(*env_, "error", {});
    json::object p;
    p["outcome"] = to_string(summary.outcome);
    p["failure"] = "internal_error";
    p["detail"] = "the closing record could not be built";
    rec.payload = json::serialize(p);
    if (const auto ec = sn.audit->append(std::move(rec)); ec) {
      sn.stats->audit_failures.at(info_->worker, {audit_reason(ec.value())}).add();
    }
  } catch (...) {
    log_line(log_level::error, "enforcement_error").kv("flow", info_->id).kv("phase", "flow_end_minimal");
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
