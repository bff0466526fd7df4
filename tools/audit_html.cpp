// customsctl audit report --format html: collecting the numbers and writing the
// page (see audit_html.hpp).
#include "tools/audit_html.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <span>

#include "audit/format.hpp"
#include "tools/audit_volumes.hpp"

namespace customs::tools {

namespace {

namespace json = boost::json;
using group_totals = audit::reader::group_totals;

// ---- text --------------------------------------------------------------------

// Whether a decoded code point is shown as itself: not a control character
// (tab, line feed and carriage return aside), not a noncharacter, not one of
// the characters that embed, override or isolate the direction of the text
// around them.
bool shown(char32_t c) {
  if (c == 0x09 || c == 0x0A || c == 0x0D) return true;
  if (c < 0x20 || (c >= 0x7F && c <= 0x9F)) return false;
  if (c >= 0xFDD0 && c <= 0xFDEF) return false;
  if ((c & 0xFFFE) == 0xFFFE) return false;
  if (c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069))
    return false;
  return true;
}

// s as well-formed UTF-8 holding only shown characters: each byte that does not
// start a well-formed sequence (overlong forms, surrogates, code points past
// U+10FFFF, cut sequences) and each character not shown becomes U+FFFD.
std::string clean(std::string_view s) {
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const auto cont = [&](std::size_t k, unsigned lo, unsigned hi) {
    return k < s.size() && byte(k) >= lo && byte(k) <= hi;
  };
  while (i < s.size()) {
    const unsigned b = byte(i);
    std::size_t len = 0;
    char32_t c = 0;
    if (b < 0x80) {
      len = 1, c = b;
    } else if (b >= 0xC2 && b <= 0xDF && cont(i + 1, 0x80, 0xBF)) {
      len = 2, c = ((b & 0x1F) << 6) | (byte(i + 1) & 0x3F);
    } else if (b >= 0xE0 && b <= 0xEF) {
      const unsigned lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
      if (cont(i + 1, lo, hi) && cont(i + 2, 0x80, 0xBF)) {
        len = 3, c = ((b & 0x0F) << 12) | ((byte(i + 1) & 0x3F) << 6) | (byte(i + 2) & 0x3F);
      }
    } else if (b >= 0xF0 && b <= 0xF4) {
      const unsigned lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
      if (cont(i + 1, lo, hi) && cont(i + 2, 0x80, 0xBF) && cont(i + 3, 0x80, 0xBF)) {
        len = 4, c = ((b & 0x07) << 18) | ((byte(i + 1) & 0x3F) << 12) | ((byte(i + 2) & 0x3F) << 6) |
                     (byte(i + 3) & 0x3F);
      }
    }
    if (len == 0) {
      out += replacement;
      ++i;
      continue;
    }
    if (shown(c)) out.append(s.substr(i, len));
    else out += replacement;
    i += len;
  }
  return out;
}

// Escapes the characters that are markup in HTML text and quoted attributes.
std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (const char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(ch);
    }
  }
  return out;
}

// Code points of well-formed UTF-8.
std::size_t length(std::string_view clean_text) {
  std::size_t n = 0;
  for (const char ch : clean_text) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return n;
}

// The first max code points of well-formed UTF-8, with an ellipsis when cut.
std::string clip(const std::string& clean_text, std::size_t max) {
  if (length(clean_text) <= max) return clean_text;
  std::size_t n = 0, i = 0;
  for (; i < clean_text.size(); ++i) {
    if ((static_cast<unsigned char>(clean_text[i]) & 0xC0) != 0x80 && n++ == max - 1) break;
  }
  return clean_text.substr(0, i) + "\xE2\x80\xA6";
}

// A key of the trail as shown: "-" for an empty one (a field not stored), as
// the table format shows it.
std::string key_text(const std::string& raw) { return raw.empty() ? std::string("-") : clean(raw); }

const std::string arrow = " \xE2\x86\x92 ";  // " → "

std::string pair_text(const group_totals& g) { return key_text(g.key.at(0)) + arrow + key_text(g.key.at(1)); }

std::string num(std::uint64_t n) { return std::to_string(n); }

// n / of as a percentage with one decimal, in integers (the same text on
// every machine).
std::string percent(std::uint64_t n, std::uint64_t of) {
  if (of == 0) return "-";
  const auto tenths = static_cast<std::uint64_t>((static_cast<unsigned __int128>(n) * 1000 + of / 2) / of);
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " %";
}

// An axis tick: plain up to 99999, then with k, M, G or T and at most one decimal.
std::string tick_text(std::uint64_t v) {
  if (v < 100000) return std::to_string(v);
  static constexpr std::pair<std::uint64_t, const char*> units[] = {
      {1'000'000'000'000ULL, "T"}, {1'000'000'000ULL, "G"}, {1'000'000ULL, "M"}, {1'000ULL, "k"}};
  for (const auto& [u, name] : units) {
    if (v < u) continue;
    const std::uint64_t whole = v / u, tenth = (v % u) * 10 / u;
    return std::to_string(whole) + (tenth ? "." + std::to_string(tenth) : std::string()) + name;
  }
  return std::to_string(v);
}

std::string time_text(std::int64_t us) { return audit::format::format_time(us); }

// ---- charts ------------------------------------------------------------------

// A series of a chart: its name, colour (Okabe & Ito's palette, which readers
// with any common colour-vision deficiency tell apart) and a pattern, so that
// series differ in greyscale and print too. dark: the pattern is drawn in white.
struct series_style {
  std::string_view name;
  std::string_view colour;
  std::string_view pattern;  // "", diag, backdiag, cross, dots, hlines, vlines, checker
  bool dark;
};

constexpr series_style verdict_series[] = {
    {"allowed", "#009E73", "", true},           {"tagged", "#56B4E9", "diag", false},
    {"redacted", "#E69F00", "dots", false},      {"blocked", "#D55E00", "cross", true},
    {"unscannable", "#CC79A7", "hlines", false}, {"refused", "#0072B2", "vlines", true},
    {"failed", "#F0E442", "backdiag", false},    {"other", "#CCCCCC", "", false},
};
constexpr series_style flow_series[] = {{"flows", "#0072B2", "", true}};
constexpr series_style token_series[] = {{"tokens in", "#0072B2", "", true},
                                         {"tokens out", "#E69F00", "diag", false}};
constexpr series_style finding_series[] = {{"in requests", "#0072B2", "", true},
                                           {"in responses", "#E69F00", "diag", false}};

std::vector<std::uint64_t> verdict_values(const group_totals& g) {
  return {g.allowed, g.tagged, g.redacted, g.blocked, g.unscannable, g.refused, g.failed, g.other};
}

std::string pattern_def(const std::string& id, const series_style& s) {
  if (s.pattern.empty()) return {};
  const std::string ink = s.dark ? "#ffffff" : "#000000";
  std::string shape;
  const std::string line = "\" stroke=\"" + ink + "\" stroke-width=\"1.3\" stroke-opacity=\"0.7\"/>";
  if (s.pattern == "diag") shape = "<path d=\"M-2,2 L2,-2 M0,8 L8,0 M6,10 L10,6" + line;
  else if (s.pattern == "backdiag") shape = "<path d=\"M-2,6 L2,10 M0,0 L8,8 M6,-2 L10,2" + line;
  else if (s.pattern == "cross") shape = "<path d=\"M0,0 L8,8 M8,0 L0,8" + line;
  else if (s.pattern == "hlines") shape = "<path d=\"M0,2 H8 M0,6 H8" + line;
  else if (s.pattern == "vlines") shape = "<path d=\"M2,0 V8 M6,0 V8" + line;
  else if (s.pattern == "dots")
    shape = "<circle cx=\"2\" cy=\"2\" r=\"1.4\" fill=\"" + ink +
            "\" fill-opacity=\"0.7\"/><circle cx=\"6\" cy=\"6\" r=\"1.4\" fill=\"" + ink + "\" fill-opacity=\"0.7\"/>";
  else
    shape = "<rect x=\"0\" y=\"0\" width=\"4\" height=\"4\" fill=\"" + ink +
            "\" fill-opacity=\"0.35\"/><rect x=\"4\" y=\"4\" width=\"4\" height=\"4\" fill=\"" + ink +
            "\" fill-opacity=\"0.35\"/>";
  return "<pattern id=\"" + id +
         "\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\"><rect width=\"8\" height=\"8\" fill=\"" +
         std::string(s.colour) + "\"/>" + shape + "</pattern>";
}

