#include "policy/parts.hpp"

#include <algorithm>

namespace customs::policy {
namespace {

bool continuation_byte(char c) noexcept { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }


}  // namespace

parts_scan scan_parts(const rule_set_ptr& rules_ptr, const flow_context& ctx, std::span<const std::string_view> texts,
                      const parts_options& options) {
  parts_scan out;
  const rule_set& rules = *rules_ptr;
  const std::size_t max_findings = options.max_findings;
  auto add = [&](finding&& f) {
    if (out.findings.size() >= max_findings) {
      out.truncated = true;
      return false;
    }
    out.findings.push_back(std::move(f));
    return true;
  };

  // Each text alone.
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string_view text = texts[i];
    if (text.empty()) continue;
    if (text.size() < options.large_text) {
      for (auto& f : rules.scan(text, static_cast<std::uint32_t>(i))) {
        if (!add(std::move(f))) return out;
      }
      continue;
    }
    stream_scanner sc(rules_ptr, ctx);
    const std::size_t room = max_findings - out.findings.size();
    bool over = false;
    for (std::size_t at = 0; at < text.size() && !over; at += options.slice) {
      (void)sc.feed(text.substr(at, options.slice));
      over = sc.current().findings.size() > room;
    }
    if (!over) (void)sc.finish();
    for (const auto& f : sc.current().findings) {
      finding c = f;
      c.part = static_cast<std::uint32_t>(i);
      c.applied = action::allow;
      c.replacement.clear();
      if (!add(std::move(c))) return out;
    }
    if (over) {
      out.truncated = true;
      return out;
    }
  }
  if (!options.join) return out;

  // Runs of 2 to max_join adjacent non-empty texts, joined with nothing; the
  // run's outer edges are its first text's start and its last text's end (as
  // in each text alone), so a neighbour never spoils a match's boundary. A
  // long first or last text contributes only the `reach` bytes next to the
  // join; a text in the middle longer than that cannot be inside a match.
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (!texts[i].empty()) idx.push_back(i);
  }
  const std::size_t reach = std::max<std::size_t>(rules.max_hold_back(), 64);
  std::string window;
  struct piece_at {
    std::size_t text;   // index into texts
    std::size_t from;   // offset of the piece in the window
    std::size_t begin;  // offset of the piece in its text
    std::size_t size;
  };
  std::vector<piece_at> layout;
  const auto group = [&](std::size_t text) -> std::uint8_t {
    return text < options.join_group.size() ? options.join_group[text] : 0;
  };
  for (std::size_t a = 0; a + 1 < idx.size(); ++a) {
    for (std::size_t b = a + 1; b < idx.size() && b - a + 1 <= options.max_join; ++b) {
      if (group(idx[b]) != group(idx[a])) break;
      if (b > a + 1 && texts[idx[b - 1]].size() > reach) break;  // a long text in the middle
      window.clear();
      layout.clear();
      for (std::size_t k = a; k <= b; ++k) {
        const std::string_view t = texts[idx[k]];
        std::size_t begin = 0, size = t.size();
        if (k == a && size > reach) {
          begin = size - reach;
          while (begin < size && continuation_byte(t[begin])) ++begin;  // whole characters
          size -= begin;
        } else if (k == b && size > reach) {
          size = reach;
          while (size > 0 && continuation_byte(t[size])) --size;
        }
        layout.push_back({idx[k], window.size(), begin, size});
        window.append(t.data() + begin, size);
      }
      const std::size_t first_end = layout.front().from + layout.front().size;
      const std::size_t last_begin = layout.back().from;
      for (auto& f : rules.scan(window, 0)) {
        // Only matches that begin in the run's first text and end in its last.
        if (f.start >= first_end || f.end <= last_begin) continue;
        for (std::size_t k = 0; k < layout.size(); ++k) {
          const auto& l = layout[k];
          const std::size_t b0 = std::max(f.start, l.from);
          const std::size_t e0 = std::min(f.end, l.from + l.size);
          if (e0 <= b0) continue;
          finding p = f;
          p.part = static_cast<std::uint32_t>(l.text);
          p.start = l.begin + (b0 - l.from);
          p.end = l.begin + (e0 - l.from);
          if (k != 0) out.continued.push_back({p.part, p.start, p.end, p.detector});
          if (!add(std::move(p))) return out;
        }
      }
    }
  }
  std::stable_sort(out.findings.begin(), out.findings.end(), [](const finding& a, const finding& b) {
    return a.part != b.part ? a.part < b.part : a.start < b.start;
  });
  return out;
}

void settle_split(verdict& v, std::span<const finding_piece> continued) {
  if (continued.empty()) return;
  std::vector<const finding_piece*> sorted;
  sorted.reserve(continued.size());
  for (const auto& c : continued) sorted.push_back(&c);
  const auto before = [](const finding_piece* a, const finding_piece* b) {
    return a->part != b->part ? a->part < b->part : a->start < b->start;
  };
  std::sort(sorted.begin(), sorted.end(), before);
  for (auto& f : v.findings) {
    if (f.applied != action::redact) continue;
    const finding_piece key{f.part, f.start, f.end, {}};
    auto it = std::lower_bound(sorted.begin(), sorted.end(), &key, before);
    for (; it != sorted.end() && (*it)->part == f.part && (*it)->start == f.start; ++it) {
      if ((*it)->end == f.end && (*it)->detector == f.detector) {
        f.replacement.clear();
        break;
      }
    }
  }
}

}  // namespace customs::policy
