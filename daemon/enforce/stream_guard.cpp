#include "daemon/enforce/stream_guard.hpp"

#include "daemon/enforce/metering.hpp"

#include "daemon/dialect/dialect.hpp"
#include "daemon/enforce/logprobs.hpp"
#include "policy/parts.hpp"

#include <algorithm>

namespace customs::daemon::enforce {

using clock = std::chrono::steady_clock;

namespace {

crypto::byte_view bytes_of(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

std::string_view to_string(cut_reason r) noexcept {
  switch (r) {
    case cut_reason::none: return "none";
    case cut_reason::blocked: return "blocked";
    case cut_reason::unscannable: return "unscannable";
    case cut_reason::engine_error: return "engine_error";
  }
  return "none";
}

std::string sse_text(std::string_view name, std::string_view data) {
  std::string s;
  s.reserve(name.size() + data.size() + 16);
  if (!name.empty()) {
    s += "event: ";
    s += name;
    s += '\n';
  }
  s += "data: ";
  s += data;
  s += "\n\n";
  return s;
}

stream_guard::stream_guard(dialect d, stream_codec codec, policy::rule_set_ptr rules, policy::flow_context ctx,
                           stream_guard_options opts)
    : api_(d),
      codec_(std::move(codec)),
      rules_(std::move(rules)),
      ctx_(std::move(ctx)),
      opts_(opts),
      kept_(opts.keep_bytes) {
  // A response rule without selectors (say, "no answers from this destination")
  // blocks the stream whatever its text, even one without text events.
  if (rules_) flow_blocked_ = rules_->decide(ctx_, {}).act == policy::action::block;
  segs_.reserve(4);
}

stream_guard::stream_guard(stream_guard&&) noexcept = default;
stream_guard& stream_guard::operator=(stream_guard&&) noexcept = default;
stream_guard::~stream_guard() = default;

codec_result<stream_guard> stream_guard::create(dialect d, endpoint_kind e, policy::rule_set_ptr rules,
                                                policy::flow_context ctx, stream_guard_options opts) {
  auto codec = stream_codec::create(d, e);
  if (!codec) return codec.error();
  return stream_guard(d, std::move(*codec), std::move(rules), std::move(ctx), opts);
}

stream_guard::segment* stream_guard::open_segment(const std::string& key) {
  if (last_ < segs_.size() && segs_[last_].open && segs_[last_].key == key) return &segs_[last_];
  auto it = latest_.find(key);
  if (it != latest_.end() && segs_[it->second].open) {
    last_ = it->second;
    return &segs_[last_];
  }
  if (segs_.size() >= max_segments) return nullptr;
  segment s;
  s.key = key;
  s.scanner.emplace(rules_, ctx_);
  s.hash = std::make_unique<crypto::hasher>();
  segs_.push_back(std::move(s));
  if (opts_.keep_texts) (void)kept_.open();
  last_ = segs_.size() - 1;
  latest_[key] = last_;
  return &segs_[last_];
}

stream_guard::segment* stream_guard::latest_segment(std::string_view key) {
  auto it = latest_.find(std::string(key));
  return it == latest_.end() ? nullptr : &segs_[it->second];
}

stream_guard::segment* stream_guard::whole_segment(const std::string& key, std::string_view text,
                                                   std::vector<policy::finding> findings, bool last) {
  if (segs_.size() >= max_segments && !last) return nullptr;
  const auto part = static_cast<std::uint32_t>(segs_.size());
  for (auto& f : findings) f.part = part;
  segment s;
  s.key = key;
  s.open = false;
  s.whole = std::move(findings);
  s.counted = s.whole.size();
  s.digest = crypto::blake2b(bytes_of(text));
  segs_.push_back(std::move(s));
  if (opts_.keep_texts) kept_.add(text);
  // A channel still streaming keeps its open segment as the latest.
  if (auto it = latest_.find(key); it == latest_.end() || !segs_[it->second].open) latest_[key] = segs_.size() - 1;
  return &segs_.back();
}

void stream_guard::track_hold(segment& seg) {
  const bool h = seg.scanner && seg.scanner->held() > 0;
  if (h == seg.holding) return;
  const auto now = clock::now();
  if (h) {
    seg.hold_since = now;
  } else if (opts_.stats != nullptr) {
    opts_.stats->hold_back.observe(now - seg.hold_since);
  }
  seg.holding = h;
}

bool stream_guard::count_findings(segment& seg) {
  if (!seg.scanner) return false;
  const std::size_t n = seg.scanner->current().findings.size();
  if (n > seg.counted) {
    findings_ += n - seg.counted;
    seg.counted = n;
  }
  return findings_ > opts_.max_findings;
}

bool stream_guard::finish(segment& seg, std::string& released) {
  seg.open = false;
  if (!seg.scanner) return true;
  auto r = seg.scanner->finish();
  track_hold(seg);
  if (seg.hash) {
    seg.digest = seg.hash->finish();
    seg.hash.reset();
  }
  if (r.blocked) return false;
  released = std::move(r.released);
  return true;
}

policy::verdict stream_guard::scan_whole(std::string_view text, std::uint32_t part, bool& over) {
  policy::parts_options po;
  po.join = false;
  po.max_findings = findings_ >= opts_.max_findings ? 0 : opts_.max_findings - findings_;
  const std::string_view texts[] = {text};
  auto scanned = policy::scan_parts(rules_, ctx_, texts, po);
  for (auto& f : scanned.findings) f.part = part;
  over = scanned.truncated;
  return rules_->decide(ctx_, std::move(scanned.findings));
}

stream_guard::step stream_guard::stop_blocked(const segment* seg, const policy::verdict* v,
                                              std::vector<std::string>& out) {
  cut_ = cut_reason::blocked;
  if (v == nullptr && seg != nullptr && seg->scanner) v = &seg->scanner->current();
  std::string msg = "customs: the response was stopped by policy";
  if (v != nullptr && !v->rules.empty()) {
    msg += " (rules: ";
    for (std::size_t i = 0; i < v->rules.size(); ++i) {
      if (i > 0) msg += ", ";
      msg += v->rules[i];
    }
    msg += ')';
  }
  detail_ = msg;
  out.clear();
  out.push_back(stream_error_event(api_, 451, msg, "customs_blocked"));
  return step::stop;
}

stream_guard::step stream_guard::stop_whole(const std::string& key, std::string_view text, const policy::verdict& v,
                                            std::vector<std::string>& out) {
  // The findings that cut the stream are the flow's like any other (the
  // closing record and replay decide from them): a segment of their own, even
  // past max_segments (the stream ends here).
  (void)whole_segment(key, text, v.findings, true);
  findings_ += segs_.back().counted;
  return stop_blocked(nullptr, &v, out);
}

stream_guard::step stream_guard::stop_engine(std::string why, std::vector<std::string>& out) {
  cut_ = cut_reason::engine_error;
  detail_ = std::move(why);
  out.clear();
  out.push_back(stream_error_event(api_, 500, "customs: internal error while inspecting the response",
                                   "customs_inspection_error"));
  return step::stop;
}

stream_guard::step stream_guard::unscannable_event(std::string why, std::vector<std::string>& out) {
  if (opts_.unscannable != unscannable_mode::block) {
    ++unscanned_;
    if (opts_.stats != nullptr) opts_.stats->unscanned_events.add();
    if (detail_.empty()) detail_ = std::move(why);
    return step::pass;
  }
  cut_ = cut_reason::unscannable;
  detail_ = std::move(why);
  out.clear();
  out.push_back(stream_error_event(api_, 451, "customs: the provider sent an event that could not be inspected",
                                   "customs_unscannable"));
  return step::stop;
}

bool stream_guard::note_over() {
  // Under block the stream is cut at once; under tag / allow the event that
  // passed the bound is finished first (see on_event).
  if (opts_.unscannable == unscannable_mode::block) return false;
  over_ = true;
  return true;
}

stream_guard::step stream_guard::over_findings(const sse_block* block, std::vector<std::string>& out) {
  findings_limit_ = true;
  std::string why = "more than " + std::to_string(opts_.max_findings) + " findings";
  if (opts_.unscannable == unscannable_mode::block) {
    cut_ = cut_reason::unscannable;
    detail_ = std::move(why);
    out.clear();
    out.push_back(stream_error_event(api_, 451, "customs: the response could not be inspected (" + detail_ + ")",
                                     "customs_unscannable"));
    return step::stop;
  }
  // Release what the open channels hold (already decided), then let the rest
  // of the stream through uninspected, this event first.
  passthrough_ = true;
  if (detail_.empty()) detail_ = std::move(why);
  if (flush_open(out) == step::stop) return step::stop;
  if (block == nullptr) return step::pass;
  // The event that passed the bound is forwarded here (a caller that sees
  // step::pass would go on inspecting it).
  const step s = pass_uninspected(*block, out);
  if (s != step::pass) return s;
  out.emplace_back(block->raw);
  return step::replace;
}

stream_guard::step stream_guard::pass_uninspected(const sse_block& block, std::vector<std::string>& out) {
  // Not scanned, but read for what customsd meters by: a stream past the
  // bound keeps its token counts, and the usage customsd asked for (the client
  // did not) never reaches the client.
  std::optional<std::string> data;  // the event's data without its usage member
  if (auto decoded = codec_->decode(block.event, block.data)) {
    usage_.merge(decoded->usage);
    if (opts_.strip_usage && decoded->document.is_object()) {
      const auto& o = decoded->document.get_object();
      if (o.contains("usage")) {
        const auto* choices = o.if_contains("choices");
        const bool no_choices = choices == nullptr || (choices->is_array() && choices->get_array().empty());
        if (decoded->kind == event_kind::usage_only && no_choices) return step::replace;
        data = without_member(block.data, "usage");
        if (!data) return stop_engine("usage member not found in the event's data", out);
        std::replace(data->begin(), data->end(), '\n', ' ');
      }
    }
  }
  ++unscanned_;
  if (opts_.stats != nullptr) opts_.stats->unscanned_events.add();
  if (data) {
    out.push_back(sse_text(block.event, *data));
    return step::replace;
  }
  if (out.empty()) return step::pass;
  out.emplace_back(block.raw);
  return step::replace;
}

stream_guard::step stream_guard::on_name(const sse_block& block, std::vector<std::string>& out) {
  const std::string_view name = block.event;
  if (std::find(names_.begin(), names_.end(), name) != names_.end()) return step::pass;
  bool over = false;
  auto v = scan_whole(name, static_cast<std::uint32_t>(segs_.size()), over);
  if (v.act >= policy::action::redact) return stop_whole("event:" + std::string(name), name, v, out);
  if (!v.findings.empty() || over) {
    if (whole_segment("event:" + std::string(name), name, std::move(v.findings)) == nullptr) {
      return stop_engine("more than " + std::to_string(max_segments) + " channel segments", out);
    }
    findings_ += segs_.back().counted;
    if (over || findings_ > opts_.max_findings) return over_findings(&block, out);
  }
  if (names_.size() < max_names) names_.emplace_back(name);
  return step::pass;
}

stream_guard::step stream_guard::on_error_event(const sse_block& block, stream_event& ev,
                                                std::vector<std::string>& out) {
  // The provider ends the stream: release what the open channels still hold
  // (as deltas before the error event), then the error, scanned.
  if (flush_open(out) == step::stop) return step::stop;
  std::vector<std::string> repl(ev.slots.size());
  std::vector<text_replacement> changes;
  for (std::size_t i = 0; i < ev.slots.size(); ++i) {
    const text_slot& slot = ev.slots[i];
    bool over = false;
    auto v = scan_whole(slot.text, static_cast<std::uint32_t>(segs_.size()), over);
    // A string that cannot take a replacement (the event's own type) blocks
    // where it would be redacted.
    if (v.act == policy::action::block || (v.act == policy::action::redact && !slot.writable())) {
      return stop_whole("err", slot.text, v, out);
    }
    if (v.act == policy::action::redact) {
      repl[i] = rules_->redact(slot.text, v.findings, static_cast<std::uint32_t>(segs_.size()));
      changes.push_back({i, repl[i]});
    }
    if (whole_segment("err", slot.text, std::move(v.findings)) == nullptr) {
      return stop_engine("more than " + std::to_string(max_segments) + " channel segments", out);
    }
    findings_ += segs_.back().counted;
    if (over || findings_ > opts_.max_findings) return over_findings(&block, out);
  }
  if (changes.empty() && !ev.duplicate_keys) {
    if (out.empty()) return step::pass;
    out.emplace_back(block.raw);
    return step::replace;
  }
  auto data = codec_->encode(ev, changes);
  if (!data) return stop_engine("encode: " + data.error().message(), out);
  out.push_back(sse_text(block.event, *data));
  return step::replace;
}

stream_guard::step stream_guard::on_event(const sse_block& block, std::vector<std::string>& out) {
  if (cut_ != cut_reason::none) return step::stop;
  if (!block.has_data) return step::pass;  // comments and keep-alives carry no text
  if (flow_blocked_) {
    const auto v = rules_->decide(ctx_, {});
    return stop_blocked(nullptr, &v, out);
  }
  if (passthrough_) return pass_uninspected(block, out);
  if (!block.event.empty()) {
    const step named = on_name(block, out);
    if (named != step::pass) return named;
  }
  auto decoded = codec_->decode(block.event, block.data);
  if (!decoded) return unscannable_event("event: " + decoded.error().message(), out);
  stream_event& ev = *decoded;
  usage_.merge(ev.usage);
  bool strip = false;
  if (opts_.strip_usage && ev.document.is_object()) {
    auto& o = ev.document.get_object();
    if (o.contains("usage")) {
      const auto* choices = o.if_contains("choices");
      const bool no_choices = choices == nullptr || (choices->is_array() && choices->get_array().empty());
      // The chunk exists only because customsd asked for usage: drop it.
      if (ev.kind == event_kind::usage_only && no_choices) return step::replace;
      strip = true;
    }
  }

  if (ev.kind == event_kind::unknown) {
    return unscannable_event("unknown event type" + (block.event.empty() ? std::string() : " " + std::string(block.event)), out);
  }
  if (ev.kind == event_kind::error) return on_error_event(block, ev, out);

  const std::size_t n = ev.slots.size();
  repl_.resize(n);
  changed_.assign(n, 0);
  bool any_change = false;

  // 1. Deltas, in slot order.
  for (std::size_t i = 0; i < n; ++i) {
    const text_slot& slot = ev.slots[i];
    if (slot.aggregate) continue;
    segment* seg = open_segment(slot.channel);
    if (seg == nullptr) return stop_engine("more than " + std::to_string(max_segments) + " channel segments", out);
    if (opts_.keep_texts) kept_.append(static_cast<std::size_t>(seg - segs_.data()), slot.text);
    if (seg->hash) seg->hash->update(bytes_of(slot.text));
    auto r = seg->scanner->feed(slot.text);
    track_hold(*seg);
    if (r.blocked) return stop_blocked(seg, nullptr, out);
    if (count_findings(*seg) && !note_over()) return over_findings(nullptr, out);
    if (r.released != slot.text) {
      repl_[i] = std::move(r.released);
      changed_[i] = 1;
      any_change = true;
    }
  }

  // 2. Channels that close here.
  for (const auto& key : ev.closes) {
    auto it = latest_.find(key);
    if (it == latest_.end() || !segs_[it->second].open) continue;
    segment& seg = segs_[it->second];
    std::string rest;
    if (!finish(seg, rest)) return stop_blocked(&seg, nullptr, out);
    if (count_findings(seg) && !note_over()) return over_findings(nullptr, out);
    if (rest.empty()) continue;
    std::size_t last = n;
    for (std::size_t i = 0; i < n; ++i) {
      if (!ev.slots[i].aggregate && ev.slots[i].channel == key) last = i;
    }
    if (last < n) {
      if (!changed_[last]) repl_[last].assign(ev.slots[last].text);
      repl_[last] += rest;
      changed_[last] = 1;
      any_change = true;
    } else {
      auto d = codec_->make_delta(key, rest);
      if (!d) return stop_engine("make_delta: " + d.error().message(), out);
      out.push_back(sse_text(d->name, d->data));
    }
  }

  // 3. Aggregates: scanned whole again; the redacted whole text equals what
  // was released on the channel.
  for (std::size_t i = 0; i < n; ++i) {
    const text_slot& slot = ev.slots[i];
    if (!slot.aggregate) continue;
    const segment* seg = latest_segment(slot.channel);
    bool over = false;
    auto v = scan_whole(slot.text, static_cast<std::uint32_t>(segs_.size()), over);
    if (v.act == policy::action::block) return stop_whole(slot.channel, slot.text, v, out);
    // Same text as streamed (or already scanned whole): its findings are counted.
    const bool known = seg != nullptr && !seg->open && seg->digest == crypto::blake2b(bytes_of(slot.text));
    if (v.act == policy::action::redact) {
      std::string redacted = rules_->redact(slot.text, v.findings, static_cast<std::uint32_t>(segs_.size()));
      if (redacted != slot.text) {
        repl_[i] = std::move(redacted);
        changed_[i] = 1;
        any_change = true;
      }
    }
    if (!known) {
      if (whole_segment(slot.channel, slot.text, std::move(v.findings)) == nullptr) {
        return stop_engine("more than " + std::to_string(max_segments) + " channel segments", out);
      }
      findings_ += segs_.back().counted;
      if (findings_ > opts_.max_findings) over = true;
    }
    if (over && !note_over()) return over_findings(nullptr, out);
  }

  // 4. Forward. An event that repeated a key is always re-encoded from what was
  // read, so the client never sees a value that was not scanned.
  if (ev.has_logprobs && strip_logprobs(ev.document)) any_change = true;
  if (ev.duplicate_keys) any_change = true;
  if (!any_change && strip) {
    // Every byte of the chunk but the usage member, as the provider sent it.
    auto data = without_member(block.data, "usage");
    if (!data) return stop_engine("usage member not found in the event's data", out);
    // Data split over several data: lines was joined with '\n', which in
    // JSON can only be whitespace between tokens: one line carries it.
    std::replace(data->begin(), data->end(), '\n', ' ');
    out.push_back(sse_text(block.event, *data));
  } else if (!any_change) {
    if (out.empty() && !over_) return step::pass;
    out.emplace_back(block.raw);
  } else {
    if (strip) ev.document.get_object().erase("usage");
    std::vector<text_replacement> changes;
    changes.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (changed_[i]) changes.push_back({i, repl_[i]});
    }
    auto data = codec_->encode(ev, changes);
    if (!data) return stop_engine("encode: " + data.error().message(), out);
    out.push_back(sse_text(block.event, *data));
  }
  if (over_) {
    // This event was inspected whole; the rest of the stream is not (tag/allow).
    over_ = false;
    findings_limit_ = true;
    passthrough_ = true;
    if (detail_.empty()) detail_ = "more than " + std::to_string(opts_.max_findings) + " findings";
    if (flush_open(out) == step::stop) return step::stop;
  }
  return step::replace;
}

stream_guard::step stream_guard::on_end(std::vector<std::string>& out) {
  if (cut_ != cut_reason::none) return step::stop;
  if (flow_blocked_) {
    const auto v = rules_->decide(ctx_, {});
    return stop_blocked(nullptr, &v, out);
  }
  // Gemini has no end marker, and a stream may end without one: the channels
  // still open (in the order they opened) release what they hold, as events
  // to send (replace), never as a pass with events.
  const step s = flush_open(out);
  return s == step::pass && !out.empty() ? step::replace : s;
}

stream_guard::step stream_guard::flush_open(std::vector<std::string>& out) {
  for (auto& seg : segs_) {
    if (!seg.open) continue;
    std::string rest;
    if (!finish(seg, rest)) return stop_blocked(&seg, nullptr, out);
    (void)count_findings(seg);  // the stream ends or turns uninspected: nothing more to cut
    if (rest.empty()) continue;
    auto d = codec_->make_delta(seg.key, rest);
    if (!d) return stop_engine("make_delta: " + d.error().message(), out);
    out.push_back(sse_text(d->name, d->data));
  }
  return step::pass;
}

std::vector<policy::finding> stream_guard::findings() const {
  std::vector<policy::finding> all;
  for (std::size_t i = 0; i < segs_.size(); ++i) {
    const auto& s = segs_[i];
    const auto& src = s.scanner ? s.scanner->current().findings : s.whole;
    for (const auto& f : src) {
      all.push_back(f);
      all.back().part = static_cast<std::uint32_t>(i);
    }
  }
  return all;
}

}  // namespace customs::daemon::enforce
