// The policy engine behind `customsctl audit replay`.
#include "tools/replay_engine.hpp"

#include <algorithm>
#include <chrono>
#include <set>
#include <stdexcept>

#include "policy/parts.hpp"
#include "policy/policy.hpp"

namespace customs::tools {

replay_engine make_replay_evaluator(const std::vector<std::filesystem::path>& rules) {
  auto loaded = policy::load_rule_set(rules);
  if (!loaded.ok()) {
    std::string msg = "the rule set does not load:";
    for (const auto& d : loaded.diagnostics)
      if (d.level == policy::diagnostic::severity::error) msg += "\n" + d.to_string();
    throw std::runtime_error(msg);
  }
  const policy::rule_set_ptr rs = loaded.rules;
  replay_engine e;
  e.description = rs->id() + " " + rs->version() + " (hash " + rs->hash() + ")";
  // A flow is judged as customsd judges it: the request texts together (one part
  // each, and joined), then, if the flow had a response, the response texts; the flow's
  // action is the more severe of the two, its rules the union. Exceptions are
  // judged against the flow's recorded time.
  e.evaluate = [rs](const audit::replay_input& in) {
    policy::flow_context ctx;
    ctx.src = in.src;
    ctx.dst = in.dst;
    ctx.tenant = in.tenant;
    ctx.route = in.route;
    ctx.now = std::chrono::system_clock::time_point(std::chrono::microseconds(in.time_us));
    policy::action act = policy::action::allow;
    std::set<std::string> fired;
    const auto judge = [&](policy::direction dir, const std::vector<std::string>& texts) {
      ctx.dir = dir;
      // Requests: each text alone and the texts joined (policy/parts.hpp),
      // those customsd recorded as apart joined only with each other;
      // responses: each text alone, as customsd scans them.
      const std::vector<std::string_view> views(texts.begin(), texts.end());
      policy::parts_options o;
      o.join = dir == policy::direction::request;
      if (o.join && !in.request_apart.empty()) {
        o.join_group.assign(texts.size(), 0);
        for (const std::size_t i : in.request_apart)
          if (i < texts.size()) o.join_group[i] = 1;
      }
      auto scanned = policy::scan_parts(rs, ctx, views, o);
      const auto v = rs->decide(ctx, std::move(scanned.findings));
      act = std::max(act, v.act);
      fired.insert(v.rules.begin(), v.rules.end());
    };
    judge(policy::direction::request, in.request_texts);
    if (!in.response_texts.empty()) judge(policy::direction::response, in.response_texts);
    return audit::replay_outcome{std::string(policy::to_string(act)),
                                 std::vector<std::string>(fired.begin(), fired.end())};
  };
  return e;
}

}  // namespace customs::tools
