#pragma once
// Request bodies and the upstream URL the relay, filter and drain tests share.
#include "tests/support/fake_provider.hpp"

#include <string>

namespace customs::testing {

inline const std::string chat_stream = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";
inline const std::string chat_whole = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";

// The fake provider's base URL, with an optional path prefix.
inline std::string url(const fake_provider& p, const std::string& base = {}) {
  return "http://127.0.0.1:" + std::to_string(p.port()) + base;
}

}  // namespace customs::testing
