// customsctl audit report --format html: the page is well-formed, holds every
// number the table format prints, escapes what the trail holds, and says
// whether the trail verified.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <cstdlib>
#include <fstream>
#include <set>

#include "audit_tools_support.hpp"
#include "tests/audit/audit_test_support.hpp"
#include "tools/audit_html.hpp"

using namespace customs::tools::testing;
using namespace customs::audit::testing;
namespace audit = customs::audit;
namespace crypto = customs::crypto;
namespace fs = std::filesystem;

// Named, not anonymous: the tests of a directory are built as one unity file.
namespace html_test {

std::vector<std::string> out_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<std::string> cells_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::size_t occurrences(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// ---- a strict check of the page ---------------------------------------------
// The page is written to parse the same as XML and as HTML: well-formed UTF-8
// without control characters, one root element, every element closed (void
// ones as <x/>), attribute values quoted, & only in entity references, no
// comment, and no block element inside a <p> (which an HTML parser would close
// early). Reports the tags and attribute names used.
struct page_check {
  std::string error;
  std::set<std::string> tags, attributes;
};

bool utf8_ok(const std::string& s, std::size_t& bad) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && b < 0xC2)) return bad = i, false;
    char32_t c = n == 1 ? b : n == 2 ? b & 0x1F : n == 3 ? b & 0x0F : b & 0x07;
    for (std::size_t k = 1; k < n; ++k) {
      const auto x = static_cast<unsigned char>(s[i + k]);
      if ((x & 0xC0) != 0x80) return bad = i, false;
      c = (c << 6) | (x & 0x3F);
    }
    const bool overlong = (n == 3 && c < 0x800) || (n == 4 && c < 0x10000);
    const bool control = (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || (c >= 0x7F && c <= 0x9F);
    if (overlong || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF) || control || (c & 0xFFFE) == 0xFFFE)
      return bad = i, false;
    i += n;
  }
  return true;
}