std::string fill_of(const std::string& chart, std::size_t k, const series_style& s) {
  return s.pattern.empty() ? std::string(s.colour) : "url(#" + chart + "-p" + std::to_string(k) + ")";
}

std::string defs(const std::string& chart, std::span<const series_style> series) {
  std::string out;
  for (std::size_t k = 0; k < series.size(); ++k) out += pattern_def(chart + "-p" + std::to_string(k), series[k]);
  return out.empty() ? out : "<defs>" + out + "</defs>";
}

// An axis from 0 to a round number at or above max, in steps of 1, 2 or 5
// times a power of ten, at most `most` of them.
struct axis {
  std::uint64_t step = 1, top = 1;
};
axis make_axis(std::uint64_t max, std::uint64_t most = 6) {
  axis a;
  if (max == 0) return a;
  for (std::uint64_t p = 1;; p *= 10) {
    for (const std::uint64_t m : {1, 2, 5}) {
      const std::uint64_t step = m * p;
      const std::uint64_t n = max / step + (max % step != 0);
      if (n <= most) {
        a.step = step;
        a.top = n * step;
        return a;
      }
    }
    if (p > ~std::uint64_t{0} / 100) {  // max near 2^64: one step
      a.step = a.top = max;
      return a;
    }
  }
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

// Estimated width in pixels of text in the charts' 12 px sans-serif.
// Generous (capitals and wide glyphs take more than the average), so that a
// label fits the room made for it.
double text_width(const std::string& clean_text, double px = 12) {
  double ems = 0;
  for (const char ch : clean_text) {
    const auto b = static_cast<unsigned char>(ch);
    if (b < 0x80) ems += 0.66;             // ASCII
    else if (b >= 0xC0 && b < 0xE0) ems += 0.75;  // Latin, Greek, Cyrillic, ...
    else if (b >= 0xE0) ems += 1.05;       // CJK, symbols, U+FFFD
  }
  return ems * px;
}

struct chart_row {
  std::string label;  // clean text
  std::vector<std::uint64_t> values;
  std::string shown;  // the label as the chart shows it, when not the label cut to label_chars
};

// A pair's label in a chart: each side cut on its own, so that both show.
chart_row pair_row(const group_totals& g, std::vector<std::uint64_t> values) {
  constexpr std::size_t side = 15;
  return {pair_text(g), std::move(values),
          clip(key_text(g.key.at(0)), side) + arrow + clip(key_text(g.key.at(1)), side)};
}

std::uint64_t sum(const std::vector<std::uint64_t>& v) {
  std::uint64_t s = 0;
  for (const auto x : v) s += x;
  return s;
}

std::string legend(const std::string& chart, std::span<const series_style> series, double x0, double y, double width) {
  if (series.size() < 2) return {};
  std::string out;
  double x = x0;
  for (std::size_t k = 0; k < series.size(); ++k) {
    const double w = 22 + text_width(std::string(series[k].name)) + 18;
    if (x + w > width && x > x0) x = x0, y += 20;
    out += "<rect x=\"" + fmt(x) + "\" y=\"" + fmt(y - 11) + "\" width=\"14\" height=\"14\" fill=\"" +
           fill_of(chart, k, series[k]) + "\" stroke=\"#333\" stroke-width=\"0.6\"/>";
    out += "<text x=\"" + fmt(x + 20) + "\" y=\"" + fmt(y) + "\">" + escape(series[k].name) + "</text>";
    x += w;
  }
  return out;
}

// Height the legend takes below a chart.
double legend_height(std::span<const series_style> series, double x0, double width) {
  if (series.size() < 2) return 0;
  double x = x0, h = 20;
  for (const auto& s : series) {
    const double w = 22 + text_width(std::string(s.name)) + 18;
    if (x + w > width && x > x0) x = x0, h += 20;
    x += w;
  }
  return h + 8;
}

std::string svg_open(const std::string& id, double w, double h, std::string_view title, std::string_view desc) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"" + id + "\" width=\"" + fmt(w) + "\" height=\"" + fmt(h) +
         "\" viewBox=\"0 0 " + fmt(w) + " " + fmt(h) + "\" role=\"img\" aria-labelledby=\"" + id + "-t " + id +
         "-d\"><title id=\"" + id + "-t\">" + escape(title) + "</title><desc id=\"" + id + "-d\">" + escape(desc) +
         "</desc>";
}

constexpr double chart_width = 900;

// Parts of a stacked bar are set apart by a thin white line, so that two of
// like grey stay two in print.
std::string separator(std::span<const series_style> series) {
  return series.size() > 1 ? " stroke=\"#ffffff\" stroke-width=\"0.8\"" : "";
}
constexpr std::size_t label_chars = 34;

