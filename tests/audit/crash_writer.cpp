// A writer under load for the crash test: appends records as fast as the store
// takes them and reports each durable acknowledgement on stdout as
// "<seq> <flow_id>\n" (one write(2) per line, atomic on a pipe). The test kills
// it with SIGKILL at random moments.
// usage: audit_crash_writer DB KEYDIR EPOCH_RECORDS
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "audit/store.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: audit_crash_writer DB KEYDIR EPOCH_RECORDS\n";
    return 2;
  }
  using namespace customs::audit;
  const std::filesystem::path keys = argv[2];
  writer_options opts;
  opts.db = argv[1];
  opts.auditor_keys = {keys / "auditor.pub"};
  opts.sealing_key = keys / "sealing.key";
  opts.signing_key = keys / "signing.key";
  opts.epoch_records = std::strtoull(argv[3], nullptr, 10);
  opts.commit_records = 64;
  opts.commit_interval = std::chrono::milliseconds(1);
  opts.queue_capacity = 1024;
  std::unique_ptr<store> s;
  try {
    s = store::open_store(opts);
  } catch (const std::exception& e) {
    std::cerr << "audit_crash_writer: " << e.what() << "\n";
    return 1;
  }
  const std::string prefix = "p" + std::to_string(::getpid()) + "-";
  for (std::uint64_t n = 0;; ++n) {
    record r;
    r.kind = n % 2 ? record_kind::flow_closed : record_kind::flow_opened;
    r.flow_id = prefix + std::to_string(n / 2);
    r.index.action = "allow";
    r.payload = "{\"request_texts\":[\"" + std::string(200, 'a') + "\"]}";
    const std::string flow = r.flow_id;
    for (;;) {
      const auto ec = s->append(r, [flow](std::error_code ec, std::uint64_t seq) {
        if (ec) return;
        const std::string line = std::to_string(seq) + " " + flow + "\n";
        if (::write(1, line.data(), line.size()) < 0) std::_Exit(3);
      });
      if (!ec) break;
      if (ec != make_error_code(errc::queue_full)) {
        std::cerr << "audit_crash_writer: " << ec.message() << "\n";
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}
