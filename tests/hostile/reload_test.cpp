// Reload races: what POST /reload reports when only a rule file changed, and
// reload storms while flows are in flight (every answer still decided by a
// complete rule set, nothing uninspected forwarded, the trail verifies).
#include "enforced.hpp"

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {

// The test response pack with its version and tag set to `n`: the same rules,
// another rule set hash.
std::string pack_version(int n) {
  std::string s = slurp(enforce::test_rules("responses.yaml"));
  const auto v = s.find("version: \"1\"");
  REQUIRE(v != std::string::npos);
  s.replace(v, 12, "version: \"" + std::to_string(n) + "\"");
  const auto t = s.find("tags: [test.phone]");
  REQUIRE(t != std::string::npos);
  s.replace(t, 18, "tags: [test.phone.v" + std::to_string(n) + "]");
  return s;
}

std::string rules_hash(std::uint16_t admin) {
  http_client c(admin);
  const auto r = c.request("GET", "/rules");
  REQUIRE(r.status == 200);
  return std::string(enforce::json::parse(r.body).at("hash").as_string());
}

}  // namespace

TEST_CASE("reload: POST /reload after a rule file changed reports the new rule set, not 'no changes'") {
  temp_dir dir;
  enforce::trail_files t(dir.path());
  fake_provider provider;
  const auto pack = write_file(dir.path() / "extra.yaml", pack_version(1));
  const auto file = write_file(dir.path() / "customsd.yaml", enforcing_yaml(t, provider.port(), {}, pack));
  customsd_process p(file);
  const std::string before = rules_hash(p.admin_port());
  {
    http_client admin(p.admin_port());
    const auto r = admin.request("POST", "/reload");
    CHECK(r.status == 200);
    CHECK(r.body == "no changes\n");
  }
  write_file(pack, pack_version(2));
  http_client admin(p.admin_port());
  const auto r = admin.request("POST", "/reload");
  INFO(r.body);
  CHECK(r.status == 200);
  const std::string after = rules_hash(p.admin_port());
  REQUIRE(after != before);
  CHECK(r.body.find("rules: ") != std::string::npos);
  CHECK(r.body.find(before.substr(0, 12) + " => ") != std::string::npos);
  CHECK(r.body.find(after.substr(0, 12)) != std::string::npos);
  // The same change reported by SIGHUP's log line.
  write_file(pack, pack_version(3));
  p.signal(SIGHUP);
  const auto line = p.wait_for_log("event=reload_change", std::chrono::seconds(10));
  CHECK(line.find("rules: ") != std::string::npos);
}

TEST_CASE("reload: a storm of reloads while flows are in flight: every answer decided, nothing uninspected forwarded") {
  temp_dir dir;
  enforce::trail_files t(dir.path());
  fake_provider provider;
  const auto pack = write_file(dir.path() / "extra.yaml", pack_version(1));
  const auto file = write_file(dir.path() / "customsd.yaml", enforcing_yaml(t, provider.port(), {}, pack));
  customsd_process p(file);
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<unsigned> wrong;
  std::size_t answered = 0;
  std::vector<std::thread> load;
  for (int i = 0; i < 2; ++i) {
    load.emplace_back([&, i] {
      for (int n = 0; !stop; ++n) {
        const bool id = (n + i) % 2 == 0;
        unsigned status = 0;
        try {
          status = enforce::post(p.port(), "/openai-us/v1/chat/completions",
                                 enforce::chat_body(id ? resident_id_prompt() : "hello", n % 3 == 0)).status;
        } catch (const std::exception&) {
        }
        std::lock_guard lock(mutex);
        ++answered;
        if (status != (id ? 451u : 200u)) wrong.push_back(status);
      }
    });
  }
  // The load stops and is joined however the storm ends: a failed check or
  // request below must not leave joinable threads behind (std::terminate).
  struct stopper {
    std::atomic<bool>& stop;
    std::vector<std::thread>& load;
    ~stopper() { join(); }
    void join() {
      stop = true;
      for (auto& th : load)
        if (th.joinable()) th.join();
    }
  } stopper{stop, load};
  unsigned ok = 0;
  for (int i = 0; i < 20; ++i) {
    write_file(pack, pack_version(i % 2 == 0 ? 2 : 1));
    // A reload compiles the whole rule set while the load runs: seconds under
    // the sanitizers, so the admin client waits longer than its default.
    http_client admin(p.admin_port(), std::chrono::seconds(120));
    if (admin.request("POST", "/reload").status == 200) ++ok;
  }
  stopper.join();
  CHECK(ok == 20);
  CHECK(wrong.empty());
  CHECK(answered > 10);
  for (const auto& r : provider.requests()) CHECK(r.body.find("11010519491231002X") == std::string::npos);
  CHECK(metric(scrape(p.admin_port()), R"(customs_reloads_total{result="ok"})") == 20);
  p.signal(SIGTERM);
  CHECK(p.wait_exit(std::chrono::seconds(10)) == 0);
  const auto flows = trail_flows(t);
  CHECK(flows.size() == answered);
  for (const auto& [id, kinds] : flows) CHECK(kinds.size() == 2);
  CHECK(enforce::verify_trail(t).ok());
}