page_check check_page(const std::string& page) {
  page_check c;
  const auto fail = [&](const std::string& why, std::size_t at) {
    c.error = why + " at byte " + std::to_string(at) + ": " + page.substr(at, 80);
    return c;
  };
  std::size_t bad = 0;
  if (!utf8_ok(page, bad)) return fail("not UTF-8 or a control character", bad);
  const std::string doctype = "<!DOCTYPE html>\n";
  if (!page.starts_with(doctype)) return fail("no doctype", 0);
  static const std::set<std::string> blocks = {"p",  "div",    "ul",     "ol",     "dl",   "table", "section",
                                               "h1", "h2",     "h3",     "header", "footer", "nav", "main",
                                               "figure", "pre"};
  const auto is_name = [](char ch, bool first) {
    const auto u = static_cast<unsigned char>(ch);
    return std::isalpha(u) || (!first && (std::isdigit(u) || ch == '-' || ch == ':'));
  };
  const auto entity_at = [&](std::size_t i) {
    const auto semi = page.find(';', i);
    if (semi == std::string::npos || semi - i > 10) return false;
    const std::string e = page.substr(i + 1, semi - i - 1);
    if (e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos") return true;
    if (e.size() < 2 || e[0] != '#') return false;
    const bool hex = e[1] == 'x';
    if (e.size() == (hex ? 2u : 1u)) return false;
    for (std::size_t k = hex ? 2 : 1; k < e.size(); ++k)
      if (!(hex ? std::isxdigit(static_cast<unsigned char>(e[k])) : std::isdigit(static_cast<unsigned char>(e[k]))))
        return false;
    return true;
  };
  std::vector<std::string> open;
  bool root_done = false;
  std::size_t i = doctype.size();
  while (i < page.size()) {
    const char ch = page[i];
    if (ch == '&') {
      if (!entity_at(i)) return fail("a bare &", i);
      ++i;
      continue;
    }
    if (ch != '<') {
      if (open.empty() && !std::isspace(static_cast<unsigned char>(ch))) return fail("text outside the root", i);
      ++i;
      continue;
    }
    if (page.compare(i, 4, "<!--") == 0) return fail("a comment", i);
    const bool closing = i + 1 < page.size() && page[i + 1] == '/';
    std::size_t j = i + (closing ? 2 : 1);
    const std::size_t name_start = j;
    if (j >= page.size() || !is_name(page[j], true)) return fail("a bare <", i);
    while (j < page.size() && is_name(page[j], false)) ++j;
    const std::string name = page.substr(name_start, j - name_start);
    if (closing) {
      if (j >= page.size() || page[j] != '>') return fail("a malformed end tag", i);
      if (open.empty() || open.back() != name) return fail("</" + name + "> closes " + (open.empty() ? "nothing" : open.back()), i);
      open.pop_back();
      if (open.empty()) root_done = true;
      i = j + 1;
      continue;
    }
    if (open.empty() && (root_done || name != "html")) return fail("a second root or not <html>", i);
    if (blocks.count(name) && std::find(open.begin(), open.end(), "p") != open.end())
      return fail("<" + name + "> inside <p>", i);
    c.tags.insert(name);
    bool self_closed = false;
    for (;;) {
      while (j < page.size() && page[j] == ' ') ++j;
      if (j >= page.size()) return fail("a tag that does not end", i);
      if (page.compare(j, 2, "/>") == 0) {
        self_closed = true;
        j += 2;
        break;
      }
      if (page[j] == '>') {
        ++j;
        break;
      }
      const std::size_t a = j;
      while (j < page.size() && is_name(page[j], j == a)) ++j;
      if (j == a || page.compare(j, 2, "=\"") != 0) return fail("an attribute without a quoted value", j);
      c.attributes.insert(page.substr(a, j - a));
      j += 2;
      const auto end = page.find('"', j);
      if (end == std::string::npos) return fail("an attribute value that does not end", j);
      for (std::size_t k = j; k < end; ++k) {
        if (page[k] == '<') return fail("< in an attribute value", k);
        if (page[k] == '&' && !entity_at(k)) return fail("a bare & in an attribute value", k);
      }
      j = end + 1;
    }
    if (!self_closed) open.push_back(name);
    i = j;
  }
  if (!open.empty()) return fail("<" + open.back() + "> not closed", page.size() - 1);
  if (!root_done) return fail("no root element", 0);
  return c;
}

// The page without the one line that changes between runs (when it was made).
std::string without_made_at(const std::string& page) {
  const auto at = page.find("<dd id=\"made-at\">");
  REQUIRE(at != std::string::npos);
  const auto end = page.find("</dd>", at);
  REQUIRE(end != std::string::npos);
  return page.substr(0, at) + page.substr(end);
}

// ---- trails ---------------------------------------------------------------------

// Gives the flow records of a trail other times, as if they had been written
// then (epoch starts and checkpoints follow them): each payload is encrypted
// again (the time is part of its associated data), and the chain, the MACs and
// the checkpoints' signatures are made again with the trail's own keys, so the
// trail still verifies.
void retime(const trail& t, const std::function<std::int64_t(const audit::read_record&)>& time_of) {
  const auto sk = crypto::load_auditor_secret(t.keys / "auditor.key");
  const auto pk = crypto::box_public_from_secret(sk);
  struct change {
    audit::format::header_fields h;
    std::optional<std::string> plain;
  };
  std::vector<change> changes;
  {
    audit::reader r(t.db);
    r.set_auditor_key(sk);
    audit::record_filter every;
    every.include_internal = true;
    r.for_each(every, [&](const audit::read_record& rec) {
      const bool flow = rec.kind == audit::record_kind::flow_opened || rec.kind == audit::record_kind::flow_closed;
      if (!flow && rec.kind != audit::record_kind::epoch_start) return true;
      change c;
      c.h.kind = rec.kind;
      c.h.seq = rec.seq;
      c.h.epoch = rec.epoch;
      c.h.time_us = flow ? time_of(rec) : 0;
      c.h.flow_id = rec.flow_id;
      c.h.index = rec.index;
      c.plain = rec.payload;
      changes.push_back(std::move(c));
      return true;
    });
    // An epoch starts when the flow record after it was written (or the one
    // before it, at the end).
    for (std::size_t i = changes.size(); i-- > 0;) {
      if (changes[i].h.kind != audit::record_kind::epoch_start) continue;
      for (std::size_t k = i + 1; k < changes.size() && !changes[i].h.time_us; ++k) changes[i].h.time_us = changes[k].h.time_us;
      for (std::size_t k = i; k-- > 0 && !changes[i].h.time_us;) changes[i].h.time_us = changes[k].h.time_us;
    }
  }
  {
    auto d = tamper_db(t.db);
    std::map<std::uint64_t, crypto::aead_key> data_keys;
    audit::sql::statement es(d, "SELECT epoch, payload FROM records WHERE kind = 16");
    while (es.step() == SQLITE_ROW) {
      const auto body = audit::format::decode_epoch_start(es.column_blob(1));
      REQUIRE(body);
      for (const auto& k : body->keys) {
        if (k.auditor != pk) continue;
        crypto::aead_key dk;
        REQUIRE(crypto::seal_open(k.box, pk, sk, {dk.data(), dk.size()}));
        data_keys.emplace(static_cast<std::uint64_t>(es.column_int(0)), std::move(dk));
      }
    }
    d.exec("BEGIN");
    audit::sql::statement get(d, "SELECT payload FROM records WHERE seq = ?1");
    audit::sql::statement up(d, "UPDATE records SET time_us = ?1, payload = ?2 WHERE seq = ?3");
    crypto::bytes header, sealed;
    audit::sql::statement when(d, "UPDATE records SET time_us = ?1 WHERE seq = ?2");
    for (const auto& c : changes) {
      if (c.h.kind == audit::record_kind::epoch_start) {  // in clear: only its time changes
        when.bind(1, c.h.time_us);
        when.bind(2, static_cast<std::int64_t>(c.h.seq));
        REQUIRE(when.step() == SQLITE_DONE);
        when.reset();
        continue;
      }
      get.bind(1, static_cast<std::int64_t>(c.h.seq));
      REQUIRE(get.step() == SQLITE_ROW);
      const auto old = get.column_blob(0);
      REQUIRE(c.plain);
      REQUIRE(old.size() > crypto::aead_nonce_bytes);
      crypto::bytes payload(old.begin(), old.begin() + crypto::aead_nonce_bytes);
      get.reset();
      audit::format::encode_header(c.h, header);
      sealed.clear();
      crypto::aead_encrypt(data_keys.at(c.h.epoch),
                           std::span<const std::uint8_t, crypto::aead_nonce_bytes>(payload.data(), crypto::aead_nonce_bytes),
                           *c.plain, header, sealed);
      payload.insert(payload.end(), sealed.begin(), sealed.end());
      up.bind(1, c.h.time_us);
      up.bind(2, crypto::byte_view(payload));
      up.bind(3, static_cast<std::int64_t>(c.h.seq));
      REQUIRE(up.step() == SQLITE_DONE);
      up.reset();
    }
    // A checkpoint was signed when the record it names was written.
    d.exec("UPDATE checkpoints SET time_us = (SELECT time_us FROM records WHERE records.seq = checkpoints.seq)");
    d.exec("COMMIT");
  }
  const auto seed = t.seed();
  std::map<std::uint64_t, crypto::mac_key> keys;
  rechain(t.db, 1, [&](std::uint64_t e) -> const crypto::mac_key& {
    if (!keys.count(e)) keys.emplace(e, crypto::evolve_to(seed.key, 0, e));
    return keys.at(e);
  }, crypto::load_signing_key(t.keys / "signing.key"));
}

// One flow of a trail as customsd writes it: an opening record with the
// request's findings and the rule set's id and version, a closing record with
// the request's and the response's findings; or only a closing record (edge)
// or a closing record without findings (one that could not be built).
struct flow_spec {
  std::string id, src, dst, tenant, action, hash, pack_version;
  std::vector<std::string> rules;
  std::vector<std::pair<std::string, std::string>> request_findings, response_findings;  // detector, category
  std::uint64_t tokens_in = 0, tokens_out = 0;  // audit::tokens_unknown: not reported
  enum class shape { full, edge, minimal_close } kind = shape::full;
  int day = 0;  // days after the trail's first day
};

std::string findings_json(const flow_spec& f, bool with_response) {
  boost::json::array a;
  for (const auto& [d, c] : f.request_findings)
    a.push_back(boost::json::object{{"detector", d}, {"category", c}, {"direction", "request"}, {"text", "secret"}});
  if (with_response)
    for (const auto& [d, c] : f.response_findings)
      a.push_back(boost::json::object{{"detector", d}, {"category", c}, {"direction", "response"}, {"text", "secret"}});
  return boost::json::serialize(a);
}

void write_specs(trail& t, const std::vector<flow_spec>& specs, std::int64_t first_day_us) {
  {
    auto s = audit::store::open_store(t.opts);
    ack_counter acks;
    std::size_t n = 0;
    for (const auto& f : specs) {
      audit::record o;
      o.kind = audit::record_kind::flow_opened;
      o.flow_id = f.id;
      o.index.route = "/v1/chat/completions";
      o.index.src = f.src;
      o.index.dst = f.dst;
      o.index.tenant = f.tenant;
      o.index.action = f.action == "error" ? "allow" : f.action;
      o.index.rules = f.rules;
      o.index.rule_set_hash = f.hash;
      o.index.tokens_in = o.index.tokens_out = audit::tokens_unknown;
      const auto rule_set = boost::json::serialize(boost::json::object{{"id", "acme-pack"}, {"version", f.pack_version}});
      o.payload = "{\"findings\":" + findings_json(f, false) + ",\"rule_set\":" + rule_set + "}";
      auto cl = o;
      cl.kind = audit::record_kind::flow_closed;
      cl.index.action = f.action;
      cl.index.tokens_in = f.tokens_in;
      cl.index.tokens_out = f.tokens_out;
      if (f.kind == flow_spec::shape::edge) cl.payload = "{\"edge\":\"tunnel\",\"rule_set\":" + rule_set + "}";
      else if (f.kind == flow_spec::shape::minimal_close) cl.payload = R"({"outcome":"failed","failure":"internal_error"})";
      else cl.payload = "{\"outcome\":\"answered\",\"findings\":" + findings_json(f, true) + "}";
      if (f.kind != flow_spec::shape::edge) {
        REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
        ++n;
      }
      REQUIRE_FALSE(s->append(std::move(cl), acks.handler()));
      ++n;
    }
    acks.wait_for(n);
    REQUIRE(acks.failed() == 0);
    s->close();
  }
  std::map<std::string, int> day_of;
  std::map<std::string, std::size_t> index_of;
  for (std::size_t i = 0; i < specs.size(); ++i) day_of[specs[i].id] = specs[i].day, index_of[specs[i].id] = i;
  retime(t, [&](const audit::read_record& rec) {
    const std::int64_t minute = 60'000'000;
    return first_day_us + day_of.at(rec.flow_id) * 1440 * minute +
           static_cast<std::int64_t>(index_of.at(rec.flow_id)) * minute +
           (rec.kind == audit::record_kind::flow_closed ? 1'000'000 : 0);
  });
}

// Twelve flows over four jurisdiction pairs and three days (2026-03-02, -03
// and -05: the 4th has none), decided by two versions of a rule set.
struct html_trail : trail {
  std::vector<flow_spec> specs;
  html_trail() {
    const char* actions[] = {"allow", "tag",   "redact", "block", "unscannable", "refused",
                             "error", "allow", "allow",  "block", "uninspected", "allow"};
    for (int i = 0; i < 12; ++i) {
      flow_spec f;
      char id[32];
      std::snprintf(id, sizeof id, "html%016d", i);
      f.id = id;
      f.src = i % 4 == 0 ? "CN" : i % 4 == 3 ? "FR" : "DE";
      f.dst = i % 4 == 2 ? "FR" : "US";
      f.tenant = i % 2 ? "acme" : "globex";
      f.action = actions[i];
      if (f.action == "block" || f.action == "redact" || f.action == "tag") f.rules = {"pii.card"};
      f.hash = i < 6 ? "aaaa1111" : "bbbb2222";
      f.pack_version = i < 6 ? "1" : "2";
      if (i % 3 == 0) f.request_findings = {{"cn.mobile", "pi.phone"}};
      if (i % 3 == 1) f.request_findings = {{"card", "pi.card"}, {"cn.mobile", "pi.phone"}};
      if (i % 2 == 0) f.response_findings = {{"email", "pi.email"}};
      f.tokens_in = i % 5 == 4 ? audit::tokens_unknown : 10 * static_cast<std::uint64_t>(i);
      f.tokens_out = i % 5 == 4 ? audit::tokens_unknown : 20 * static_cast<std::uint64_t>(i);
      if (i == 10) f.kind = flow_spec::shape::edge;
      if (i == 11) {
        f.kind = flow_spec::shape::minimal_close;
        f.request_findings = {{"card", "pi.card"}};
      }
      f.day = i < 5 ? 0 : i < 9 ? 1 : 3;
      specs.push_back(std::move(f));
    }
    write_specs(*this, specs, *audit::format::parse_time("2026-03-02"));
  }
  std::string dbs() const { return db.string(); }
  std::string key() const { return (keys / "auditor.key").string(); }
};

// The HTML row a line of the table format stands for: its keys, then its
// counts ("total" heads the total line, its other key cells are empty).
std::string html_row(const std::vector<std::string>& cells, std::size_t keys) {
  std::string row = "<tr>";
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (i < keys) {
      const bool total = cells[0] == "total";
      const char* tag = total && i == 0 ? "th" : "td";
      row += std::string("<") + tag + " class=\"k\">" + (total && i > 0 ? "" : cells[i]) + "</" + tag + ">";
    } else {
      row += "<td class=\"n\">" + cells[i] + "</td>";
    }
  }
  return row + "</tr>";
}

}  // namespace html_test