// Horizontal bars, one row per category, the series stacked; the total at the
// end of each bar, each series' value inside its part when it fits. Labels and
// values are clean text.
std::string bar_chart(const std::string& id, std::string_view title, std::string_view category_title,
                      std::string_view value_title, std::span<const series_style> series,
                      const std::vector<chart_row>& rows) {
  double longest = text_width(std::string(category_title)) - 40;
  std::uint64_t max = 0;
  for (const auto& r : rows) {
    longest = std::max(longest, text_width(r.shown.empty() ? clip(r.label, label_chars) : r.shown));
    max = std::max(max, sum(r.values));
  }
  const double label_w = std::clamp(longest + 16, 90.0, 340.0);
  const double plot_x = label_w, plot_w = chart_width - label_w - 90, top = 26, row_h = 24, bar_h = 16;
  const double plot_h = static_cast<double>(rows.size()) * row_h;
  const double axis_y = top + plot_h;
  const double legend_y = axis_y + 56;
  const double height = legend_y + legend_height(series, plot_x, chart_width) + (series.size() > 1 ? 0 : -14);
  const axis ax = make_axis(max);
  const auto x_of = [&](std::uint64_t v) {
    return plot_x + plot_w * static_cast<double>(v) / static_cast<double>(ax.top);
  };

  std::string out = svg_open(id, chart_width, height, title,
                             "Bar chart; the same numbers are in the table below it.");
  out += defs(id, series);
  // Grid, ticks and the value axis.
  for (std::uint64_t v = 0;; v += ax.step) {
    const double x = x_of(v);
    out += "<line class=\"grid\" x1=\"" + fmt(x) + "\" y1=\"" + fmt(top - 4) + "\" x2=\"" + fmt(x) + "\" y2=\"" +
           fmt(axis_y) + "\"/>";
    out += "<text class=\"tick\" x=\"" + fmt(x) + "\" y=\"" + fmt(axis_y + 16) + "\" text-anchor=\"middle\">" +
           tick_text(v) + "</text>";
    if (v >= ax.top || ax.top - v < ax.step) break;
  }
  out += "<line class=\"axis\" x1=\"" + fmt(plot_x) + "\" y1=\"" + fmt(axis_y) + "\" x2=\"" + fmt(plot_x + plot_w) +
         "\" y2=\"" + fmt(axis_y) + "\"/>";
  out += "<line class=\"axis\" x1=\"" + fmt(plot_x) + "\" y1=\"" + fmt(top - 4) + "\" x2=\"" + fmt(plot_x) +
         "\" y2=\"" + fmt(axis_y) + "\"/>";
  out += "<text class=\"axis-title\" x=\"" + fmt(plot_x + plot_w / 2) + "\" y=\"" + fmt(axis_y + 38) +
         "\" text-anchor=\"middle\">" + escape(value_title) + "</text>";
  out += "<text class=\"axis-title\" x=\"4\" y=\"14\">" + escape(category_title) + "</text>";
  // Bars.
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const double y = top + static_cast<double>(i) * row_h + (row_h - bar_h) / 2;
    const double mid = y + bar_h / 2 + 4;
    const std::string shown_label = r.shown.empty() ? clip(r.label, label_chars) : r.shown;
    out += "<text x=\"" + fmt(plot_x - 8) + "\" y=\"" + fmt(mid) + "\" text-anchor=\"end\">" + escape(shown_label);
    if (shown_label != r.label) out += "<title>" + escape(r.label) + "</title>";
    out += "</text>";
    std::uint64_t acc = 0;
    for (std::size_t k = 0; k < series.size() && k < r.values.size(); ++k) {
      const std::uint64_t v = r.values[k];
      if (v == 0) continue;
      const double x0 = x_of(acc), x1 = x_of(acc + v);
      acc += v;
      out += "<rect x=\"" + fmt(x0) + "\" y=\"" + fmt(y) + "\" width=\"" + fmt(std::max(x1 - x0, 0.0)) +
             "\" height=\"" + fmt(bar_h) + "\" fill=\"" + fill_of(id, k, series[k]) + "\"" + separator(series) +
             "><title>" + escape(r.label) + ": " + escape(series[k].name) + " " + num(v) + "</title></rect>";
      if (series.size() > 1 && x1 - x0 >= text_width(num(v), 10.5) + 10)
        out += "<text class=\"seg\" x=\"" + fmt((x0 + x1) / 2) + "\" y=\"" + fmt(mid - 0.5) +
               "\" text-anchor=\"middle\">" + num(v) + "</text>";
    }
    out += "<text class=\"value\" x=\"" + fmt(x_of(acc) + 5) + "\" y=\"" + fmt(mid) + "\">" + num(acc) + "</text>";
  }
  out += legend(id, series, plot_x, legend_y, chart_width);
  out += "</svg>";
  return out;
}

// Columns over time, the series stacked from the axis up; the total above each
// column when it fits.
std::string column_chart(const std::string& id, std::string_view title, std::string_view category_title,
                         std::string_view value_title, std::span<const series_style> series,
                         const std::vector<chart_row>& rows) {
  std::uint64_t max = 0;
  for (const auto& r : rows) max = std::max(max, sum(r.values));
  const axis ax = make_axis(max);
  const double plot_x = 70, plot_w = chart_width - plot_x - 20, top = 30, plot_h = 240;
  const double axis_y = top + plot_h;
  const double slot = rows.empty() ? plot_w : plot_w / static_cast<double>(rows.size());
  const double col_w = std::min(slot * 0.7, 56.0);
  double longest = 0;
  for (const auto& r : rows) longest = std::max(longest, text_width(r.label, 11));
  const bool upright = longest <= slot - 4;
  const std::size_t every = upright ? 1 : std::max<std::size_t>(1, static_cast<std::size_t>(15 / slot) + 1);
  const double labels_h = upright ? 20 : longest * 0.72 + 16;
  const double title_y = axis_y + labels_h + 20;
  const double legend_y = title_y + 26;
  const double height = legend_y + legend_height(series, plot_x, chart_width) + (series.size() > 1 ? 0 : -14);
  bool values_fit = true;
  for (const auto& r : rows) values_fit = values_fit && text_width(num(sum(r.values)), 11) <= slot - 2;
  const auto y_of = [&](std::uint64_t v) {
    return axis_y - plot_h * static_cast<double>(v) / static_cast<double>(ax.top);
  };

  std::string out = svg_open(id, chart_width, height, title,
                             "Column chart; the same numbers are in the table below it.");
  out += defs(id, series);
  for (std::uint64_t v = 0;; v += ax.step) {
    const double y = y_of(v);
    out += "<line class=\"grid\" x1=\"" + fmt(plot_x) + "\" y1=\"" + fmt(y) + "\" x2=\"" + fmt(plot_x + plot_w) +
           "\" y2=\"" + fmt(y) + "\"/>";
    out += "<text class=\"tick\" x=\"" + fmt(plot_x - 6) + "\" y=\"" + fmt(y + 4) + "\" text-anchor=\"end\">" +
           tick_text(v) + "</text>";
    if (v >= ax.top || ax.top - v < ax.step) break;
  }
  out += "<line class=\"axis\" x1=\"" + fmt(plot_x) + "\" y1=\"" + fmt(axis_y) + "\" x2=\"" + fmt(plot_x + plot_w) +
         "\" y2=\"" + fmt(axis_y) + "\"/>";
  out += "<line class=\"axis\" x1=\"" + fmt(plot_x) + "\" y1=\"" + fmt(top - 6) + "\" x2=\"" + fmt(plot_x) +
         "\" y2=\"" + fmt(axis_y) + "\"/>";
  out += "<text class=\"axis-title\" x=\"" + fmt(plot_x) + "\" y=\"14\" text-anchor=\"middle\">" +
         escape(value_title) + "</text>";
  out += "<text class=\"axis-title\" x=\"" + fmt(plot_x + plot_w / 2) + "\" y=\"" + fmt(title_y) +
         "\" text-anchor=\"middle\">" + escape(category_title) + "</text>";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const double cx = plot_x + slot * (static_cast<double>(i) + 0.5);
    std::uint64_t acc = 0;
    for (std::size_t k = 0; k < series.size() && k < r.values.size(); ++k) {
      const std::uint64_t v = r.values[k];
      if (v == 0) continue;
      const double y1 = y_of(acc), y0 = y_of(acc + v);
      acc += v;
      out += "<rect x=\"" + fmt(cx - col_w / 2) + "\" y=\"" + fmt(y0) + "\" width=\"" + fmt(col_w) + "\" height=\"" +
             fmt(std::max(y1 - y0, 0.0)) + "\" fill=\"" + fill_of(id, k, series[k]) + "\"" + separator(series) +
             "><title>" + escape(r.label) +
             ": " + escape(series[k].name) + " " + num(v) + "</title></rect>";
    }
    if (values_fit)
      out += "<text class=\"value\" x=\"" + fmt(cx) + "\" y=\"" + fmt(y_of(acc) - 4) + "\" text-anchor=\"middle\">" +
             num(acc) + "</text>";
    if (i % every == 0) {
      if (upright)
        out += "<text class=\"tick\" x=\"" + fmt(cx) + "\" y=\"" + fmt(axis_y + 15) + "\" text-anchor=\"middle\">" +
               escape(r.label) + "</text>";
      else
        out += "<text class=\"tick\" transform=\"translate(" + fmt(cx + 4) + "," + fmt(axis_y + 10) +
               ") rotate(-45)\" text-anchor=\"end\">" + escape(r.label) + "</text>";
    }
  }
  out += legend(id, series, plot_x, legend_y, chart_width);
  out += "</svg>";
  return out;
}

// ---- tables ------------------------------------------------------------------

struct table {
  std::string id, caption;              // escaped HTML
  std::vector<std::string> heads;       // escaped HTML
  std::vector<bool> numeric;            // per column
  std::vector<std::vector<std::string>> rows, foot;  // escaped HTML cells
};

