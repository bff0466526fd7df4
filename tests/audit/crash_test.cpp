// Crash safety: a child process writing under load is killed with SIGKILL at
// random moments; each time the database verifies and holds every record whose
// durability was acknowledged to the child.
#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <sstream>

#include "audit_test_support.hpp"

extern char** environ;

using namespace customs::audit;
using namespace customs::audit::testing;

namespace {

struct child_run {
  std::string output;  // everything the child wrote before it died
  int status = 0;
  bool stuck = false;  // killed because no acknowledgement came within ack_wait_limit
};

// When run_and_kill sends SIGKILL: `after` from the start, or (when acks > 0)
// once the child has acknowledged `acks` records, plus `after`.
struct kill_moment {
  std::chrono::milliseconds after{0};
  std::uint64_t acks = 0;
};

// Waiting for acknowledgements is bounded by this, however slow the machine:
// a child that acknowledges nothing for so long is stuck, not slow.
constexpr auto ack_wait_limit = std::chrono::seconds(60);

// Starts the writer, kills it with SIGKILL at `when` and collects what it
// acknowledged.
child_run run_and_kill(const fs::path& db, const fs::path& keys, kill_moment when) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  std::string exe = CUSTOMS_AUDIT_CRASH_WRITER;
  std::string a1 = db.string(), a2 = keys.string(), a3 = "40";
  char* argv[] = {exe.data(), a1.data(), a2.data(), a3.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  REQUIRE(rc == 0);

  child_run out;
  char buf[65536];
  using clk = std::chrono::steady_clock;
  const auto started = clk::now();
  // Unknown until the acknowledgements arrive when the moment counts them.
  std::optional<clk::time_point> deadline;
  if (when.acks == 0) deadline = started + when.after;
  std::uint64_t lines = 0;
  bool killed = false;
  for (;;) {
    const auto now = clk::now();
    if (!killed && !deadline && now - started >= ack_wait_limit) {
      ::kill(pid, SIGKILL);
      killed = true;
      out.stuck = true;
    }
    if (!killed && deadline && now >= *deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{fds[0], POLLIN, 0};
    int timeout = 1000;
    if (!killed && deadline) {
      timeout = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now).count()) + 1;
    }
    const int n = ::poll(&p, 1, timeout);
    if (n < 0) continue;
    if (n == 0) continue;
    const ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got <= 0) break;  // EOF: the child is gone
    out.output.append(buf, static_cast<std::size_t>(got));
    if (!deadline) {
      lines += static_cast<std::uint64_t>(std::count(buf, buf + got, '\n'));
      if (lines >= when.acks) deadline = clk::now() + when.after;
    }
  }
  ::close(fds[0]);
  if (!killed) ::kill(pid, SIGKILL);
  REQUIRE(::waitpid(pid, &out.status, 0) == pid);
  return out;
}

}  // namespace

TEST_CASE("SIGKILL at random moments loses no acknowledged record and leaves a valid trail",
          "[audit][crash]") {
  trail t;
  std::random_device rd;
  const auto seed = rd();
  INFO("random seed " << seed);
  std::mt19937 rng(seed);
  // Even rounds kill at a random time from the start, so that some kills land
  // in open (recovery, key evolution); odd rounds kill a random time after a
  // random number of acknowledgements, in steady writing and epoch ends (an
  // epoch is 40 records). Counting acknowledgements rather than time makes the
  // amount of work between kills independent of the machine's speed.
  std::uniform_int_distribution<int> ms(5, 120);
  std::uniform_int_distribution<int> after_ms(0, 20);
  std::uniform_int_distribution<std::uint64_t> acks(84, 200);
  std::map<std::uint64_t, std::string> acked;  // over all runs
  std::uint64_t killed_with_acks = 0;
  for (int round = 0; round < 24; ++round) {
    INFO("round " << round);
    kill_moment when;
    if (round % 2 == 0) {
      when.after = std::chrono::milliseconds(ms(rng));
    } else {
      when.acks = acks(rng);
      when.after = std::chrono::milliseconds(after_ms(rng));
    }
    const auto run = run_and_kill(t.db, t.keys, when);
    REQUIRE_FALSE(run.stuck);
    REQUIRE(WIFSIGNALED(run.status));
    REQUIRE(WTERMSIG(run.status) == SIGKILL);
    std::istringstream lines(run.output);
    std::uint64_t seq;
    std::string flow;
    std::uint64_t n = 0;
    while (lines >> seq >> flow) {
      acked[seq] = flow;
      ++n;
    }
    if (when.acks > 0) REQUIRE(n >= when.acks);
    if (n) ++killed_with_acks;
    if (acked.empty() && (!fs::exists(t.db) || sql::database(t.db, SQLITE_OPEN_READONLY)
                                                      .query_int("PRAGMA application_id") == 0))
      continue;  // killed before the schema's first commit: no trail exists yet

    const auto sum = t.verify();
    INFO((sum.failures.empty() ? "" : std::string(to_string(sum.failures[0].kind)) + " at " +
                                            std::to_string(sum.failures[0].seq) + ": " +
                                            sum.failures[0].detail));
    REQUIRE(sum.ok());
    std::map<std::uint64_t, std::string> present;
    reader(t.db).for_each({}, [&](const read_record& rec) {
      present[rec.seq] = rec.flow_id;
      return true;
    });
    for (const auto& [s, f] : acked) {
      INFO("acknowledged seq " << s);
      REQUIRE(present.count(s) == 1);
      REQUIRE(present.at(s) == f);
    }
  }
  // The test means something only if the writer got work done between kills:
  // the odd rounds guarantee it (12 rounds of at least 84 acknowledgements).
  CHECK(killed_with_acks >= 12);
  CHECK(acked.size() >= 1000);
}