using namespace html_test;

TEST_CASE("html_text escapes markup and shows broken or misleading text as U+FFFD", "[tools][audit][report][html]") {
  using customs::tools::html_text;
  CHECK(html_text("<script>alert('x')</script>") == "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
  CHECK(html_text("a & \"b\"") == "a &amp; &quot;b&quot;");
  CHECK(html_text("Zoë → 東京") == "Zoë → 東京");
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(html_text("a\xFF" "b") == "a" + fffd + "b");                  // not UTF-8
  CHECK(html_text("\xC0\xAF") == fffd + fffd);                          // overlong '/'
  CHECK(html_text("\xED\xA0\x80") == fffd + fffd + fffd);               // a surrogate
  CHECK(html_text("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd);    // past U+10FFFF
  CHECK(html_text("\xE6\x9D") == fffd + fffd);                          // cut short
  CHECK(html_text(std::string("a\0b\x01\x7F", 5)) == "a" + fffd + "b" + fffd + fffd);
  CHECK(html_text("\xC2\x85") == fffd);                                 // C1 control
  CHECK(html_text("\xEF\xBF\xBE") == fffd);                             // noncharacter U+FFFE
  CHECK(html_text("abc\xE2\x80\xAEgpj.exe") == "abc" + fffd + "gpj.exe");  // right-to-left override
  CHECK(html_text("tab\tline\n") == "tab\tline\n");
}

TEST_CASE("audit report --format html: a well-formed page with every number of the table format",
          "[tools][audit][report][html]") {
  html_trail t;
  REQUIRE(t.verify().ok());  // moved in time, and still valid: MACs, signatures
  const auto r = audit_cmd({"report", "--db", t.dbs(), "--key", t.key(), "--by", "src,dst", "--format", "html"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  REQUIRE(r.err.empty());
  const auto& page = r.out;
  const auto check = check_page(page);
  INFO(check.error);
  REQUIRE(check.error.empty());
  // Self-contained: no script, no external resource, no inline event handler.
  CHECK_FALSE(check.tags.count("script"));
  CHECK_FALSE(check.tags.count("img"));
  CHECK_FALSE(check.tags.count("link"));
  CHECK_FALSE(check.attributes.count("src"));
  CHECK_FALSE(check.attributes.count("style"));
  // The only URLs are the SVG namespace's names (nothing is fetched from them).
  CHECK(occurrences(page, "http") == occurrences(page, "xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(occurrences(page, "url(") == occurrences(page, "url(#"));
  for (const auto& a : check.attributes) CHECK_FALSE(a.starts_with("on"));
  CHECK(check.tags.count("svg"));

  // The header: the trail, the period, the verification.
  CHECK_THAT(page, Catch::Contains("<code>" + t.dbs() + "</code>"));
  CHECK_THAT(page, Catch::Contains("2026-03-02T00:00:01.000000Z to 2026-03-05T00:11:01.000000Z"));
  CHECK_THAT(page, Catch::Contains("Verification passed"));
  CHECK_THAT(page, !Catch::Contains("Verification failed"));
  CHECK_THAT(page, Catch::Contains("Record MACs: <span class=\"status\">not checked</span>"));

  // Every line of the table format, keys and counts, is a row of the page.
  const auto table = audit_cmd({"report", "--db", t.dbs(), "--by", "src,dst"});
  REQUIRE(table.code == 0);
  const auto tl = out_lines(table.out);
  REQUIRE(tl.size() == 6);  // heading, four pairs, total
  for (std::size_t i = 1; i < tl.size(); ++i) {
    auto cells = cells_of(tl[i]);
    if (cells[0] == "total") cells.insert(cells.begin() + 1, "");
    REQUIRE(cells.size() == 14);
    INFO(tl[i]);
    CHECK_THAT(page, Catch::Contains(html_row(cells, 2)));
  }
  // ... and so is the ungrouped report's one line.
  const auto plain = audit_cmd({"report", "--db", t.dbs()});
  REQUIRE(plain.code == 0);
  CHECK_THAT(page, Catch::Contains(html_row(cells_of(out_lines(plain.out).at(1)), 0)));
  const auto totals = cells_of(out_lines(plain.out).at(1));
  CHECK(totals.at(0) == "12");  // flows
  CHECK(totals.at(8) == "1");   // other: the edge flow's "uninspected"

  // Charts: one per view, each followed by its table.
  for (const char* id : {"chart-pairs", "chart-verdicts", "chart-tokens", "chart-periods", "chart-findings"}) {
    INFO(id);
    CHECK_THAT(page, Catch::Contains(std::string("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"") + id + "\""));
  }
  for (const char* id : {"pairs-table", "verdicts-table", "tokens-table", "periods-table", "findings-table",
                         "rule-sets-table", "groups-table", "totals-table"}) {
    INFO(id);
    CHECK_THAT(page, Catch::Contains(std::string("<table id=\"") + id + "\">"));
  }
  // Flows by pair with their share; the verdicts of CN -> US (flows 0, 4, 8:
  // allow, unscannable, allow).
  CHECK_THAT(page, Catch::Contains("<tr><td class=\"k\">DE</td><td class=\"k\">US</td><td class=\"n\">3</td>"
                                   "<td class=\"n\">25.0 %</td></tr>"));
  CHECK_THAT(page, Catch::Contains("<tr><td class=\"k\">CN</td><td class=\"k\">US</td><td class=\"n\">2</td>"
                                   "<td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td>"
                                   "<td class=\"n\">1</td><td class=\"n\">0</td><td class=\"n\">0</td>"
                                   "<td class=\"n\">0</td><td class=\"n\">3</td></tr>"));
  // Days: the 4th had no flow and shows as 0 (flows 9, 10, 11 on the 5th).
  CHECK_THAT(page, Catch::Contains("<tr><td class=\"k\">2026-03-04</td><td class=\"n\">0</td>"));
  CHECK_THAT(page, Catch::Contains("<tr><td class=\"k\">2026-03-05</td><td class=\"n\">1</td><td class=\"n\">0</td>"
                                   "<td class=\"n\">0</td><td class=\"n\">1</td><td class=\"n\">0</td>"
                                   "<td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">1</td>"
                                   "<td class=\"n\">3</td>"));

  // Findings, once per flow: request findings of every flow but the edge one
  // (flow 11's closing record holds none: its opening record's count), response
  // findings of the flows whose closing record holds them.
  std::map<std::pair<std::string, std::string>, std::pair<int, int>> expected;
  for (const auto& f : t.specs) {
    if (f.kind == flow_spec::shape::edge) continue;
    for (const auto& x : f.request_findings) ++expected[x].first;
    if (f.kind == flow_spec::shape::full)
      for (const auto& x : f.response_findings) ++expected[x].second;
  }
  REQUIRE(expected.size() == 3);
  for (const auto& [k, v] : expected) {
    INFO(k.first);
    CHECK_THAT(page, Catch::Contains("<tr><td class=\"k\">" + k.first + "</td><td class=\"k\">" + k.second +
                                     "</td><td class=\"n\">" + std::to_string(v.first) + "</td><td class=\"n\">" +
                                     std::to_string(v.second) + "</td><td class=\"n\">" +
                                     std::to_string(v.first + v.second) + "</td></tr>"));
  }
  CHECK_THAT(page, !Catch::Contains("secret"));  // the matched text is never shown

  // The rule sets, with ids and versions from the payloads.
  CHECK_THAT(page, Catch::Contains("<tr><td class=\"k\"><code>aaaa1111</code></td><td class=\"k\">acme-pack</td>"
                                   "<td class=\"k\">1</td><td class=\"n\">6</td>"));
  CHECK_THAT(page, Catch::Contains("<tr><td class=\"k\"><code>bbbb2222</code></td><td class=\"k\">acme-pack</td>"
                                   "<td class=\"k\">2</td><td class=\"n\">6</td>"));

  // Deterministic but for when it was made.
  const auto again = audit_cmd({"report", "--db", t.dbs(), "--key", t.key(), "--by", "src,dst", "--format", "html"});
  REQUIRE(again.code == 0);
  CHECK(without_made_at(again.out) == without_made_at(page));
}

TEST_CASE("audit report --format html without a key, by another period, with filters",
          "[tools][audit][report][html]") {
  html_trail t;
  const auto r = audit_cmd({"report", "--db", t.dbs(), "--by", "tenant,month", "--src", "DE", "--format", "html"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  const auto check = check_page(r.out);
  INFO(check.error);
  REQUIRE(check.error.empty());
  CHECK_THAT(r.out, Catch::Contains("Findings are in the encrypted payloads: give <code>--key auditor.key</code>"));
  CHECK_THAT(r.out, Catch::Contains("needs --key"));
  CHECK_THAT(r.out, Catch::Contains("<code>--src DE</code>"));
  CHECK_THAT(r.out, Catch::Contains("Flows by month"));
  CHECK_THAT(r.out, Catch::Contains("<tr><td class=\"k\">2026-03</td>"));
  const auto table = audit_cmd({"report", "--db", t.dbs(), "--by", "tenant,month", "--src", "DE"});
  REQUIRE(table.code == 0);
  const auto tl = out_lines(table.out);
  REQUIRE(tl.size() == 4);  // heading, acme and globex, total
  for (std::size_t i = 1; i < tl.size(); ++i) {
    auto cells = cells_of(tl[i]);
    if (cells[0] == "total") cells.insert(cells.begin() + 1, "");
    INFO(tl[i]);
    CHECK_THAT(r.out, Catch::Contains(html_row(cells, 2)));
  }
  // An empty selection is a page too.
  const auto none = audit_cmd({"report", "--db", t.dbs(), "--since", "2030-01-01", "--format", "html"});
  REQUIRE(none.code == 0);
  CHECK(check_page(none.out).error.empty());
  CHECK_THAT(none.out, Catch::Contains("no flow selected"));
  // Formats other commands do not have, and a report format that does not exist.
  const auto bad = audit_cmd({"report", "--db", t.dbs(), "--format", "xml"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("table, csv, json, jsonl or html"));
  CHECK(audit_cmd({"show", "--db", t.dbs(), "--format", "html"}).code == 2);
  CHECK(audit_cmd({"report", "--db", t.dbs(), "--by", "colour", "--format", "html"}).code == 2);
}

TEST_CASE("audit report --format html: a period too long to read by day is shown by month",
          "[tools][audit][report][html]") {
  trail t;
  std::vector<flow_spec> specs(3);
  const int days[] = {0, 40, 120};  // 2026-01-10, 2026-02-19, 2026-05-10
  for (int i = 0; i < 3; ++i) {
    specs[i].id = "long" + std::to_string(i);
    specs[i].src = "DE";
    specs[i].dst = "US";
    specs[i].action = "allow";
    specs[i].hash = "cafe";
    specs[i].pack_version = "1";
    specs[i].day = days[i];
  }
  write_specs(t, specs, *audit::format::parse_time("2026-01-10"));
  const auto r = audit_cmd({"report", "--db", t.db.string(), "--format", "html"});
  REQUIRE(r.code == 0);
  REQUIRE(check_page(r.out).error.empty());
  CHECK_THAT(r.out, Catch::Contains("The selected flows span more than 92 days: they are shown by month."));
  for (const char* month : {"2026-01", "2026-02", "2026-03", "2026-04", "2026-05"}) {
    INFO(month);
    CHECK_THAT(r.out, Catch::Contains(std::string("<tr><td class=\"k\">") + month + "</td>"));
  }
  CHECK_THAT(r.out, Catch::Contains("<tr><td class=\"k\">2026-03</td><td class=\"n\">0</td>"));
  // By year when --by names it: one year, no note.
  const auto y = audit_cmd({"report", "--db", t.db.string(), "--by", "year", "--format", "html"});
  REQUIRE(y.code == 0);
  CHECK_THAT(y.out, Catch::Contains("Flows by year"));
  CHECK_THAT(y.out, !Catch::Contains("span more than"));
  CHECK_THAT(y.out, Catch::Contains("<tr><td class=\"k\">2026</td><td class=\"n\">3</td>"));
}

TEST_CASE("audit report --format html escapes hostile strings from the trail", "[tools][audit][report][html]") {
  trail t;
  const std::string script = "<script>alert(1)</script>";
  const std::string quotes = "\"'><img src=x onerror=alert(2)>&amp;";
  const std::string broken = std::string("\xFF\xFE<b>\xC0\xAF\xED\xA0\x80") + '\x01' + "\xE2\x80\xAE" "end";
  const std::string breakout = "]]></style></svg></table><!-- -->";
  {
    auto s = audit::store::open_store(t.opts);
    ack_counter acks;
    const std::vector<std::array<std::string, 4>> flows = {
        {script, quotes, broken, breakout}, {quotes, script, breakout, broken}, {broken, breakout, script, quotes}};
    int n = 0;
    for (const auto& f : flows) {
      audit::record o;
      o.kind = audit::record_kind::flow_opened;
      o.flow_id = f[0] + std::to_string(n);
      o.index.src = f[0];
      o.index.dst = f[1];
      o.index.tenant = f[2];
      o.index.route = f[3];
      o.index.action = f[1];
      o.index.rule_set_hash = f[3];
      o.index.rules = {"x"};
      o.index.tokens_in = o.index.tokens_out = 7;
      // JSON holds no bytes that are not UTF-8: the payload's strings are the
      // markup ones.
      o.payload = boost::json::serialize(boost::json::object{
          {"findings", boost::json::array{boost::json::object{{"detector", script}, {"category", quotes}},
                                          boost::json::object{{"detector", breakout}, {"category", "c"}}}},
          {"rule_set", boost::json::object{{"id", script}, {"version", quotes}}}});
      REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
      ++n;
    }
    acks.wait_for(3);
    s->close();
  }
  // The trail's file name is shown too.
  const fs::path hostile_db = t.dir.path / "a<b>&\"c'.db";
  fs::copy_file(t.db, hostile_db);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"report", "--db", hostile_db.string(), "--key", (t.keys / "auditor.key").string(), "--by", "tenant,route",
            "--format", "html"},
           {"report", "--db", hostile_db.string(), "--by", "src,dst,tenant", "--tenant", broken, "--format", "html"}}) {
    const auto r = audit_cmd(args);
    INFO(r.err);
    REQUIRE(r.code == 0);
    const auto& page = r.out;
    const auto check = check_page(page);
    INFO(check.error);
    REQUIRE(check.error.empty());  // UTF-8, no control character, every tag closed
    CHECK_FALSE(check.tags.count("script"));
    CHECK_FALSE(check.tags.count("img"));
    CHECK_FALSE(check.tags.count("b"));
    for (const auto& a : check.attributes) CHECK_FALSE(a.starts_with("on"));
    CHECK_THAT(page, !Catch::Contains("<script"));
    CHECK_THAT(page, !Catch::Contains("<img"));
    CHECK_THAT(page, Catch::Contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    CHECK_THAT(page, Catch::Contains("&quot;&#39;&gt;&lt;img src=x onerror=alert(2)&gt;&amp;amp;"));
    CHECK_THAT(page, Catch::Contains("\xEF\xBF\xBD\xEF\xBF\xBD&lt;b&gt;"));
    CHECK_THAT(page, Catch::Contains("a&lt;b&gt;&amp;&quot;c&#39;.db"));
    CHECK_THAT(page, !Catch::Contains("\xE2\x80\xAE"));
  }
}

TEST_CASE("audit report --format html says verification failed for a tampered trail, and exits 1",
          "[tools][audit][report][html]") {
  trail t;
  t.write_flows(0, 10);
  flip_blob_byte(t.db, 9, "payload", 40);
  const auto r = audit_cmd({"report", "--db", t.db.string(), "--format", "html"});
  INFO(r.err);
  CHECK(r.code == 1);
  const auto check = check_page(r.out);
  INFO(check.error);
  REQUIRE(check.error.empty());
  CHECK_THAT(r.out, Catch::Contains("<section id=\"verification\" class=\"verification failed\">"));
  CHECK_THAT(r.out, Catch::Contains("Verification failed"));
  CHECK_THAT(r.out, !Catch::Contains("Verification passed"));
  CHECK_THAT(r.out, Catch::Contains("First failure: record 9: altered: payload does not match its hash"));
  CHECK_THAT(r.out, Catch::Contains("Records 1 to 8 verified before it."));
  // The numbers are still there: what the trail holds now.
  CHECK_THAT(r.out, Catch::Contains("<table id=\"totals-table\">"));
  // A record removed from the middle of the trail.
  trail cut;
  cut.write_flows(0, 10);
  tamper_db(cut.db).exec("DELETE FROM records WHERE seq = 5");
  const auto missing = audit_cmd({"report", "--db", cut.db.string(), "--format", "html"});
  CHECK(missing.code == 1);
  CHECK_THAT(missing.out, Catch::Contains("First failure: record 5: missing"));
}

TEST_CASE("render_html_report: many pairs, and a verification that could not be completed",
          "[tools][audit][report][html]") {
  customs::tools::html_report rep;
  rep.trail = "audit.db";
  rep.made_at = "2026-12-01T00:00:00Z";
  rep.generator = "customsctl test";
  rep.period = "day";
  rep.verification_error = "audit.db: a value over 32 MiB after record 41";
  for (int i = 0; i < 30; ++i) {
    customs::audit::reader::group_totals g;
    g.key = {"S" + std::to_string(i), "D"};
    g.flows = g.allowed = static_cast<std::uint64_t>(100 - i);
    rep.pairs.push_back(g);
    rep.totals.flows += g.flows;
    rep.totals.allowed += g.allowed;
  }
  const auto page = customs::tools::render_html_report(rep);
  const auto check = check_page(page);
  INFO(check.error);
  REQUIRE(check.error.empty());
  CHECK_THAT(page, Catch::Contains("Verification failed"));
  CHECK_THAT(page, Catch::Contains("The check could not be completed: audit.db: a value over 32 MiB after record 41"));
  CHECK_THAT(page, Catch::Contains("<title>Customs audit report: audit.db (verification failed)</title>"));
  // The chart: the 24 largest pairs and the other 6 together; the table: all 30.
  CHECK_THAT(page, Catch::Contains(">(6 more pairs)</text>"));
  CHECK_THAT(page, Catch::Contains("The chart shows the 24 largest pairs"));
  for (int i = 0; i < 30; ++i) {
    INFO(i);
    CHECK_THAT(page, Catch::Contains("<tr><td class=\"k\">S" + std::to_string(i) + "</td><td class=\"k\">D</td><td class=\"n\">" +
                                     std::to_string(100 - i) + "</td>"));
  }
  // (6 more pairs): 76 + 75 + ... + 71 = 441.
  CHECK_THAT(page, Catch::Contains(">441</text>"));
}

// Not run with the suite: writes a larger trail for looking at the page
// (tools/scripts/report-screenshot.sh --demo). CUSTOMS_REPORT_DEMO_DIR names a
// folder that receives audit.db and keys/.
TEST_CASE("audit report --format html: a demo trail", "[.report-demo]") {
  const char* out = std::getenv("CUSTOMS_REPORT_DEMO_DIR");
  REQUIRE(out != nullptr);
  trail t;
  t.opts.epoch_records = 500;
  std::vector<flow_spec> specs;
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"DE", "US"}, {"CN", "US"}, {"FR", "US"}, {"DE", "FR"}, {"CN", "SG"}, {"JP", "US"}, {"BR", "US"},
      {"IN", "US"}, {"DE", "IE"}, {"CN", "DE"}};
  const std::vector<std::pair<std::string, std::string>> detectors = {
      {"cn.mobile", "pi.phone"}, {"card.pan", "pi.card"}, {"email", "pi.email"}, {"de.iban", "fin.iban"},
      {"cn.resident_id", "pi.national_id"}, {"us.ssn", "pi.national_id"}, {"secret.aws_key", "secret.credential"}};
  std::uint64_t x = 88172645463325252ULL;  // xorshift: the same trail each time
  const auto rnd = [&](std::uint64_t n) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x % n;
  };
  for (int i = 0; i < 900; ++i) {
    flow_spec f;
    char id[32];
    std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(rnd(~0ULL)));
    f.id = id;
    const auto p = std::min(rnd(10), rnd(10));  // the first pairs the busiest
    f.src = pairs[p].first;
    f.dst = pairs[p].second;
    f.tenant = rnd(3) == 0 ? "globex" : "acme";
    const auto v = rnd(100);
    const bool strict = f.src == "CN" && f.dst != "DE";
    f.action = v < (strict ? 40 : 62) ? "allow" : v < 72 ? "tag" : v < 84 ? "redact" : v < (strict ? 96 : 93) ? "block"
               : v < 96 ? "unscannable" : v < 98 ? "refused" : "error";
    if (f.action != "allow") f.rules = {"pii.card"};
    f.day = static_cast<int>(rnd(12));
    if (f.day >= 5) f.day += 2;  // a weekend without traffic
    f.hash = f.day < 9 ? "3f9a1c07d2e4b8a65c0e917d2b4f6a83e5c17d09b2a4f6e8c1d3b5a7f9e2c4d6"
                       : "b71e0c4d9a2f5e8b3c6d1a7f4e0b9c2d5a8f1e4b7c0d3a6f9e2b5c8d1a4f7e0b";
    f.pack_version = f.day < 9 ? "2026.2" : "2026.3";
    const auto nf = rnd(4);
    for (std::uint64_t k = 0; k < nf; ++k) f.request_findings.push_back(detectors[std::min(rnd(7), rnd(7))]);
    if (rnd(4) == 0) f.response_findings.push_back(detectors[rnd(3)]);
    const bool unknown = rnd(10) == 0 || f.action == "refused" || f.action == "error";
    f.tokens_in = unknown ? audit::tokens_unknown : 200 + rnd(3000);
    f.tokens_out = unknown ? audit::tokens_unknown : 50 + rnd(1500);
    if (rnd(50) == 0) {
      f.kind = flow_spec::shape::edge;
      f.action = "uninspected";
      f.request_findings.clear();
      f.response_findings.clear();
    }
    specs.push_back(std::move(f));
  }
  // Written in time order, as customsd would have.
  std::stable_sort(specs.begin(), specs.end(), [](const flow_spec& a, const flow_spec& b) { return a.day < b.day; });
  write_specs(t, specs, *audit::format::parse_time("2026-11-02"));
  const fs::path dir(out);
  fs::create_directories(dir / "keys");
  fs::copy_file(t.db, dir / "audit.db", fs::copy_options::overwrite_existing);
  for (const char* k : {"auditor.key", "auditor.pub", "sealing.seed", "signing.pub"})
    fs::copy_file(t.keys / k, dir / "keys" / k, fs::copy_options::overwrite_existing);
}
