#include "policy/canonical.hpp"

#include <algorithm>

#include "policy/model.hpp"
#include "policy/sha256.hpp"

namespace customs::policy::detail {

namespace {

class writer {
 public:
  std::string out;

  void str(std::string_view s) {
    out += '"';
    for (const char c : s) {
      const auto b = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (b < 0x20) {
        static constexpr char hex[] = "0123456789abcdef";
        out += "\\u00";
        out += hex[b >> 4];
        out += hex[b & 15];
      } else {
        out += c;
      }
    }
    out += '"';
  }
  void key(std::string_view k) {
    comma();
    str(k);
    out += ':';
    fresh_ = true;
  }
  void open(char c) {
    comma();
    out += c;
    fresh_ = true;
  }
  void close(char c) {
    out += c;
    fresh_ = false;
  }
  void value(std::string_view s) {
    comma();
    str(s);
  }
  void value(bool b) {
    comma();
    out += b ? "true" : "false";
  }
  void number(std::size_t n) {
    comma();
    out += std::to_string(n);
  }
  void number_signed(long long n) {
    comma();
    out += std::to_string(n);
  }
  void null() {
    comma();
    out += "null";
  }
  template <class Range>
  void list(const Range& r) {
    open('[');
    for (const auto& v : r) value(std::string_view(v));
    close(']');
  }
  void field(std::string_view k, std::string_view v) { key(k), value(v); }
  void field(std::string_view k, bool v) { key(k), value(v); }
  // Without this, a string literal would pick the bool overload.
  void field(std::string_view k, const char* v) { key(k), value(std::string_view(v)); }
  template <class Range>
  void field_list(std::string_view k, const Range& r) {
    key(k);
    list(r);
  }

