#pragma once
// Token metering: what customsd does so that every flow's token usage is known
// (or known to be unknown), and the bounded label values of the token metrics.
//
// OpenAI chat completions report usage in a stream only when the client asked
// for it (stream_options.include_usage). When it did not, customsd asks on its
// behalf (request_stream_usage) and takes back what the answer then carries
// extra, so that the client receives the stream it would have received:
//   - every chunk's top-level "usage" member ("usage": null on content chunks)
//     is removed (without_member keeps every other byte as the provider sent it);
//   - the closing usage chunk ({"choices": [], "usage": {...}}) is dropped.
// The stream guard does both (stream_guard_options::strip_usage).
//
// A flow whose provider reported no usage is recorded as unknown: the audit
// payload's "usage" object lacks the field, the audit index stores the
// "unknown" sentinel (see audit/audit.hpp, tokens_unknown) and the metrics count
// the flow in customs_usage_unknown_flows_total, never as 0 tokens.

#include "daemon/dialect/request.hpp"

#include <cstddef>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_set>

namespace customs::daemon::enforce {

// Makes an OpenAI chat completion request ask for usage in its stream: sets
// stream_options.include_usage to true in `body` (the request as it will be
// forwarded; extraction.document describes it). When the body has no
// stream_options at all the member is inserted as the first member, leaving
// every other byte unchanged; otherwise the document is changed and
// re-serialised. Returns false (body unchanged) when the body is not a JSON
// object.
[[nodiscard]] bool request_stream_usage(request_extraction& extraction, std::string& body);

// `object_text` (a JSON object, already validated) without its top-level member
// `key`: the member, its value and one separating comma are removed, every other
// byte is kept. nullopt when the object has no such member.
[[nodiscard]] std::optional<std::string> without_member(std::string_view object_text, std::string_view key);

// Label values of a metric that come from traffic (models, tenants): the first
// `limit` distinct values keep their own series, every later one folds into
// "other", so the number of series stays bounded whatever clients send. A value
// that is not a plain name (1 to 64 of [A-Za-z0-9._:/@+-]) folds into "other"
// too. Thread-safe; values once admitted stay admitted (also when the limit is
// lowered at a reload).
class label_bound {
 public:
  explicit label_bound(std::size_t limit) : limit_(limit) {}
  void set_limit(std::size_t limit);
  // v itself or "other"; "" stays "" (no value). The view stays valid while
  // this object lives.
  [[nodiscard]] std::string_view admit(std::string_view v);
  [[nodiscard]] std::size_t size() const;

  static constexpr std::string_view other = "other";

 private:
  mutable std::shared_mutex mutex_;
  std::size_t limit_;
  std::unordered_set<std::string> admitted_;
};

}  // namespace customs::daemon::enforce
