#pragma once
// Internal to the dialect codecs: the per-dialect request walkers. Each fills
// the extraction's slots and media counts from its parsed document and returns
// false (with the error recorded in the walker) on a shape it cannot walk.

#include "daemon/dialect/json_walk.hpp"
#include "daemon/dialect/request.hpp"

namespace customs::daemon::detail {

[[nodiscard]] bool walk_openai_request(walker& w, request_extraction& ex, json::object& body);
[[nodiscard]] bool walk_anthropic_request(walker& w, request_extraction& ex, json::object& body);
[[nodiscard]] bool walk_gemini_request(walker& w, request_extraction& ex, json::object& body);

// The media kind of a MIME type: image/*, audio/*, video/*; application/pdf and
// text/* are documents; anything else is a file.
[[nodiscard]] media_kind media_of_mime(std::string_view mime) noexcept;

// The media type a file name's extension suggests for an inline file without
// one: "text/plain" for common text and source formats, else
// "application/octet-stream" (sniffed, see blob.hpp).
[[nodiscard]] std::string_view media_type_of_filename(std::string_view filename) noexcept;

}  // namespace customs::daemon::detail