 private:
  void comma() {
    if (!fresh_) out += ',';
    fresh_ = false;
  }
  bool fresh_ = true;
};

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

void matcher(writer& w, std::string_view k, const value_matcher& m) {
  w.key(k);
  w.open('{');
  w.key("in");
  if (m.any) w.null();
  else w.list(m.in);
  w.field_list("not", m.not_in);
  w.close('}');
}

std::string value_map_text(const check_scheme::value_map& m) {
  std::string out;
  for (std::size_t c = 0; c < m.size(); ++c) {
    if (m[c] < 0) continue;
    if (!out.empty()) out += ' ';
    out += static_cast<char>(c);
    out += '=';
    out += std::to_string(m[c]);
  }
  return out;
}

void numbers(writer& w, std::string_view k, const auto& v) {
  w.key(k);
  w.open('[');
  for (const auto x : v) w.number_signed(static_cast<long long>(x));
  w.close(']');
}

// Every field that can change what the scheme accepts, defaults written out.
void scheme(writer& w, const scheme_def& d) {
  const check_scheme& c = d.scheme;
  w.open('{');
  w.field("algorithm", to_string(c.algorithm));
  w.field_list("check_table", c.check_table);
  w.key("date");
  if (c.date) {
    w.open('{');
    w.key("at");
    w.number(c.date->at);
    numbers(w, "day_offsets", c.date->day_offsets);
    w.field("format", to_string(c.date->fmt));
    w.key("max_year");
    w.number_signed(c.date->max_year);
    w.key("min_year");
    w.number_signed(c.date->min_year);
    numbers(w, "month_offsets", c.date->month_offsets);
    w.close('}');
  } else {
    w.null();
  }
  w.field("description", d.description);
  w.field("expand_decimal", c.expand_decimal);
  w.field("format", c.format);
  w.field("from_right", c.from_right);
  w.field("id", d.id);
  numbers(w, "length", c.lengths);
  w.key("modulus");
  w.number_signed(c.modulus);
  w.key("pad");
  w.open('{');
  w.key("length");
  w.number(c.pad_length);
  w.key("value");
  w.number_signed(c.pad_value);
  w.close('}');
  w.key("position_values");
  w.open('[');
  for (const auto& m : c.position_values) w.value(value_map_text(m));
  w.close(']');
  w.key("prefixes");
  w.open('[');
  for (const auto& p : c.prefixes) {
    w.open('{');
    w.field("hi", p.hi);
    numbers(w, "length", p.lengths);
    w.field("lo", p.lo);
    w.close('}');
  }
  w.close(']');
  w.key("radix");
  w.number_signed(c.radix);
  w.key("rotate");
  w.number(c.rotate);
  w.key("substitute");
  w.open('[');
  for (const auto& x : c.substitutions) {
    w.open('{');
    w.key("at");
    w.number(x.at);
    w.field("from", x.from);
    w.field("to", x.to);
    w.close('}');
  }
  w.close(']');
  w.key("sum_to");
  if (c.sum_to) w.number_signed(*c.sum_to);
  else w.null();
  w.field("values", value_map_text(c.values));
  numbers(w, "weights", c.weights);
  w.close('}');
}

}  // namespace

std::string canonical_form(const compiled_rule_set& set) {
  writer w;
  w.open('{');
  w.key("packs");
  w.open('[');
  for (const auto& p : set.packs) {
    w.open('{');
    w.key("check_digits");
    w.open('[');
    for (const auto& c : set.schemes)
      if (c.pack == p.id) scheme(w, c);
    w.close(']');
    w.field("description", p.description);
    w.key("detectors");
    w.open('[');
    for (const auto& d : set.detectors) {
      if (d.pack != p.id) continue;
      w.open('{');
      w.field_list("allow", d.allow);
      w.field("category", d.category);
      w.key("context");
      w.open('{');
      w.key("window");
      w.number(d.context_window);
      w.field_list("words", d.context_words);
      w.close('}');
      w.field("description", d.description);
      w.field("digit_separators", d.digit_separators == detector_def::separators::off   ? "false"
                                  : d.digit_separators == detector_def::separators::any ? "true"
                                                                                         : "uniform");
      w.field("fullwidth_digits", d.fullwidth_digits);
      w.field("id", d.id);
      w.field("ignore_case", d.ignore_case);
      w.field_list("keywords", d.keywords);
      w.key("max_length");
      if (d.declared_max) w.number(*d.declared_max);
      else w.null();
      w.field("pattern", d.pattern);
      w.field("sensitive", d.sensitive);
      std::vector<std::string> v;
      for (const auto& x : d.validators) v.push_back(x.name);
      w.field_list("validators", sorted(v));
      w.close('}');
    }
    w.close(']');
    w.key("exceptions");
    w.open('[');
    for (const auto& e : set.exceptions) {
      if (e.pack != p.id) continue;
      w.open('{');
      w.field("action", to_string(e.act));
      w.field("description", e.description);
      w.field("expires", e.expires);
      w.field("id", e.id);
      w.field("reason", e.reason);
      w.field_list("routes", e.routes);
      w.field_list("rules", e.rules);
      w.field_list("tenants", e.tenants);
      w.close('}');
    }
    w.close(']');
    w.key("groups");
    w.open('[');
    for (const auto& g : set.groups) {
      if (g.pack != p.id) continue;
      w.open('{');
      w.field("date", g.date);
      w.field("description", g.description);
      w.field("id", g.id);
      w.field_list("members", g.members);
      w.field("source", g.source);
      w.close('}');
    }
    w.close(']');
    w.field("id", p.id);
    w.key("rules");
    w.open('[');
    for (const auto& r : set.rules) {
      if (r.pack != p.id) continue;
      w.open('{');
      w.field("action", to_string(r.act));
      w.field_list("categories", r.categories);
      w.field("description", r.description);
      w.field_list("detectors", r.detectors);
      w.field("direction", r.on_request && r.on_response ? "both" : r.on_request ? "request" : "response");
      matcher(w, "dst", r.dst);
      w.field("id", r.id);
      w.field_list("parts", r.parts);
      w.field("redaction", to_string(r.style));
      w.field_list("references", sorted(r.references));
      w.key("sensitive");
      if (r.sensitive) w.value(*r.sensitive);
      else w.null();
      matcher(w, "src", r.src);
      w.field_list("tags", r.tags);
      matcher(w, "tenants", r.tenants);
      w.close('}');
    }
    w.close(']');
    w.field("version", p.version);
    // Volume counters (only for packs that have some, so that the hashes of
    // sets without counters did not change when counters were introduced).
    const bool counters = std::any_of(set.volumes.begin(), set.volumes.end(), [&](const auto& v) { return v.pack == p.id; });
    if (counters) {
      w.key("volumes");
      w.open('[');
      for (const auto& v : set.volumes) {
        if (v.pack != p.id) continue;
        w.open('{');
        w.field_list("categories", v.categories);
        w.field("description", v.description);
        w.field_list("detectors", v.detectors);
        w.field("dst_in", v.dst.any ? std::string("*") : std::string());
        w.field_list("dst_in_list", v.dst.in);
        w.field_list("dst_not", v.dst.not_in);
        w.field("id", v.id);
        w.key("levels");
        w.open('[');
        for (const auto& l : v.levels) {
          w.open('{');
          w.field("action", to_string(l.act));
          w.key("at_least");
          w.number(static_cast<std::size_t>(l.at_least));
          w.field("description", l.description);
          w.field("id", l.id);
          w.field_list("references", sorted(l.references));
          w.field("require_exception", l.require_exception);
          w.field_list("tags", l.tags);
          w.close('}');
        }
        w.close(']');
        w.field("per_dst", v.per_dst);
        w.field("per_src", v.per_src);
        w.field("per_tenant", v.per_tenant);
        w.field_list("references", sorted(v.references));
        w.key("rolling_days");
        w.number(v.rolling_days);
        w.key("rolling_months");
        w.number(v.rolling_months);
        w.key("sensitive");
        if (v.sensitive) w.value(*v.sensitive);
        else w.null();
        w.field("src_in", v.src.any ? std::string("*") : std::string());
        w.field_list("src_in_list", v.src.in);
        w.field_list("src_not", v.src.not_in);
        w.field("tenants_in", v.tenants.any ? std::string("*") : std::string());
        w.field_list("tenants_in_list", v.tenants.in);
        w.field_list("tenants_not", v.tenants.not_in);
        w.field("time_zone", v.time_zone_name);
        w.key("window");
        w.number(static_cast<std::size_t>(v.window));
        w.close('}');
      }
      w.close(']');
    }
    w.close('}');
  }
  w.close(']');
  w.close('}');
  return w.out;
}

std::string canonical_hash(const compiled_rule_set& set) {
  return sha256::hex("customs/rule-set/v1\n" + canonical_form(set));
}

}  // namespace customs::policy::detail
