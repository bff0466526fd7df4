#include "daemon/enforce/logprobs.hpp"

namespace customs::daemon::enforce {
namespace {

// The codecs' JSON parser bounds nesting depth; this bound only guards against
// a document built some other way.
constexpr int max_depth = 256;

bool strip(boost::json::value& v, int depth) noexcept {
  if (depth > max_depth) return false;
  bool changed = false;
  if (auto* o = v.if_object()) {
    for (auto& kv : *o) {
      const auto key = kv.key();
      auto& x = kv.value();
      if (key == "logprobs") {
        if (x.is_object()) {
          x = nullptr;
          changed = true;
          continue;
        }
        if (x.is_array() && !x.get_array().empty()) {
          x.get_array().clear();
          changed = true;
          continue;
        }
      } else if (key == "logprobsResult" && x.is_object() && !x.get_object().empty()) {
        x.get_object().clear();
        changed = true;
        continue;
      }
      if (x.is_structured()) changed = strip(x, depth + 1) || changed;
    }
  } else if (auto* a = v.if_array()) {
    for (auto& x : *a) {
      if (x.is_structured()) changed = strip(x, depth + 1) || changed;
    }
  }
  return changed;
}

}  // namespace

bool strip_logprobs(boost::json::value& v) noexcept { return strip(v, 0); }

}  // namespace customs::daemon::enforce
