// libFuzzer target: the decoders of the audit trail's stored values
// (audit/format.hpp): epoch_start and erasure payloads as the verifier and
// reader read them from a database anyone may have edited, the checkpoint text
// an auditor keeps, stored time strings, and the rules index column.
//
// Input: byte 0 picks the decoder, the rest is its input.
//
// Properties: never crashes; a payload that decodes encodes back to the same
// bytes (one encoding per value: nothing stored is ignored by the decoder); a
// checkpoint text that parses is rejected or accepted only with
// std::runtime_error, prints to a text that parses to the same checkpoint, and
// its numbers are the numbers written; a parsed time prints and parses back to
// itself; split_rules and join_rules are inverse.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "audit/format.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

namespace format = customs::audit::format;
using customs::fuzz::check;

customs::crypto::byte_view bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

bool same_bytes(const customs::crypto::bytes& a, std::string_view b) {
  return std::string_view(reinterpret_cast<const char*>(a.data()), a.size()) == b;
}

bool operator_eq(const format::checkpoint& a, const format::checkpoint& b) {
  return a.seq == b.seq && a.epoch == b.epoch && a.time_us == b.time_us && a.head == b.head && a.sig == b.sig &&
         a.signer == b.signer;
}

// The value written on the last line "name: value" of a checkpoint text, read
// the way the format describes it (leading spaces dropped, "\r\n" allowed),
// without its leading zeros.
std::string written_number(std::string_view text, std::string_view name) {
  std::string found;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || line.substr(0, colon) != name) continue;
    auto v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (v.size() > 1 && v.front() == '0') v.remove_prefix(1);
    found = std::string(v);
  }
  return found;
}

void checkpoint_text(std::string_view text) {
  format::checkpoint c;
  try {
    c = format::checkpoint_from_text(text);
  } catch (const std::runtime_error&) {
    return;
  }
  const std::string printed = format::checkpoint_to_text(c);
  format::checkpoint again;
  try {
    again = format::checkpoint_from_text(printed);
  } catch (const std::runtime_error&) {
    customs::fuzz::fail("a printed checkpoint does not parse");
  }
  check(operator_eq(c, again), "a printed checkpoint parses to another checkpoint");
  check(written_number(text, "seq") == std::to_string(c.seq), "a checkpoint's seq is not the number written");
  check(written_number(text, "epoch") == std::to_string(c.epoch), "a checkpoint's epoch is not the number written");
  check(written_number(text, "time_us") == std::to_string(static_cast<std::uint64_t>(c.time_us)),
        "a checkpoint's time_us is not the number written");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  const std::uint8_t pick = in.byte() % 5;
  const std::string_view rest = in.rest();
  switch (pick) {
    case 0:
      if (auto b = format::decode_epoch_start(bytes_of(rest))) {
        check(same_bytes(format::encode_epoch_start(*b), rest), "an epoch_start payload re-encodes differently");
      }
      break;
    case 1:
      if (auto b = format::decode_erasure(bytes_of(rest))) {
        check(same_bytes(format::encode_erasure(*b), rest), "an erasure payload re-encodes differently");
      }
      break;
    case 2:
      checkpoint_text(rest);
      break;
    case 3:
      if (auto t = format::parse_time(rest)) {
        check(format::parse_time(format::format_time(*t)) == t, "a parsed time does not print back to itself");
      }
      break;
    case 4:
      check(format::join_rules(format::split_rules(rest)) == rest, "split_rules and join_rules disagree");
      break;
  }
  return 0;
}
