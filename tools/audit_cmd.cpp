// customsctl audit verify | checkpoint | show | export | replay | report | volumes | erase
// Exit codes: 0 ok, 1 the check failed (verify found a broken trail), 2 usage or
// I/O error.
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "audit/reader.hpp"
#include "audit/replay.hpp"
#include "audit/store.hpp"
#include "audit/verifier.hpp"
#include "crypto/key_file.hpp"
#include "daemon/enforce/payload_json.hpp"
#include "policy/input_file.hpp"
#include "tools/args.hpp"
#include "tools/audit_html.hpp"
#include "tools/audit_volumes.hpp"
#include "tools/commands.hpp"
#include "tools/replay_engine.hpp"

namespace customs::tools {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr std::string_view filters_help =
    "FILTERS: --since T --until T (UTC, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z), --flow ID,\n"
    "         --action A, --src CC, --dst CC, --tenant T, --rule ID\n"
    "         --flow takes a whole flow id or a prefix that only one flow id has;\n"
    "         --action A: show and export list the last record of each flow whose\n"
    "         final verdict is A, report counts those flows, volumes reads the\n"
    "         flows whose request was given A\n";
constexpr std::string_view exit_help = "Exit codes: 0 ok, 1 the trail failed verification, 2 usage or I/O error.\n";

// Each command's usage: what `audit CMD --help` prints, and the group's usage
// joins them.
struct audit_command_help {
  std::string_view name;
  std::string_view synopsis;  // after "customsctl audit NAME "
  std::string_view text;      // what it does (indented lines)
  bool filters;               // takes FILTERS
};
constexpr audit_command_help audit_help[] = {
    {"verify", "--db FILE [--seed sealing.seed] [--checkpoint FILE] [--signer signing.pub] [--all]",
     "  checks SQLite integrity, the hash chain, sequence continuity, MACs (with\n"
     "  the seed) and checkpoint signatures; --checkpoint detects truncation;\n"
     "  --all lists every failure, not only the first\n",
     false},
    {"checkpoint", "--db FILE", "  prints the latest signed checkpoint, for auditors to keep elsewhere\n", false},
    {"show", "--db FILE [--key auditor.key] [FILTERS] [--format table|jsonl|csv]",
     "  lists the records; without --key, only the plaintext index fields\n", true},
    {"export", "--db FILE [--key auditor.key] [FILTERS] [--format jsonl|csv|table]",
     "  show with another default format (jsonl); CSV joins rule ids with ';'\n", true},
    {"replay", "--db FILE --key auditor.key --rules PATH... [--since T] [--until T]",
     "  lists the flows whose action would change under the given rules\n", false},
    {"report", "--db FILE [--by src,dst,tenant,route,model,day,month,year] [--key auditor.key]\n"
               "       [FILTERS] [--format table|csv|json|jsonl|html]",
     "  flows; of them blocked, redacted, tagged, allowed, unscannable, refused,\n"
     "  failed and other (by final verdict; these add up to flows); tokens in and\n"
     "  out, and flows whose usage is unknown; per group; --by model needs --key;\n"
     "  html: one self-contained page with the trail's verification, charts and\n"
     "  tables (exit 1 when the trail fails verification)\n",
     true},
    {"volumes", "--db FILE --key auditor.key [FILTERS] [--format table|csv|json]",
     "  every volume counter recomputed from the subject hashes in the trail, per\n"
     "  counter, scope, window\n",
     true},
    {"erase", "--db FILE --flow ID --reason TEXT (--keys DIR | --auditor-pub F... --sealing-key F\n"
              "       --signing-key F)",
     "  removes a flow's payloads and records the erasure; needs customsd's keys and\n"
     "  that no other writer has the database open; --flow takes a unique prefix\n",
     false},
};

std::string command_usage(const audit_command_help& h) {
  std::string out = "usage: customsctl audit " + std::string(h.name) + " " + std::string(h.synopsis) + "\n";
  out += h.text;
  if (h.filters) out += filters_help;
  out += exit_help;
  return out;
}

std::string group_usage() {
  std::string out = "usage: customsctl audit <command> --db FILE [options]\n\n";
  for (const auto& h : audit_help) {
    out += "  " + std::string(h.name) + " " + std::string(h.synopsis) + "\n";
    // The description two columns further in than the command.
    for (std::string_view t = h.text; !t.empty();) {
      const auto nl = t.find('\n');
      out += "  " + std::string(t.substr(0, nl)) + "\n";
      t.remove_prefix(nl == std::string_view::npos ? t.size() : nl + 1);
    }
  }
  out += "\n";
  out += filters_help;
  out += "customsctl audit <command> --help shows one command's usage.\n";
  out += exit_help;
  return out;
}

const std::set<std::string> filter_options = {"since", "until", "flow", "action",
                                              "src", "dst", "tenant", "rule"};

std::set<std::string> with_filters(std::set<std::string> s) {
  s.insert(filter_options.begin(), filter_options.end());
  return s;
}

audit::record_filter make_filter(const parsed_args& a) {
  audit::record_filter f;
  const auto time = [&](const char* name) -> std::optional<std::int64_t> {
    const auto v = a.get(name);
    if (!v) return std::nullopt;
    const auto t = audit::format::parse_time(*v);
    if (!t) throw usage_error(std::string("--") + name + ": cannot read time '" + *v +
                              "' (use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z, UTC)");
    return t;
  };
  f.since_us = time("since");
  f.until_us = time("until");
  f.flow = a.get("flow");
  f.action = a.get("action");
  f.src = a.get("src");
  f.dst = a.get("dst");
  f.tenant = a.get("tenant");
  f.rule = a.get("rule");
  return f;
}

// A token count of the index; a provider that reported none is unknown, not 0.
std::string tokens_text(std::uint64_t n, std::string_view unknown) {
  return n == audit::tokens_unknown ? std::string(unknown) : std::to_string(n);
}
json::value tokens_json(std::uint64_t n) {
  return n == audit::tokens_unknown ? json::value(nullptr) : json::value(n);
}

json::array strings_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

// JSON text with every number written out plainly: Boost.JSON writes a double
// in scientific notation (14.640691 as 1.4640691E1, which customsd's payloads
// hold as such); auditors read "14.640691". Doubles are written in the
// shortest fixed notation that reads back as the same double (std::to_chars),
// so nothing is lost; strings are escaped by Boost.JSON.
void write_plain(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        out += json::serialize(json::string(kv.key()));
        out.push_back(':');
        write_plain(out, kv.value());
      }
      out.push_back('}');
      break;
    }
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        write_plain(out, e);
      }
      out.push_back(']');
      break;
    }
    case json::kind::double_: {
      const double d = v.get_double();
      // A number past the double range (1e999 in a hostile payload) was read
      // as infinity, which JSON cannot write: it is written back as a number
      // that reads as infinity again.
      if (std::isinf(d)) {
        out += d > 0 ? "1e999" : "-1e999";
        break;
      }
      // 5e-324 written out takes 327 characters, 1.8e308 309: room for both.
      char buf[400];
      const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
      if (res.ec == std::errc{}) out.append(buf, res.ptr);
      else out += json::serialize(v);  // not reached for a finite double
      break;
    }
    default:
      out += json::serialize(v);  // strings, integers, bool, null
  }
}
std::string plain_json(const json::value& v) {
  std::string out;
  write_plain(out, v);
  return out;
}
// A payload that is not JSON as a JSON string. A trail written before
// payloads were held to UTF-8 may hold a client's raw byte (a %FF, a Latin-1
// header): it is written as U+FFFD, as customsd writes it now, so that the
// exported line stays JSON.
json::string as_utf8(std::string_view s) {
  std::string quoted = "\"";
  customs::daemon::enforce::json_out::escape(quoted, s);
  quoted += '"';
  return json::parse(quoted).as_string();
}

