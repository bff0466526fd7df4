#include "support.hpp"

#include <catch2/catch.hpp>

#include "policy/text.hpp"

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>

namespace customs::policy::testing {

std::filesystem::path source_dir() { return CUSTOMS_SOURCE_DIR; }

rule_set_ptr load_or_abort(const std::filesystem::path& path) {
  const std::vector<std::filesystem::path> p{path};
  auto r = load_rule_set(p);
  if (!r.ok()) {
    for (const auto& d : r.diagnostics) fprintf(stderr, "%s\n", d.to_string().c_str());
    std::abort();
  }
  return r.rules;
}

const rule_set_ptr& shipped() {
  static const rule_set_ptr rs = load_or_abort(source_dir() / "rules");
  return rs;
}

const detail::compiled_rule_set& compiled(const rule_set& rs) {
  return dynamic_cast<const detail::compiled_rule_set&>(rs);
}

temp_dir::temp_dir() {
  static std::atomic<unsigned> n{0};
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("customs-policy-test-" + std::to_string(rd()) + "-" + std::to_string(n++));
  std::filesystem::create_directories(path_);
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path temp_dir::write(const std::string& name, const std::string& content) const {
  const auto p = path_ / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

load_result load_yaml(const std::string& content, const load_options& opts) {
  temp_dir d;
  const std::vector<std::filesystem::path> p{d.write("pack.yaml", content)};
  return load_rule_set(p, opts);
}

flow_context flow(const std::string& src, const std::string& dst, direction dir, const std::string& tenant,
                  const std::string& route) {
  flow_context c;
  c.src = src;
  c.dst = dst;
  c.dir = dir;
  c.tenant = tenant;
  c.route = route;
  return c;
}

std::vector<std::string> codes(const load_result& r, bool errors_only) {
  std::vector<std::string> out;
  for (const auto& d : r.diagnostics) {
    if (errors_only && d.level != diagnostic::severity::error) continue;
    out.push_back(std::to_string(d.line) + ":" + std::to_string(d.col) + " " + d.code);
  }
  return out;
}

std::chrono::system_clock::time_point day(int y, unsigned m, unsigned d) {
  const std::chrono::sys_days sd = std::chrono::year{y} / std::chrono::month{m} / std::chrono::day{d};
  return std::chrono::system_clock::time_point(sd) + std::chrono::hours(12);
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 1;
    if (text::decode(s, i, len) == 0xFFFD && len == 1) return false;
    i += len;
  }
  return true;
}

expected expect_of(const rule_set& rs, const std::string& text, const flow_context& ctx) {
  expected e{rs.evaluate(text, ctx), nullptr};
  for (const auto& f : e.whole.result.findings)
    if (f.applied == action::block) {
      e.block = &f;
      break;
    }
  return e;
}

// Feeds text cut at the given (sorted) offsets and checks the result against the
// whole-text evaluation. Returns false (after reporting) on the first difference.
bool stream_agrees(const rule_set_ptr& rs, const flow_context& ctx, const std::string& text,
                   const std::vector<std::size_t>& cuts, const expected& e) {
  stream_scanner sc(rs, ctx);
  std::string released;
  bool blocked = false;
  std::size_t prev = 0;
  const bool utf8 = valid_utf8(text);
  auto take = [&](const stream_scanner::output& o) {
    released += o.released;
    blocked = blocked || o.blocked;
    if (utf8 && !o.released.empty()) {
      if (text::complete_prefix(o.released) != o.released.size()) return false;  // split a character
    }
    return sc.held() <= rs->max_hold_back();
  };
  std::vector<std::size_t> all = cuts;
  all.push_back(text.size());
  for (const auto c : all) {
    if (c < prev) continue;
    const auto o = sc.feed(std::string_view(text).substr(prev, c - prev));
    prev = c;
    if (blocked && (!o.released.empty() || !o.blocked)) {
      UNSCOPED_INFO("released after a block");
      return false;
    }
    if (!take(o)) {
      UNSCOPED_INFO("hold-back over the bound or a split character, cut at " << c);
      return false;
    }
  }
  const auto fin = sc.finish();
  if (blocked && (!fin.released.empty() || !fin.blocked)) return false;
  if (!take(fin)) return false;
  const verdict& v = e.whole.result;
  if (e.block != nullptr) {
    // Blocked: what went out is a prefix of the whole-text result, and ends
    // before the blocking match: before where its first byte is in the
    // whole-text redaction.
    std::size_t before_block = 0, cursor = 0;
    for (const auto& f : v.findings) {
      if (f.applied != action::redact || f.end <= cursor) continue;
      if (f.start >= e.block->start) break;
      before_block += f.start - std::min(f.start, cursor) + f.replacement.size();
      cursor = f.end;
    }
    if (e.block->start > cursor) before_block += e.block->start - cursor;
    const bool ok = blocked && e.whole.redacted.starts_with(released) && released.size() <= before_block;
    if (!ok) UNSCOPED_INFO("blocked=" << blocked << " released '" << released << "'");
    return ok;
  }
  if (blocked != (v.act == action::block)) {
    UNSCOPED_INFO("blocked " << blocked << " vs whole " << to_string(v.act));
    return false;
  }
  if (released != e.whole.redacted) {
    UNSCOPED_INFO("released '" << released << "'\n   whole '" << e.whole.redacted << "'");
    return false;
  }
  const auto& got = sc.current();
  if (got.findings.size() != v.findings.size()) {
    UNSCOPED_INFO("findings " << got.findings.size() << " vs " << v.findings.size());
    return false;
  }
  for (std::size_t i = 0; i < v.findings.size(); ++i) {
    const auto &a = got.findings[i], &b = v.findings[i];
    if (a.detector != b.detector || a.start != b.start || a.end != b.end || a.text != b.text ||
        a.applied != b.applied || a.replacement != b.replacement) {
      UNSCOPED_INFO("finding " << i << ": " << a.detector << " [" << a.start << "," << a.end << ") '"
                               << a.replacement << "' vs " << b.detector << " [" << b.start << "," << b.end << ") '"
                               << b.replacement << "'");
      return false;
    }
  }
  return got.act == v.act && got.rules == v.rules && got.tags == v.tags;
}

}  // namespace customs::policy::testing
