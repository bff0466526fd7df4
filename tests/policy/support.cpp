#include "support.hpp"

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

}  // namespace customs::policy::testing
