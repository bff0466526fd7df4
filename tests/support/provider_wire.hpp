#pragma once
// The fake provider's replies, as bytes, per API (internal to tests/support).
// plan_reply turns one request and the current script into what the provider
// will send; fake_provider.cpp only moves those bytes (and applies faults).

#include "tests/support/fake_provider.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace customs::testing::detail {

// Which family's error shape a reply uses:
//   openai:    {"error":{"message":M,"type":T,"param":null,"code":null}}
//   anthropic: {"type":"error","error":{"type":T,"message":M}}
//   gemini:    {"error":{"code":STATUS,"message":M,"status":S}}
enum class error_shape { openai, anthropic, gemini };

[[nodiscard]] std::string error_body(error_shape shape, unsigned status, std::string_view message);

// One SSE event exactly as it goes on the wire (lines and terminating blank
// line included). stamp_at is the offset of the '{' that opens the event's JSON
// data, where "customs_sent_ns" is inserted when the script asks for stamps;
// npos when the event is not stamped.
struct wire_event {
  std::string bytes;
  std::size_t stamp_at = std::string::npos;
};

struct planned_reply {
  unsigned status = 200;
  std::string content_type;
  bool streamed = false;
  std::string body;                 // when !streamed
  std::vector<wire_event> events;   // when streamed
  std::string malformed_event;      // what fault::malformed_sse inserts (streamed)
};

struct request_view {
  std::string_view method;
  std::string_view target;
  std::string_view body;
};

// Never throws on any request (bad JSON, wrong types: a 400 in the dialect's
// shape). `serial` makes ids unique per provider instance.
[[nodiscard]] planned_reply plan_reply(const request_view& request, const script& s,
                                       std::uint64_t serial);

// The event with "customs_sent_ns":<now> inserted, or the bytes unchanged.
[[nodiscard]] std::string stamped(const wire_event& e, std::uint64_t monotonic_ns);

}  // namespace customs::testing::detail
