#pragma once
// Token log-probabilities repeat the generated tokens outside the text slots of
// a response (OpenAI choices[].logprobs.content[].token / bytes, Responses
// output_text logprobs, Gemini candidates[].logprobsResult), so a redaction or a
// hold-back of the text would not reach them. Enforced flows get them emptied,
// in place, in the shape each API uses when none were requested:
//   "logprobs": {...}      -> null   (OpenAI chat)
//   "logprobs": [..., ...] -> []     (Responses API)
//   "logprobsResult": {...} -> {}    (Gemini; avgLogprobs, a single number, stays)
// Values are replaced in place, never erased, so that the text slots pointing
// into the same document stay valid.

#include <boost/json/value.hpp>

namespace customs::daemon::enforce {

// Returns whether anything was emptied.
bool strip_logprobs(boost::json::value& v) noexcept;

}  // namespace customs::daemon::enforce