// A stored payload for display: re-written with plain numbers when it is JSON,
// as stored otherwise.
std::string plain_payload(const std::string& payload) {
  boost::system::error_code ec;
  const auto v = json::parse(payload, ec);
  return ec ? payload : plain_json(v);
}

void no_positional(const parsed_args& a) {
  if (!a.positional().empty()) throw usage_error("unexpected argument '" + a.positional()[0] + "'");
}

enum class out_format { table, jsonl, csv };

out_format get_format(const parsed_args& a, out_format def) {
  const auto v = a.get("format");
  if (!v) return def;
  if (*v == "table") return out_format::table;
  if (*v == "jsonl") return out_format::jsonl;
  if (*v == "csv") return out_format::csv;
  throw usage_error("--format takes table, jsonl or csv");
}

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += "\"\"";
    else out.push_back(c);
  }
  out += "\"";
  return out;
}

// Table cells stay on one line: control characters are shown escaped.
std::string cell(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : "?";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ",") {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

// ---- verify ----------------------------------------------------------------

int cmd_verify(const parsed_args& a) {
  no_positional(a);
  const fs::path db = a.require("db");
  std::optional<crypto::sealing_state> seed;
  if (const auto p = a.get("seed")) seed = crypto::load_sealing_seed(*p);
  audit::verify_options vo;
  vo.seed = seed ? &*seed : nullptr;
  if (const auto p = a.get("signer")) vo.signer = crypto::load_signing_public(*p);
  if (const auto p = a.get("checkpoint")) {
    // A checkpoint file is a few hundred bytes of text.
    const std::string text = policy::read_input_file(*p, 64 * 1024);
    try {
      vo.held = audit::format::checkpoint_from_text(text);
    } catch (const std::exception& e) {
      throw std::runtime_error(*p + ":" + e.what());
    }
  }
  vo.max_failures = a.flag("all") ? 1000 : 1;
  const auto sum = audit::verify(db, vo);
  if (!sum.ok()) {
    for (const auto& f : sum.failures)
      std::cout << db.string() << ": FAILED at record " << f.seq << ": " << audit::to_string(f.kind)
                << ": " << f.detail << "\n";
    std::cout << "verified " << sum.verified_before_failure() << " records before the first failure\n";
    return 1;
  }
  std::cout << db.string() << ": OK\n";
  std::cout << "records:     " << sum.records << " (" << sum.flows_records << " flow records, "
            << sum.epochs << " epochs), seq 1.." << sum.last_seq << "\n";
  if (sum.records)
    std::cout << "time:        " << audit::format::format_time(sum.first_time_us) << " .. "
              << audit::format::format_time(sum.last_time_us) << "\n";
  std::cout << "MACs:        "
            << (sum.macs_checked ? "checked with the sealing seed"
                                 : "NOT checked (give --seed sealing.seed)")
            << "\n";
  std::cout << "checkpoints: " << sum.checkpoints << ", signatures checked against "
            << (sum.signer_trusted ? "the given --signer key"
                                   : "the key recorded in the trail (give --signer signing.pub)")
            << "\n";
  if (sum.last_signed_seq == 0 && sum.records > 0)
    std::cout << "signed:      NO record is covered by a signed checkpoint: whoever holds the "
                 "sealing seed could have rewritten every one (give --checkpoint FILE)\n";
  else if (sum.last_signed_seq < sum.last_seq)
    std::cout << "signed:      records 1.." << sum.last_signed_seq << " are covered by a signed checkpoint; the "
              << sum.last_seq - sum.last_signed_seq
              << " after it only by MACs (a live trail's current epoch, or a tail whoever holds the "
                 "sealing seed could have rewritten)\n";
  else if (sum.records > 0)
    std::cout << "signed:      every record is covered by a signed checkpoint\n";
  if (sum.held_checkpoint_checked)
    std::cout << "held checkpoint: seq " << vo.held->seq << " matches (no truncation or rollback)\n";
  else
    std::cout << "held checkpoint: none given (truncation after the last stored checkpoint "
                 "cannot be detected; give --checkpoint FILE)\n";
  std::cout << "erased payloads: " << sum.erased_payloads;
  if (!sum.erased_flows.empty()) {
    std::cout << " (flows: " << join(sum.erased_flows, ", ");
    if (sum.erased_flows.size() >= audit::verify_summary::max_listed_flows)
      std::cout << ", ... (the first " << audit::verify_summary::max_listed_flows << " are listed)";
    std::cout << ")";
  }
  std::cout << "\n";
  return 0;
}

// ---- checkpoint ----------------------------------------------------------------

int cmd_checkpoint(const parsed_args& a) {
  no_positional(a);
  audit::reader r(a.require("db"));
  const auto cp = r.latest_checkpoint();
  if (!cp) throw std::runtime_error(a.require("db") + ": holds no checkpoint yet");
  std::cout << audit::format::checkpoint_to_text(*cp);
  return 0;
}

// ---- show / export ----------------------------------------------------------------

json::object record_json(const audit::read_record& rec, bool with_key) {
  json::object o;
  o["seq"] = rec.seq;
  o["time"] = audit::format::format_time(rec.time_us);
  o["kind"] = std::string(audit::format::kind_name(rec.kind));
  o["epoch"] = rec.epoch;
  o["flow_id"] = rec.flow_id;
  o["route"] = rec.index.route;
  o["src"] = rec.index.src;
  o["dst"] = rec.index.dst;
  o["tenant"] = rec.index.tenant;
  o["action"] = rec.index.action;
  json::array rules;
  for (const auto& r : rec.index.rules) rules.emplace_back(r);
  o["rules"] = std::move(rules);
  o["rule_set_hash"] = rec.index.rule_set_hash;
  o["tokens_in"] = tokens_json(rec.index.tokens_in);
  o["tokens_out"] = tokens_json(rec.index.tokens_out);
  o["erased"] = rec.erased;
  if (rec.payload) {
    boost::system::error_code ec;
    auto v = json::parse(*rec.payload, ec);
    if (ec) o["payload"] = as_utf8(*rec.payload);
    else o["payload"] = std::move(v);
  } else if (with_key && !rec.payload_error.empty()) {
    o["payload_error"] = rec.payload_error;
  }
  return o;
}

// The table's columns. Widths fit the longest value in the records shown
// (found by a first pass over the index fields, without decrypting), at least
// the heading; one space stands between columns whatever a value's length (a
// record appended between the two passes may be longer).
struct table_columns {
  static constexpr std::size_t n = 9;  // RULES, the last, is not padded
  std::array<std::size_t, n> width{};
  static constexpr std::array<std::string_view, n> heads = {"SEQ",    "TIME", "KIND",   "FLOW",  "ACTION",
                                                             "SRC",    "DST",  "TENANT", "TOKENS"};
  table_columns() {
    for (std::size_t i = 0; i < n; ++i) width[i] = heads[i].size();
  }
  static std::array<std::string, n> cells(const audit::read_record& rec) {
    return {std::to_string(rec.seq),
            audit::format::format_time(rec.time_us),
            std::string(audit::format::kind_name(rec.kind)),
            cell(rec.flow_id),
            cell(rec.index.action),
            cell(rec.index.src),
            cell(rec.index.dst),
            cell(rec.index.tenant),
            tokens_text(rec.index.tokens_in, "?") + "/" + tokens_text(rec.index.tokens_out, "?")};
  }
  void fit(const audit::read_record& rec) {
    const auto c = cells(rec);
    for (std::size_t i = 0; i < n; ++i) width[i] = std::max(width[i], c[i].size());
  }
  void print(std::ostream& os, const std::array<std::string, n>& c, std::string_view rules) const {
    std::string line;
    for (std::size_t i = 0; i < n; ++i) {
      line += c[i];
      line.append(width[i] > c[i].size() ? width[i] - c[i].size() + 1 : 1, ' ');
    }
    line += rules;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << "\n";
  }
};

// --flow takes a whole flow id or a prefix only one id has (as git takes a
// commit's): the filter then names that id. No match and several matches are
// errors, rather than an empty listing.
void resolve_flow(audit::reader& r, audit::record_filter& f) {
  if (!f.flow) return;
  if (f.flow->empty()) throw usage_error("--flow: give a flow id or the start of one");
  const auto m = r.match_flow(*f.flow);
  if (m.count == 0) throw std::runtime_error("--flow: no flow id starts with '" + cell(*f.flow) + "'");
  if (m.count > 1)
    throw std::runtime_error("--flow: '" + cell(*f.flow) + "' matches " + std::to_string(m.count) +
                             " flows; give more of the id");
  f.flow = m.id;
}

int cmd_show(const parsed_args& a, out_format def) {
  no_positional(a);
  const auto fmt = get_format(a, def);
  auto filter = make_filter(a);
  filter.action_final = true;  // --action: the flow's final verdict, each flow once
  const std::string db = a.require("db");
  audit::reader r(db);
  resolve_flow(r, filter);
  const bool with_key = a.get("key").has_value();
  if (with_key) r.set_auditor_key(crypto::load_auditor_secret(*a.get("key")));
  table_columns table;
  if (fmt == out_format::csv) {
    std::cout << "seq,time,kind,epoch,flow_id,action,src,dst,tenant,route,rules,rule_set_hash,tokens_in,tokens_out,"
                 "erased"
              << (with_key ? ",payload" : "") << "\r\n";
  } else if (fmt == out_format::table) {
    audit::reader index(db);  // no key: the index fields only
    index.for_each(filter, [&](const audit::read_record& rec) {
      table.fit(rec);
      return true;
    });
    std::array<std::string, table_columns::n> heads;
    for (std::size_t i = 0; i < table_columns::n; ++i) heads[i] = table_columns::heads[i];
    table.print(std::cout, heads, "RULES");
  }
  std::uint64_t n = 0;
  r.for_each(filter, [&](const audit::read_record& rec) {
    ++n;
    switch (fmt) {
      case out_format::jsonl:
        std::cout << plain_json(record_json(rec, with_key)) << "\n";
        break;
      case out_format::csv: {
        // Rule ids are joined with ';' (ids hold [a-z0-9._-] only), so the
        // field needs no quoting and splits on one character.
        std::cout << rec.seq << "," << audit::format::format_time(rec.time_us) << ","
                  << audit::format::kind_name(rec.kind) << "," << rec.epoch << "," << csv_field(rec.flow_id) << ","
                  << csv_field(rec.index.action) << "," << csv_field(rec.index.src) << ","
                  << csv_field(rec.index.dst) << "," << csv_field(rec.index.tenant) << ","
                  << csv_field(rec.index.route) << "," << csv_field(join(rec.index.rules, ";")) << ","
                  << csv_field(rec.index.rule_set_hash) << "," << tokens_text(rec.index.tokens_in, "") << ","
                  << tokens_text(rec.index.tokens_out, "") << "," << (rec.erased ? "true" : "false");
        if (with_key) std::cout << "," << csv_field(rec.payload ? plain_payload(*rec.payload) : rec.payload_error);
        std::cout << "\r\n";
        break;
      }
      case out_format::table: {
        table.print(std::cout, table_columns::cells(rec), cell(join(rec.index.rules)));
        if (rec.payload) std::cout << "        payload: " << cell(plain_payload(*rec.payload)) << "\n";
        else if (rec.erased) std::cout << "        payload: (erased)\n";
        else if (with_key && !rec.payload_error.empty())
          std::cout << "        payload: (" << rec.payload_error << ")\n";
        break;
      }
    }
    return true;
  });
  if (fmt == out_format::table) std::cout << n << " records\n";
  return 0;
}

// ---- replay ----------------------------------------------------------------

int cmd_replay(const parsed_args& a) {
  no_positional(a);
  auto filter = make_filter(a);
  const auto rules = a.all("rules");
  if (rules.empty()) throw usage_error("--rules is required");
  const auto key = a.require("key");
  std::vector<fs::path> paths(rules.begin(), rules.end());
  auto engine = make_replay_evaluator(paths);  // throws with the rule files' diagnostics
  audit::reader r(a.require("db"));
  r.set_auditor_key(crypto::load_auditor_secret(key));
  const auto sum = audit::replay(r, filter, engine.evaluate);
  std::cout << "replaying against rule set " << engine.description << "\n";
  for (const auto& c : sum.changes)
    std::cout << audit::format::format_time(c.time_us) << "  " << c.flow_id << "  " << c.old_action
              << " [" << join(c.old_rules) << "] -> " << c.new_action << " [" << join(c.new_rules)
              << "]\n";
  for (const auto& s : sum.skipped) std::cout << "not replayed: " << s.flow_id << ": " << s.reason << "\n";
  std::cout << sum.flows << " flows, " << sum.replayed << " replayed, " << sum.changed
            << " would change, " << sum.not_replayable << " not replayable\n";
  return 0;
}

// ---- report ----------------------------------------------------------------

int cmd_report(const parsed_args& a) {
  no_positional(a);
  const auto format = a.get("format").value_or("table");
  if (format != "table" && format != "csv" && format != "json" && format != "jsonl" && format != "html")
    throw usage_error("--format takes table, csv, json, jsonl or html");
  const bool as_json = format == "json", as_html = format == "html";
  const auto fmt = as_json || as_html ? out_format::jsonl : get_format(a, out_format::table);
  std::vector<std::string> by;
  if (const auto v = a.get("by")) {
    std::string_view s = *v;
    while (!s.empty()) {
      const auto comma = s.find(',');
      by.emplace_back(s.substr(0, comma));
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
  }
  audit::reader r(a.require("db"));
  auto filter = make_filter(a);
  filter.action_final = true;  // each flow's final verdict decides (report_from_payloads reads records)
  resolve_flow(r, filter);
  std::vector<audit::reader::group_totals> groups;
  const bool by_model = std::find(by.begin(), by.end(), "model") != by.end();
  if (by_model && !a.get("key")) throw usage_error("--by model reads the flows' payloads: give --key auditor.key");
  try {
    if (as_html) {
      // One page: the trail's verification, charts and tables; exit 1 (with
      // the page written) when the trail failed verification.
      const auto page = collect_html_report(a, a.require("db"), by, filter);
      std::cout << render_html_report(page);
      return page.verified() ? 0 : 1;
    }
    if (by_model) {
      r.set_auditor_key(crypto::load_auditor_secret(*a.get("key")));
      groups = report_from_payloads(r, by, filter);
    } else {
      groups = r.report(by, filter);
    }
  } catch (const std::invalid_argument& e) {
    throw usage_error(std::string("--by: ") + e.what());
  }
  // Every flow counts under one of allowed .. other (its final action), so
  // these add up to flows; other holds actions this build does not know, or
  // none (a trail configured without the action index field).
  const std::vector<std::string> counts = {"flows",  "blocked",   "redacted",   "tagged",     "allowed",
                                           "unscannable", "refused", "failed", "other", "tokens_in",
                                           "tokens_out",  "usage_unknown"};
  const auto values = [](const audit::reader::group_totals& g) {
    return std::vector<std::uint64_t>{g.flows,     g.blocked,  g.redacted, g.tagged,    g.allowed,    g.unscannable,
                                      g.refused,   g.failed,   g.other,    g.tokens_in, g.tokens_out, g.usage_unknown};
  };
  switch (fmt) {
    case out_format::jsonl: {
      json::array all;
      for (const auto& g : groups) {
        json::object o;
        for (std::size_t i = 0; i < by.size(); ++i) o[by[i]] = g.key[i];
        const auto v = values(g);
        for (std::size_t i = 0; i < counts.size(); ++i) o[counts[i]] = v[i];
        if (as_json) all.push_back(std::move(o));
        else std::cout << json::serialize(o) << "\n";
      }
      if (as_json) std::cout << json::serialize(json::object{{"by", strings_array(by)}, {"groups", std::move(all)}}) << "\n";
      break;
    }
    case out_format::csv:
      std::cout << join(by) << (by.empty() ? "" : ",") << join(counts) << "\r\n";
      for (const auto& g : groups) {
        for (const auto& k : g.key) std::cout << csv_field(k) << ",";
        const auto v = values(g);
        for (std::size_t i = 0; i < v.size(); ++i) std::cout << (i ? "," : "") << v[i];
        std::cout << "\r\n";
      }
      break;
    case out_format::table: {
      audit::reader::group_totals total;
      for (const auto& g : groups) {
        total.flows += g.flows, total.blocked += g.blocked, total.redacted += g.redacted;
        total.tagged += g.tagged, total.allowed += g.allowed, total.unscannable += g.unscannable;
        total.refused += g.refused, total.failed += g.failed, total.other += g.other;
        total.tokens_in += g.tokens_in, total.tokens_out += g.tokens_out;
        total.usage_unknown += g.usage_unknown;
      }
      // Widths fit the longest key and number (the total's), so no two columns
      // touch: keys left-aligned, two spaces after; counts right-aligned, at
      // least one space before.
      std::vector<std::size_t> key_w(by.size());
      for (std::size_t i = 0; i < by.size(); ++i) {
        key_w[i] = by[i].size();
        for (const auto& g : groups) key_w[i] = std::max(key_w[i], g.key[i].empty() ? 1 : cell(g.key[i]).size());
      }
      std::size_t keys_w = 0;
      for (const auto w : key_w) keys_w += w + 2;
      if (!by.empty()) keys_w = std::max(keys_w, std::string_view("total  ").size());
      std::vector<std::size_t> count_w(counts.size());
      const auto tv = values(total);
      for (std::size_t i = 0; i < counts.size(); ++i)
        count_w[i] = std::max(counts[i].size(), std::to_string(tv[i]).size()) + 1;
      const auto pad_right = [](std::string s, std::size_t w) {
        if (s.size() < w) s.append(w - s.size(), ' ');
        return s;
      };
      const auto pad_left = [](const std::string& s, std::size_t w) {
        return s.size() < w ? std::string(w - s.size(), ' ') + s : s;
      };
      const auto print_counts = [&](const std::vector<std::uint64_t>& v) {
        std::string line;
        for (std::size_t i = 0; i < v.size(); ++i) line += pad_left(std::to_string(v[i]), count_w[i]);
        return line;
      };
      std::string head;
      for (std::size_t i = 0; i < by.size(); ++i) head += pad_right(by[i], key_w[i] + 2);
      head = pad_right(head, keys_w);
      for (std::size_t i = 0; i < counts.size(); ++i) head += pad_left(counts[i], count_w[i]);
      std::cout << head << "\n";
      for (const auto& g : groups) {
        std::string line;
        for (std::size_t i = 0; i < by.size(); ++i)
          line += pad_right(g.key[i].empty() ? "-" : cell(g.key[i]), key_w[i] + 2);
        std::cout << pad_right(line, keys_w) << print_counts(values(g)) << "\n";
      }
      if (!by.empty()) std::cout << pad_right("total", keys_w) << print_counts(tv) << "\n";
      break;
    }
  }
  return 0;
}

// ---- erase ----------------------------------------------------------------

int cmd_erase(const parsed_args& a) {
  no_positional(a);
  audit::writer_options opts;
  opts.db = a.require("db");
  auto flow = a.require("flow");
  const auto reason = a.require("reason");
  if (reason.empty()) throw usage_error("--reason must not be empty");
  const auto dir = a.get("keys");
  for (const auto& p : a.all("auditor-pub")) opts.auditor_keys.emplace_back(p);
  if (opts.auditor_keys.empty() && dir) opts.auditor_keys.push_back(fs::path(*dir) / "auditor.pub");
  if (const auto p = a.get("sealing-key")) opts.sealing_key = *p;
  else if (dir) opts.sealing_key = fs::path(*dir) / "sealing.key";
  if (const auto p = a.get("signing-key")) opts.signing_key = *p;
  else if (dir) opts.signing_key = fs::path(*dir) / "signing.key";
  if (opts.auditor_keys.empty() || opts.sealing_key.empty() || opts.signing_key.empty())
    throw usage_error("erase needs customsd's keys: --keys DIR, or --auditor-pub, --sealing-key "
                      "and --signing-key");
  if (!fs::exists(opts.db)) throw std::runtime_error(opts.db.string() + ": no such audit database");
  {
    // A prefix names the one flow whose id starts with it.
    audit::reader r(opts.db);
    audit::record_filter f;
    f.flow = flow;
    resolve_flow(r, f);
    flow = *f.flow;
  }
  auto s = audit::store::open_store(opts);
  const auto res = s->erase_flow(flow, reason);
  s->close();
  std::cout << "erased the payloads of " << res.erased.size() << " records of flow " << flow
            << " (seq";
  for (const auto seq : res.erased) std::cout << " " << seq;
  std::cout << "); erasure recorded as record " << res.erasure_seq << "\n";
  return 0;
}

}  // namespace

int run_audit(std::span<const std::string_view> args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << group_usage();
    return args.empty() ? 2 : 0;
  }
  const std::string cmd(args[0]);
  const auto rest = args.subspan(1);
  const audit_command_help* help = nullptr;
  for (const auto& h : audit_help)
    if (h.name == cmd) help = &h;
  if (!help) {
    std::cerr << "customsctl audit: unknown command '" << cmd << "'\n" << group_usage();
    return 2;
  }
  try {
    // Options of each command; FILTERS are added for the commands that take them.
    std::set<std::string> valued, flags;
    if (cmd == "verify") {
      valued = {"db", "seed", "checkpoint", "signer"};
      flags = {"all"};
    } else if (cmd == "checkpoint") valued = {"db"};
    else if (cmd == "show" || cmd == "export" || cmd == "volumes") valued = {"db", "key", "format"};
    else if (cmd == "replay") valued = {"db", "key", "rules", "since", "until"};
    else if (cmd == "report") valued = {"db", "by", "format", "key"};
    else if (cmd == "erase") valued = {"db", "flow", "reason", "keys", "auditor-pub", "sealing-key", "signing-key"};
    if (help->filters) valued = with_filters(std::move(valued));
    const parsed_args a(rest, valued, flags);
    if (a.help()) {
      std::cout << command_usage(*help);
      return 0;
    }
    if (cmd == "verify") return cmd_verify(a);
    if (cmd == "checkpoint") return cmd_checkpoint(a);
    if (cmd == "show") return cmd_show(a, out_format::table);
    if (cmd == "export") return cmd_show(a, out_format::jsonl);
    if (cmd == "replay") return cmd_replay(a);
    if (cmd == "report") return cmd_report(a);
    if (cmd == "volumes") {
      no_positional(a);
      auto filter = make_filter(a);
      if (filter.flow) {
        audit::reader r(a.require("db"));
        resolve_flow(r, filter);
      }
      return cmd_audit_volumes(a, filter);
    }
    return cmd_erase(a);
  } catch (const usage_error& e) {
    std::cerr << "customsctl audit " << cmd << ": " << e.what() << "\n" << command_usage(*help);
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "customsctl audit " << cmd << ": error: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace customs::tools
