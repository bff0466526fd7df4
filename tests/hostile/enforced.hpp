#pragma once
// An enforcing customsd (shipped rules, a real audit trail with keys made for
// the test) as a child process, and a look at its whole trail.
#include "enforce_harness.hpp"
#include "hostile.hpp"
#include "tests/support/test_certs.hpp"

#include <map>

namespace customs::testing::hostile {

// Every client CN by default; /openai-us/, /anthropic-us/ and /gemini-us/
// route to the provider (US) in their dialects.
// `extra_pack`: a rule file loaded with the shipped packs.
inline std::string enforcing_yaml(const enforce::trail_files& t, std::uint16_t provider, const std::string& extra = {},
                                  const fs::path& extra_pack = {}) {
  const std::string up = "http://127.0.0.1:" + std::to_string(provider);
  return "version: 1\n"
         "listeners:\n"
         "  - {name: edge, address: 127.0.0.1, port: 0, default_source: {jurisdiction: CN, tenant: demo}}\n"
         "admin: {address: 127.0.0.1, port: 0}\n"
         "routes:\n"
         "  - {prefix: /openai-us/, upstream: '" + up + "', dialect: openai, jurisdiction: US}\n"
         "  - {prefix: /anthropic-us/, upstream: '" + up + "', dialect: anthropic, jurisdiction: US}\n"
         "  - {prefix: /gemini-us/, upstream: '" + up + "', dialect: gemini, jurisdiction: US}\n"
         "threads: 2\n"
         "log: {level: info, flows: false}\n"
         "rules: ['" + enforce::shipped_rules().string() + "'" +
         (extra_pack.empty() ? std::string() : ", '" + extra_pack.string() + "'") + "]\n"
         "audit:\n"
         "  path: '" + t.db.string() + "'\n"
         "  auditor_keys: ['" + (t.keys / "auditor.pub").string() + "']\n"
         "  sealing_key: '" + (t.keys / "sealing.key").string() + "'\n"
         "  signing_key: '" + (t.keys / "signing.key").string() + "'\n"
         "  content: findings\n" + extra;
}

inline const std::string& resident_id_prompt() {
  static const std::string s = "身份证号：11010519491231002X";
  return s;
}

// The kinds of record of each flow in the trail (read without waiting).
inline std::map<std::string, std::vector<audit::record_kind>> trail_flows(const enforce::trail_files& t) {
  std::map<std::string, std::vector<audit::record_kind>> out;
  audit::reader r(t.db);
  r.for_each(audit::record_filter{}, [&](const audit::read_record& rec) {
    if (!rec.flow_id.empty()) out[rec.flow_id].push_back(rec.kind);
    return true;
  });
  return out;
}

}  // namespace customs::testing::hostile