// A heading that may break after its underscores (usage_unknown), so that a
// table of every count fits the page.
std::string breakable(const std::string& head) {
  std::string out;
  for (const char ch : head) {
    out.push_back(ch);
    if (ch == '_') out += "<wbr/>";
  }
  return out;
}

std::string render(const table& t) {
  const auto cells = [&](const std::vector<std::string>& row, const char* tag, bool head_first) {
    std::string out = "<tr>";
    for (std::size_t i = 0; i < row.size(); ++i) {
      const bool n = i < t.numeric.size() && t.numeric[i];
      const char* cell_tag = head_first && i == 0 ? "th" : tag;
      // A key cell short enough stays on one line (dates and ids hold hyphens);
      // a longer one may break anywhere.
      const char* cls = n ? " class=\"n\"" : row[i].size() <= 40 ? " class=\"k\"" : " class=\"k long\"";
      out += std::string("<") + cell_tag + cls + ">" + row[i] + "</" + cell_tag + ">";
    }
    return out + "</tr>";
  };
  std::string out = "<div class=\"table-wrap\"><table" + (t.id.empty() ? std::string() : " id=\"" + t.id + "\"") + ">";
  out += "<caption>" + t.caption + "</caption><thead><tr>";
  for (std::size_t i = 0; i < t.heads.size(); ++i)
    out += std::string("<th scope=\"col\"") + (i < t.numeric.size() && t.numeric[i] ? " class=\"n\"" : "") + ">" +
           breakable(t.heads[i]) + "</th>";
  out += "</tr></thead><tbody>";
  for (const auto& r : t.rows) out += cells(r, "td", false);
  out += "</tbody>";
  if (!t.foot.empty()) {
    out += "<tfoot>";
    for (const auto& r : t.foot) out += cells(r, "td", true);
    out += "</tfoot>";
  }
  return out + "</table></div>";
}

// The report's counts, in the order and with the names of the table format.
const std::vector<std::string> count_names = {"flows",   "blocked",     "redacted", "tagged",
                                              "allowed", "unscannable", "refused",  "failed",
                                              "other",   "tokens_in",   "tokens_out", "usage_unknown"};
std::vector<std::uint64_t> count_values(const group_totals& g) {
  return {g.flows,  g.blocked, g.redacted, g.tagged,    g.allowed,    g.unscannable,
          g.refused, g.failed,  g.other,    g.tokens_in, g.tokens_out, g.usage_unknown};
}

void add(group_totals& to, const group_totals& g) {
  to.flows += g.flows, to.blocked += g.blocked, to.redacted += g.redacted, to.tagged += g.tagged;
  to.allowed += g.allowed, to.unscannable += g.unscannable, to.refused += g.refused, to.failed += g.failed;
  to.other += g.other, to.tokens_in += g.tokens_in, to.tokens_out += g.tokens_out;
  to.usage_unknown += g.usage_unknown;
}

// A table of the report's counts per group (keys first), with a total line
// when there is more than the one group of an ungrouped report.
table counts_table(std::string id, std::string caption, const std::vector<std::string>& key_heads,
                   const std::vector<group_totals>& groups, bool total_line) {
  table t;
  t.id = std::move(id);
  t.caption = std::move(caption);
  for (const auto& k : key_heads) t.heads.push_back(escape(k)), t.numeric.push_back(false);
  for (const auto& c : count_names) t.heads.push_back(escape(c)), t.numeric.push_back(true);
  group_totals total;
  for (const auto& g : groups) {
    std::vector<std::string> row;
    for (const auto& k : g.key) row.push_back(escape(key_text(k)));
    for (const auto v : count_values(g)) row.push_back(num(v));
    t.rows.push_back(std::move(row));
    add(total, g);
  }
  if (total_line) {
    std::vector<std::string> row = {"total"};
    for (std::size_t i = 1; i < key_heads.size(); ++i) row.emplace_back();
    for (const auto v : count_values(total)) row.push_back(num(v));
    t.foot.push_back(std::move(row));
  }
  return t;
}

// The rows a chart shows: the first `most` (rows are ordered largest first),
// the rest summed into one row named for how many they are.
constexpr std::size_t chart_rows = 25;
std::vector<chart_row> top_rows(std::vector<chart_row> rows, std::string_view what, std::size_t most = chart_rows) {
  if (rows.size() <= most) return rows;
  chart_row rest;
  rest.label = "(" + std::to_string(rows.size() - most + 1) + " more " + std::string(what) + ")";
  for (std::size_t i = most - 1; i < rows.size(); ++i) {
    rest.values.resize(std::max(rest.values.size(), rows[i].values.size()));
    for (std::size_t k = 0; k < rows[i].values.size(); ++k) rest.values[k] += rows[i].values[k];
  }
  rows.resize(most - 1);
  rows.push_back(std::move(rest));
  return rows;
}

std::string figure(const std::string& svg, const std::string& caption_html) {
  return "<figure>" + svg + "<figcaption>" + caption_html + "</figcaption></figure>";
}

std::string section_open(const char* id, const char* title) {
  return std::string("<section id=\"") + id + "\"><h2>" + title + "</h2>";
}

// ---- the page ----------------------------------------------------------------

constexpr std::string_view style = R"(
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif;
  color: #1a1a1a; background: #fff; margin: 0 auto; max-width: 1000px; padding: 24px; line-height: 1.45;
  font-size: 15px; }
