// fake_provider: the scripted fake LLM provider as a program, for the offline
// demo and the proxy benchmark (see fake_provider.hpp for what it answers).
//
//   fake_provider [--address A] [--port N] [--tls-cert F --tls-key F] [--text T]
//                 [--delta-bytes N] [--event-interval-ms N] [--stamp]
//
// Prints exactly one line, `listening on ADDRESS:PORT`, to stdout once bound,
// then serves until SIGTERM or SIGINT and exits 0. Usage errors exit 2.
//
// --stamp: every streamed event that carries a delta (and every OpenAI
// chat.completion.chunk) gets a first JSON member "customs_sent_ns": the
// provider's CLOCK_MONOTONIC time in nanoseconds when the event was written, so
// a client on the same host can compute each event's latency through a proxy.

#include "tests/support/fake_provider.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

namespace {

int usage(const char* message) {
  std::cerr << "fake_provider: " << message << "\n"
            << "usage: fake_provider [--address A] [--port N] [--tls-cert F --tls-key F] [--text T]\n"
            << "                     [--delta-bytes N] [--event-interval-ms N] [--stamp]\n";
  return 2;
}

bool parse_number(const char* s, unsigned long max, unsigned long& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtoul(s, &end, 10);
  return errno == 0 && end != s && *end == '\0' && out <= max && s[0] != '-';
}

}  // namespace

int main(int argc, char** argv) {
  customs::testing::fake_provider_options opts;
  opts.max_recorded_requests = 0;  // a long-running server keeps no request log
  customs::testing::script s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    unsigned long n = 0;
    if (arg == "--stamp") {
      s.stamp_send_time = true;
    } else if (arg == "--address" || arg == "--tls-cert" || arg == "--tls-key" || arg == "--text") {
      const char* v = value();
      if (!v) return usage("missing value after an option");
      if (arg == "--address") opts.address = v;
      else if (arg == "--tls-cert") opts.tls_cert = v;
      else if (arg == "--tls-key") opts.tls_key = v;
      else s.text = v;
    } else if (arg == "--port") {
      const char* v = value();
      if (!v || !parse_number(v, 65535, n)) return usage("--port needs a number from 0 to 65535");
      opts.port = static_cast<std::uint16_t>(n);
    } else if (arg == "--delta-bytes") {
      const char* v = value();
      if (!v || !parse_number(v, 1 << 20, n) || n == 0) return usage("--delta-bytes needs a positive number");
      s.delta_bytes = n;
    } else if (arg == "--event-interval-ms") {
      const char* v = value();
      if (!v || !parse_number(v, 3'600'000, n)) return usage("--event-interval-ms needs a number of milliseconds");
      s.event_interval = std::chrono::milliseconds(n);
    } else {
      return usage(("unknown argument " + std::string(arg)).c_str());
    }
  }
  if (opts.tls_cert.has_value() != opts.tls_key.has_value())
    return usage("--tls-cert and --tls-key go together");

  // Block the stop signals in every thread (the provider's thread inherits the
  // mask) and take them synchronously here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    customs::testing::fake_provider provider(opts);
    provider.set_script(s);
    std::cout << "listening on " << opts.address << ":" << provider.port() << std::endl;
    int received = 0;
    sigwait(&stop_signals, &received);
  } catch (const std::exception& e) {
    std::cerr << "fake_provider: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