h1 { font-size: 1.75em; margin: 0 0 .4em; }
h2 { font-size: 1.3em; margin: 1.8em 0 .5em; border-bottom: 2px solid #444; padding-bottom: .15em; }
h3 { font-size: 1.05em; margin: 1.3em 0 .3em; }
p { margin: .4em 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25em 1.2em; margin: 0 0 1em; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .9em; overflow-wrap: anywhere; }
.verification { border: 5px solid #009E73; padding: 12px 18px; margin: 1em 0 1.5em; background: #eaf6f1; }
.verification.failed { border: 10px double #D55E00; background: #fcebe0; }
.verification h2 { border: 0; margin: 0 0 .3em; padding: 0; font-size: 1.6em; }
.verification .first { font-size: 1.15em; font-weight: 700; margin: .3em 0; }
.verification ul { margin: .4em 0 0; padding-left: 1.3em; }
.verification li { margin: .15em 0; }
.status { font-weight: 700; }
table { border-collapse: collapse; margin: .4em 0 1.4em; font-size: .92em; }
caption { text-align: left; font-weight: 600; padding: .3em 0; }
th, td { border: 1px solid #bdbdbd; padding: 3px 7px; text-align: left; vertical-align: top; }
thead th { background: #ececec; vertical-align: bottom; }
.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.k { white-space: nowrap; }
.k.long { white-space: normal; overflow-wrap: anywhere; min-width: 12em; max-width: 26em; }
tfoot th, tfoot td { font-weight: 700; background: #f5f5f5; }
.table-wrap { overflow-x: auto; }
figure { margin: .6em 0 .6em; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { font-size: .88em; color: #333; margin-top: .2em; }
svg text { font-family: inherit; font-size: 12px; fill: #1a1a1a; }
svg .tick { font-size: 11px; fill: #333; }
svg .axis-title { font-weight: 700; }
svg .value { font-size: 11px; font-weight: 600; }
svg .seg { font-size: 10.5px; paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg .grid { stroke: #dcdcdc; stroke-width: 1; }
svg .axis { stroke: #333; stroke-width: 1.2; }
.note { color: #333; font-size: .9em; }
nav ol { columns: 2; margin: .3em 0; }
footer { margin-top: 2.5em; border-top: 1px solid #999; padding-top: .6em; font-size: .88em; color: #333; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  nav { display: none; }
  .table-wrap { overflow: visible; }
  figure, .verification, tr { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
}
)";

std::string verification_html(const html_report& r) {
  const auto& v = r.verification;
  const std::string db = escape(clean(r.trail));
  std::string out;
  if (r.verified()) {
    out += "<section id=\"verification\" class=\"verification passed\"><h2>\xE2\x9C\x94 Verification passed</h2>";
    if (v.records == 0) out += "<p>The trail file holds no records";
    else
      out += "<p>The trail file holds " + num(v.records) + " records (" + num(v.flows_records) + " flow records, " +
             num(v.epochs) + " epochs), seq 1.." + num(v.last_seq) + ", written " + time_text(v.first_time_us) +
             " to " + time_text(v.last_time_us);
    out += "; none failed the checks below.</p>";
  } else if (!r.verification_error.empty()) {
    out += "<section id=\"verification\" class=\"verification failed\"><h2>\xE2\x9C\x98 Verification failed</h2>";
    out += "<p class=\"first\">The check could not be completed: " + escape(clean(r.verification_error)) + "</p>";
    out += "<p>The trail cannot be shown to be intact: the numbers below are what it holds now, not necessarily "
           "what was written.</p>";
  } else {
    const auto& f = v.failures.front();
    out += "<section id=\"verification\" class=\"verification failed\"><h2>\xE2\x9C\x98 Verification failed</h2>";
    out += "<p class=\"first\">First failure: record " + num(f.seq) + ": " + escape(audit::to_string(f.kind)) + ": " +
           escape(clean(f.detail)) + "</p>";
    const auto before = v.verified_before_failure();
    out += "<p>" + (before == 0 ? std::string("No record verified before it.")
                                : "Records 1 to " + num(before) + " verified before it.") +
           " The trail has been altered, cut or damaged: the numbers below are what it holds now, not necessarily "
           "what was written.</p>";
  }
  const auto item = [](std::string_view what, std::string_view status, std::string_view advice) {
    std::string li = "<li>" + std::string(what) + ": <span class=\"status\">" + std::string(status) + "</span>";
    if (!advice.empty()) li += " (" + std::string(advice) + ")";
    return li + "</li>";
  };
  out += "<ul>";
  out += item("SQLite integrity, the schema, the hash chain and sequence continuity",
              r.verified() ? "checked" : "checked up to the first failure", "");
  out += v.macs_checked ? item("Record MACs", "checked with the sealing seed", "")
                        : item("Record MACs", "not checked",
                               "the report takes no sealing seed: run <code>customsctl audit verify --db " + db +
                                   " --seed sealing.seed</code>");
  // Counts are of the whole trail only when the check ran to its end.
  const std::string checkpoints =
      r.verified() ? "Checkpoint signatures (" + num(v.checkpoints) + " checkpoints)"
                   : std::string("Checkpoint signatures");
  out += v.signer_trusted ? item(checkpoints, "checked against a signer key you hold", "")
                          : item(checkpoints, "checked against the key recorded in the trail",
                                 "which the trail's holder could replace: give <code>--signer signing.pub</code> "
                                 "to <code>audit verify</code>");
  out += v.held_checkpoint_checked
             ? item("Held checkpoint", "matches", "")
             : item("Held checkpoint", "none given",
                    "records cut after the last stored checkpoint cannot be detected: give <code>--checkpoint "
                    "FILE</code> to <code>audit verify</code>");
  if (r.verified()) out += "<li>Erased payloads: " + num(v.erased_payloads) + "</li>";
  out += "<li>The verification covers the whole trail file, also records outside the selection below.</li>";
  out += "</ul></section>";
  return out;
}

std::string join_by(const std::vector<std::string>& by) {
  std::string out;
  for (const auto& d : by) out += (out.empty() ? "" : ",") + d;
  return out;
}
std::string by_text(const std::vector<std::string>& by) {
  std::string out;
  for (const auto& d : by) out += (out.empty() ? "" : ", ") + escape(clean(d));
  return out;
}

std::string period_text(const html_report& r) {
  std::string out;
  if (r.first_us) out += escape(time_text(*r.first_us)) + " to " + escape(time_text(*r.last_us));
  else out += "no flow selected";
  out += " <span class=\"note\">(the times of the selected flows' final records";
  std::string bounds;
  for (const auto& [name, value] : r.filters) {
    if (name == "since") bounds += "; from " + escape(clean(value)) + " (inclusive)";
    if (name == "until") bounds += "; until " + escape(clean(value)) + " (exclusive)";
  }
  return out + bounds + ")</span>";
}

}  // namespace

std::string html_text(std::string_view s) { return escape(clean(s)); }

std::string render_html_report(const html_report& r) {
  const std::string db = escape(clean(r.trail));
  std::string out;
  out.reserve(64 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n";
  out += "<meta name=\"generator\" content=\"" + escape(r.generator) + "\"/>\n";
  out += "<title>Customs audit report: " + db + (r.verified() ? "" : " (verification failed)") + "</title>\n";
  out += "<style>" + std::string(style) + "</style>\n</head>\n<body>\n";

  // ---- header: what, when, and whether the trail verified
  out += "<header>\n<h1>Customs audit report</h1>\n<dl class=\"facts\">";
  out += "<dt>Trail</dt><dd><code>" + db + "</code></dd>";
  out += "<dt>Period</dt><dd>" + period_text(r) + "</dd>";
  std::string selection;
  for (const auto& [name, value] : r.filters) {
    if (name == "since" || name == "until") continue;
    selection += (selection.empty() ? "" : ", ") + std::string("<code>--") + escape(name) + " " +
                 escape(clean(value)) + "</code>";
  }
  out += "<dt>Flows</dt><dd>" + (selection.empty() ? std::string("all flows of the period") : selection) +
         "; each flow counted once, by its final verdict</dd>";
  out += "<dt>Payloads</dt><dd>" +
         std::string(r.with_key ? "read with an auditor key (findings, rule set ids and versions)"
                                : "not read (no <code>--key</code>): findings, rule set ids and versions are not "
                                  "shown") +
         "</dd>";
  out += "<dt>Made</dt><dd id=\"made-at\">" + escape(r.made_at) + " by " + escape(r.generator) + "</dd>";
  out += "</dl>\n" + verification_html(r) + "\n</header>\n";

  out += "<nav><h2>Contents</h2><ol>"
         "<li><a href=\"#totals\">Totals</a></li>"
         "<li><a href=\"#pairs\">Flows by jurisdiction pair</a></li>"
         "<li><a href=\"#verdicts\">Verdicts by jurisdiction pair</a></li>"
         "<li><a href=\"#tokens\">Tokens by jurisdiction pair</a></li>"
         "<li><a href=\"#periods\">Flows by " +
         escape(r.period) +
         "</a></li>"
         "<li><a href=\"#findings\">Findings by detector and category</a></li>"
         "<li><a href=\"#rule-sets\">Rule sets in force</a></li>";
  if (!r.by.empty()) out += "<li><a href=\"#groups\">Report by " + by_text(r.by) + "</a></li>";
  out += "</ol></nav>\n<main>\n";

  // ---- totals
  out += section_open("totals", "Totals");
  out += "<p>Every flow counts under exactly one verdict, its final one: allowed + tagged + redacted + blocked + "
         "unscannable + refused + failed + other = flows. Tokens are what providers reported; flows whose provider "
         "reported none are counted under usage_unknown and add nothing to the tokens.</p>";
  out += render(counts_table("totals-table", "All selected flows", {}, {r.totals}, false));
  out += "</section>\n";

  // ---- pairs: flows, verdicts, tokens
  std::vector<group_totals> pairs = r.pairs;
  std::stable_sort(pairs.begin(), pairs.end(), [](const group_totals& a, const group_totals& b) {
    return a.flows != b.flows ? a.flows > b.flows : a.key < b.key;
  });
  const std::string more_note =
      pairs.size() > chart_rows ? " The chart shows the " + std::to_string(chart_rows - 1) +
                                      " largest pairs and the others together; the table lists every pair."
                                : std::string();
  {
    out += section_open("pairs", "Flows by jurisdiction pair");
    std::vector<chart_row> rows;
    for (const auto& g : pairs) rows.push_back(pair_row(g, {g.flows}));
    if (pairs.empty()) {
      out += "<p>No flow selected.</p>";
    } else {
      out += figure(bar_chart("chart-pairs", "Flows by jurisdiction pair", "source \xE2\x86\x92 destination",
                              "flows", flow_series, top_rows(rows, "pairs")),
                    "Flows per source and destination jurisdiction." + escape(more_note));
    }
    table t;
    t.id = "pairs-table";
    t.caption = "Flows by jurisdiction pair";
    t.heads = {"source", "destination", "flows", "share of flows"};
    t.numeric = {false, false, true, true};
    for (const auto& g : pairs)
      t.rows.push_back({escape(key_text(g.key[0])), escape(key_text(g.key[1])), num(g.flows),
                        percent(g.flows, r.totals.flows)});
    t.foot.push_back({"total", "", num(r.totals.flows), percent(r.totals.flows, r.totals.flows)});
    out += render(t) + "</section>\n";
  }
  {
    out += section_open("verdicts", "Verdicts by jurisdiction pair");
    std::vector<chart_row> rows;
    for (const auto& g : pairs) rows.push_back(pair_row(g, verdict_values(g)));
    if (!pairs.empty())
      out += figure(bar_chart("chart-verdicts", "Final verdicts by jurisdiction pair",
                              "source \xE2\x86\x92 destination", "flows", verdict_series, top_rows(rows, "pairs")),
                    "Each bar is a pair's flows, split by final verdict; a part wide enough carries its count. "
                    "failed is the action <code>error</code>; other is an action this build does not know, or "
                    "none stored." + escape(more_note));
    table t;
    t.id = "verdicts-table";
    t.caption = "Final verdicts by jurisdiction pair";
    t.heads = {"source", "destination"};
    t.numeric = {false, false};
    for (const auto& s : verdict_series) t.heads.push_back(escape(s.name)), t.numeric.push_back(true);
    t.heads.push_back("flows"), t.numeric.push_back(true);
    for (const auto& g : pairs) {
      std::vector<std::string> row = {escape(key_text(g.key[0])), escape(key_text(g.key[1]))};
      for (const auto v : verdict_values(g)) row.push_back(num(v));
      row.push_back(num(g.flows));
      t.rows.push_back(std::move(row));
    }
    std::vector<std::string> foot = {"total", ""};
    for (const auto v : verdict_values(r.totals)) foot.push_back(num(v));
    foot.push_back(num(r.totals.flows));
    t.foot.push_back(std::move(foot));
    out += render(t) + "</section>\n";
  }
  {
    out += section_open("tokens", "Tokens by jurisdiction pair");
    std::vector<group_totals> by_tokens = pairs;
    std::stable_sort(by_tokens.begin(), by_tokens.end(), [](const group_totals& a, const group_totals& b) {
      const auto ta = a.tokens_in + a.tokens_out, tb = b.tokens_in + b.tokens_out;
      return ta != tb ? ta > tb : a.key < b.key;
    });
    std::vector<chart_row> rows;
    for (const auto& g : by_tokens) rows.push_back(pair_row(g, {g.tokens_in, g.tokens_out}));
    if (!pairs.empty())
      out += figure(bar_chart("chart-tokens", "Tokens by jurisdiction pair", "source \xE2\x86\x92 destination",
                              "tokens", token_series, top_rows(rows, "pairs")),
                    "Input and output tokens as providers reported them. Flows whose usage is unknown add nothing "
                    "here (their number is in the table)." + escape(more_note));
    table t;
    t.id = "tokens-table";
    t.caption = "Tokens by jurisdiction pair";
    t.heads = {"source", "destination", "tokens_in", "tokens_out", "usage_unknown", "flows"};
    t.numeric = {false, false, true, true, true, true};
    for (const auto& g : by_tokens)
      t.rows.push_back({escape(key_text(g.key[0])), escape(key_text(g.key[1])), num(g.tokens_in), num(g.tokens_out),
                        num(g.usage_unknown), num(g.flows)});
    t.foot.push_back({"total", "", num(r.totals.tokens_in), num(r.totals.tokens_out), num(r.totals.usage_unknown),
                      num(r.totals.flows)});
    out += render(t) + "</section>\n";
  }

  // ---- periods
  {
    out += section_open("periods", ("Flows by " + escape(r.period)).c_str());
    if (!r.period_note.empty()) out += "<p class=\"note\">" + escape(r.period_note) + "</p>";
    std::vector<chart_row> rows;
    for (const auto& g : r.periods) rows.push_back({key_text(g.key.at(0)), verdict_values(g), {}});
    if (!rows.empty())
      out += figure(column_chart("chart-periods", "Flows by " + r.period + " and final verdict", r.period + " (UTC)",
                                 "flows", verdict_series, rows),
                    "Each column is the flows whose final record falls in that " + escape(r.period) +
                        " (UTC), split by final verdict; periods without flows show as 0.");
    else out += "<p>No flow selected.</p>";
    table t;
    t.id = "periods-table";
    t.caption = "Flows by " + escape(r.period) + " (UTC)";
    t.heads = {escape(r.period)};
    t.numeric = {false};
    for (const auto& s : verdict_series) t.heads.push_back(escape(s.name)), t.numeric.push_back(true);
    for (const char* h : {"flows", "tokens_in", "tokens_out"}) t.heads.push_back(h), t.numeric.push_back(true);
    for (const auto& g : r.periods) {
      std::vector<std::string> row = {escape(key_text(g.key.at(0)))};
      for (const auto v : verdict_values(g)) row.push_back(num(v));
      for (const auto v : {g.flows, g.tokens_in, g.tokens_out}) row.push_back(num(v));
      t.rows.push_back(std::move(row));
    }
    std::vector<std::string> foot = {"total"};
    for (const auto v : verdict_values(r.totals)) foot.push_back(num(v));
    for (const auto v : {r.totals.flows, r.totals.tokens_in, r.totals.tokens_out}) foot.push_back(num(v));
    t.foot.push_back(std::move(foot));
    out += render(t) + "</section>\n";
  }

  // ---- findings
  {
    out += section_open("findings", "Findings by detector and category");
    if (!r.with_key) {
      out += "<p>Findings are in the encrypted payloads: give <code>--key auditor.key</code> to count them.</p>";
    } else {
      std::vector<html_report::finding_count> f = r.findings;
      std::stable_sort(f.begin(), f.end(), [](const auto& a, const auto& b) {
        const auto ta = a.request + a.response, tb = b.request + b.response;
        if (ta != tb) return ta > tb;
        return std::tie(a.detector, a.category) < std::tie(b.detector, b.category);
      });
      out += "<p>What the detectors found in the selected flows (never the matched text), counted from each flow's "
             "final record, which holds the findings of its request and of its response.";
      if (r.findings_unreadable)
        out += " The payloads of " + num(r.findings_unreadable) +
               " flows could not be read (erased, or sealed to other keys): their findings are not counted.";
      if (r.findings_capped)
        out += " " + num(r.findings_capped) +
               " flows recorded their findings only up to customsd's limit per flow: they had more.";
      out += "</p>";
      std::vector<chart_row> rows;
      for (const auto& x : f)
        rows.push_back({key_text(x.detector) + " (" + key_text(x.category) + ")", {x.request, x.response}, {}});
      if (f.empty()) out += "<p>No findings.</p>";
      else
        out += figure(bar_chart("chart-findings", "Findings by detector and category", "detector (category)",
                                "findings", finding_series, top_rows(rows, "detectors")),
                      std::string("Findings in requests and in responses.") +
                          (f.size() > chart_rows ? " The chart shows the " + std::to_string(chart_rows - 1) +
                                                       " most frequent and the others together; the table lists all."
                                                 : std::string()));
      table t;
      t.id = "findings-table";
      t.caption = "Findings by detector and category";
      t.heads = {"detector", "category", "in requests", "in responses", "findings"};
      t.numeric = {false, false, true, true, true};
      std::uint64_t req = 0, resp = 0;
      for (const auto& x : f) {
        t.rows.push_back({escape(key_text(x.detector)), escape(key_text(x.category)), num(x.request), num(x.response),
                          num(x.request + x.response)});
        req += x.request, resp += x.response;
      }
      t.foot.push_back({"total", "", num(req), num(resp), num(req + resp)});
      out += render(t);
    }
    out += "</section>\n";
  }

  // ---- rule sets
  {
    out += section_open("rule-sets", "Rule sets in force");
    out += "<p>The rule sets that decided the selected flows, by the hash recorded with each flow's final verdict "
           "(<code>rule_set_hash</code>), with the id and version of the pack as the flows' payloads name it.</p>";
    table t;
    t.id = "rule-sets-table";
    t.caption = "Rule sets in force";
    t.heads = {"rule set hash", "id", "version", "flows", "first flow", "last flow"};
    t.numeric = {false, false, false, true, false, false};
    for (const auto& s : r.rule_sets) {
      std::string ids, versions;
      if (!r.with_key) {
        ids = versions = "<span class=\"note\">needs --key</span>";
      } else if (s.labels.empty()) {
        ids = versions = "<span class=\"note\">not recorded</span>";
      } else {
        for (const auto& [id, version] : s.labels) {
          ids += (ids.empty() ? "" : "<br/>") + escape(key_text(id));
          versions += (versions.empty() ? "" : "<br/>") + escape(key_text(version));
        }
        if (s.more_labels) ids += "<br/>\xE2\x80\xA6", versions += "<br/>\xE2\x80\xA6";
      }
      t.rows.push_back({"<code>" + escape(key_text(s.hash)) + "</code>", ids, versions, num(s.flows),
                        escape(time_text(s.first_us)), escape(time_text(s.last_us))});
    }
    if (r.rule_sets.empty()) out += "<p>No flow selected.</p>";
    else out += render(t);
    out += "</section>\n";
  }

  // ---- the report as --by asked for it
  if (!r.by.empty()) {
    const std::string by = by_text(r.by);
    out += "<section id=\"groups\"><h2>Report by " + by + "</h2>";
    out += "<p>The numbers <code>customsctl audit report --by " + escape(clean(join_by(r.by))) +
           "</code> prints.</p>";
    std::vector<std::string> heads(r.by.begin(), r.by.end());
    for (auto& h : heads) h = clean(h);
    out += render(counts_table("groups-table", "Report by " + by, heads, r.groups, true));
    out += "</section>\n";
  }

  out += "</main>\n<footer><p>Made by <code>customsctl audit report --format html</code> from the trail "
         "<code>" +
         db +
         "</code>. Every number in a chart is also in the table under it. The same numbers in machine-readable form: "
         "<code>customsctl audit report --db " +
         db +
         " --by src,dst --format csv</code>. The full verification: <code>customsctl audit verify --db " + db +
         " --seed sealing.seed --signer signing.pub --checkpoint FILE</code>.</p></footer>\n</body>\n</html>\n";
  return out;
}

// ---- collecting --------------------------------------------------------------

namespace {

std::string period_of(const std::vector<std::string>& by) {
  for (const char* p : {"day", "month", "year"})
    if (std::find(by.begin(), by.end(), p) != by.end()) return p;
  return "day";
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty() || s.size() > 4) return false;
  out = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

// The periods from the first key to the last with none left out ("YYYY-MM-DD",
// "YYYY-MM" or "YYYY", ascending), when the keys read as such and there are at
// most `most` of them; nullopt otherwise, with too_many set when there are more.
std::optional<std::vector<std::string>> every_period(const std::vector<std::string>& keys, const std::string& period,
                                                     std::size_t most, bool& too_many) {
  too_many = false;
  using namespace std::chrono;
  if (keys.empty()) return std::vector<std::string>{};
  std::vector<std::string> out;
  char buf[16];
  if (period == "day") {
    const auto day_of = [](const std::string& k) -> std::optional<sys_days> {
      int y = 0, m = 0, d = 0;
      if (k.size() != 10 || k[4] != '-' || k[7] != '-' || !parse_int(k.substr(0, 4), y) ||
          !parse_int(k.substr(5, 2), m) || !parse_int(k.substr(8, 2), d))
        return std::nullopt;
      const year_month_day ymd{year{y}, month{static_cast<unsigned>(m)}, day{static_cast<unsigned>(d)}};
      if (!ymd.ok()) return std::nullopt;
      return sys_days(ymd);
    };
    const auto first = day_of(keys.front()), last = day_of(keys.back());
    if (!first || !last || *last < *first) return std::nullopt;
    if (static_cast<std::size_t>((*last - *first).count()) >= most) return too_many = true, std::nullopt;
    for (auto d = *first; d <= *last; d += days(1)) {
      const year_month_day ymd(d);
      std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                    static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
      out.emplace_back(buf);
    }
  } else if (period == "month") {
    const auto index = [](const std::string& k) -> std::optional<int> {
      int y = 0, m = 0;
      if (k.size() != 7 || k[4] != '-' || !parse_int(k.substr(0, 4), y) || !parse_int(k.substr(5, 2), m) || m < 1 ||
          m > 12)
        return std::nullopt;
      return y * 12 + m - 1;
    };
    const auto first = index(keys.front()), last = index(keys.back());
    if (!first || !last || *last < *first) return std::nullopt;
    if (static_cast<std::size_t>(*last - *first) >= most) return too_many = true, std::nullopt;
    for (int i = *first; i <= *last; ++i) {
      std::snprintf(buf, sizeof buf, "%04d-%02d", i / 12, i % 12 + 1);
      out.emplace_back(buf);
    }
  } else {
    int first = 0, last = 0;
    if (!parse_int(keys.front(), first) || !parse_int(keys.back(), last) || last < first) return std::nullopt;
    if (static_cast<std::size_t>(last - first) >= most) return too_many = true, std::nullopt;
    for (int y = first; y <= last; ++y) {
      std::snprintf(buf, sizeof buf, "%04d", y);
      out.emplace_back(buf);
    }
  }
  // Every key must be one of them (a key that does not read leaves the list as it is).
  std::size_t at = 0;
  for (const auto& k : keys) {
    while (at < out.size() && out[at] < k) ++at;
    if (at == out.size() || out[at] != k) return std::nullopt;
  }
  return out;
}

// Up to this many periods the chart shows the period asked for; past it, the
// next longer one.
std::size_t most_periods(const std::string& period) { return period == "day" ? 92 : period == "month" ? 120 : 400; }

struct payload_view {
  json::object o;
  bool ok = false;
};
payload_view parse_payload(const audit::read_record& rec) {
  payload_view v;
  if (!rec.payload) return v;
  boost::system::error_code ec;
  auto parsed = json::parse(*rec.payload, ec);
  if (ec || !parsed.is_object()) return v;
  v.o = std::move(parsed.get_object());
  v.ok = true;
  return v;
}

std::string string_at(const json::object& o, std::string_view key) {
  const auto* x = o.if_contains(key);
  return x && x->is_string() ? std::string(x->get_string()) : std::string();
}

}  // namespace

html_report collect_html_report(const parsed_args& a, const std::string& db, const std::vector<std::string>& by,
                                const audit::record_filter& filter) {
  html_report rep;
  rep.trail = db;
  rep.by = by;
  rep.generator = std::string("customsctl ") + CUSTOMS_VERSION;
  {
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    rep.made_at = time_text(now).substr(0, 19) + "Z";
  }
  if (filter.since_us) rep.filters.emplace_back("since", time_text(*filter.since_us));
  if (filter.until_us) rep.filters.emplace_back("until", time_text(*filter.until_us));
  if (filter.flow) rep.filters.emplace_back("flow", *filter.flow);
  if (filter.action) rep.filters.emplace_back("action", *filter.action);
  if (filter.src) rep.filters.emplace_back("src", *filter.src);
  if (filter.dst) rep.filters.emplace_back("dst", *filter.dst);
  if (filter.tenant) rep.filters.emplace_back("tenant", *filter.tenant);
  if (filter.rule) rep.filters.emplace_back("rule", *filter.rule);

  audit::reader r(db);
  rep.with_key = a.get("key").has_value();
  if (rep.with_key) r.set_auditor_key(crypto::load_auditor_secret(*a.get("key")));

  audit::record_filter counted = filter;
  counted.action_final = true;
  counted.last_of_flow = false;
  if (const auto t = r.report({}, counted); !t.empty()) rep.totals = t.front();
  rep.pairs = r.report({"src", "dst"}, counted);
  if (!by.empty()) {
    const bool by_model = std::find(by.begin(), by.end(), "model") != by.end();
    rep.groups = by_model ? report_from_payloads(r, by, counted) : r.report(by, counted);
  }

  // Periods: the one --by names (the shortest), else days; a longer one when
  // there would be too many to read.
  const std::string asked = period_of(by);
  static const std::vector<std::string> order = {"day", "month", "year"};
  for (auto p = std::find(order.begin(), order.end(), asked); p != order.end(); ++p) {
    auto rows = r.report({*p}, counted);
    std::vector<std::string> keys;
    for (const auto& g : rows) keys.push_back(g.key.at(0));
    bool too_many = false;
    const auto all = every_period(keys, *p, most_periods(*p), too_many);
    if (too_many && p + 1 != order.end()) continue;
    rep.period = *p;
    if (all) {
      std::size_t at = 0;
      for (const auto& k : *all) {
        if (at < rows.size() && rows[at].key.at(0) == k) {
          rep.periods.push_back(rows[at++]);
        } else {
          group_totals zero;
          zero.key = {k};
          rep.periods.push_back(std::move(zero));
        }
      }
    } else {
      rep.periods = std::move(rows);
    }
    if (*p != asked)
      rep.period_note = "The selected flows span more than " + std::to_string(most_periods(asked)) + " " + asked +
                        "s: they are shown by " + *p + ".";
    break;
  }

  // Each selected flow once, by its final record: the rule set that decided
  // it, and (with a key) its findings. A closing record holds the findings of
  // the request and of the response; one without findings (an edge record, or
  // a closing record that could not be built) leaves the request's findings in
  // the flow's opening record.
  audit::record_filter finals = counted;
  finals.last_of_flow = true;
  std::map<std::pair<std::string, std::string>, html_report::finding_count> findings;
  std::map<std::string, html_report::rule_set_use> rule_sets;
  std::map<std::string, std::set<std::pair<std::string, std::string>>> labels;
  std::vector<std::string> opened_findings;  // flows whose opening record holds their findings
  const auto count_findings = [&](const json::object& o) {
    const auto* fs = o.if_contains("findings");
    if (!fs || !fs->is_array()) return false;
    for (const auto& f : fs->get_array()) {
      if (!f.is_object()) continue;
      const auto& fo = f.get_object();
      auto& c = findings[{string_at(fo, "detector"), string_at(fo, "category")}];
      (string_at(fo, "direction") == "response" ? c.response : c.request) += 1;
    }
    return true;
  };
  constexpr std::size_t max_labels = 4;
  const auto note_label = [&](const std::string& hash, const json::object& o) {
    const auto* rs = o.if_contains("rule_set");
    if (!rs || !rs->is_object()) return;
    auto& l = labels[hash];
    if (l.size() <= max_labels) l.emplace(string_at(rs->get_object(), "id"), string_at(rs->get_object(), "version"));
  };
  r.for_each(finals, [&](const audit::read_record& rec) {
    rep.first_us = std::min(rep.first_us.value_or(rec.time_us), rec.time_us);
    rep.last_us = std::max(rep.last_us.value_or(rec.time_us), rec.time_us);
    auto [it, fresh] = rule_sets.try_emplace(rec.index.rule_set_hash);
    auto& rs = it->second;
    if (fresh) rs.hash = rec.index.rule_set_hash, rs.first_us = rs.last_us = rec.time_us;
    ++rs.flows;
    rs.first_us = std::min(rs.first_us, rec.time_us);
    rs.last_us = std::max(rs.last_us, rec.time_us);
    if (!rep.with_key) return true;
    const auto p = parse_payload(rec);
    if (!p.ok) {
      ++rep.findings_unreadable;
      return true;
    }
    note_label(rec.index.rule_set_hash, p.o);
    if (p.o.contains("findings_limit")) ++rep.findings_capped;
    if (!count_findings(p.o) && rec.kind == audit::record_kind::flow_closed && !p.o.contains("edge"))
      opened_findings.push_back(rec.flow_id);
    return true;
  });
  for (const auto& id : opened_findings) {
    audit::record_filter one;
    one.flow = id;
    std::optional<json::object> opened;
    r.for_each(one, [&](const audit::read_record& rec) {
      if (rec.kind != audit::record_kind::flow_opened) return true;
      if (auto p = parse_payload(rec); p.ok) opened = std::move(p.o);
      return true;
    });
    if (opened) count_findings(*opened);
  }
  // Ids and versions of rule sets whose final records do not name them (a
  // closing record names none): from the other records of the period.
  if (rep.with_key) {
    std::set<std::string> missing;
    for (const auto& [hash, _] : rule_sets)
      if (!labels.count(hash)) missing.insert(hash);
    if (!missing.empty()) {
      audit::record_filter all = filter;
      all.action.reset();
      all.action_final = false;
      all.last_of_flow = false;
      r.for_each(all, [&](const audit::read_record& rec) {
        if (!missing.count(rec.index.rule_set_hash)) return true;
        if (const auto p = parse_payload(rec); p.ok) {
          note_label(rec.index.rule_set_hash, p.o);
          if (labels.count(rec.index.rule_set_hash)) missing.erase(rec.index.rule_set_hash);
        }
        return !missing.empty();
      });
    }
  }
  for (auto& [key, c] : findings) {
    c.detector = key.first;
    c.category = key.second;
    rep.findings.push_back(std::move(c));
  }
  for (auto& [hash, rs] : rule_sets) {
    if (const auto l = labels.find(hash); l != labels.end()) {
      for (const auto& x : l->second) {
        if (rs.labels.size() == max_labels) {
          rs.more_labels = true;
          break;
        }
        rs.labels.push_back(x);
      }
    }
    rep.rule_sets.push_back(std::move(rs));
  }
  std::stable_sort(rep.rule_sets.begin(), rep.rule_sets.end(),
                   [](const auto& x, const auto& y) { return x.first_us < y.first_us; });

  // The verification audit verify runs with the key options report takes: none
  // (no sealing seed, signer key or held checkpoint).
  audit::verify_options vo;
  vo.max_failures = 1;
  try {
    rep.verification = audit::verify(db, vo);
  } catch (const std::runtime_error& e) {
    rep.verification_error = e.what();
  }
  return rep;
}

}  // namespace customs::tools
