#pragma once
// Internal to the dialect codecs: inline files of a request (data: URLs and
// base64 fields), decoded so that the text they carry is scanned like any
// other text.
//
// A blob is read as text when its declared media type is textual (text/*,
// application/json, application/xml, application/yaml, application/x-ndjson,
// application/csv, application/javascript, and any +json / +xml type), or when
// its first decoded bytes look like text whatever it declares (valid UTF-8, no
// NUL, no control characters but tab, line feed, form feed and carriage
// return): a text labelled as an image is still a text. A declared text that is
// not valid base64 or not valid UTF-8 cannot be scanned; a sniffed one that
// turns out binary further on is a media part like any other.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace customs::daemon::detail {

// "data:[<media type>][;<param>=<value>]*[;base64],<data>" (RFC 2397).
struct data_url {
  std::string_view media_type;  // lower-cased by the caller when compared; "" means text/plain
  std::string_view params;      // ";charset=utf-8" (without ";base64"), may be empty
  bool base64 = false;
  std::string_view data;        // still encoded (base64 or percent-encoded)
};

// nullopt when `s` is not a data: URL.
[[nodiscard]] std::optional<data_url> parse_data_url(std::string_view s) noexcept;

// Standard or URL-safe base64, padding optional, ASCII whitespace ignored.
// nullopt on any other character or a bad length. At most `max_out` bytes are
// produced: a longer result is cut there (for sniffing a prefix).
[[nodiscard]] std::optional<std::string> decode_base64(std::string_view in,
                                                       std::size_t max_out = static_cast<std::size_t>(-1));
// Standard base64 with padding.
[[nodiscard]] std::string encode_base64(std::string_view in);
// Percent-decoding (RFC 3986); `plus_is_space` for form-encoded query strings.
// Invalid escapes are kept as they are.
[[nodiscard]] std::string percent_decode(std::string_view in, bool plus_is_space = false);

// Whether a media type names text (see above). Parameters are ignored.
[[nodiscard]] bool textual_media_type(std::string_view media_type) noexcept;
// Whether `bytes` look like the start of a text (see above); `truncated` says
// that `bytes` is a prefix, so a UTF-8 sequence cut at its end is fine.
[[nodiscard]] bool looks_like_text(std::string_view bytes, bool truncated) noexcept;
// Whether `s` is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
[[nodiscard]] bool valid_utf8(std::string_view s) noexcept;
// The same for a prefix of a longer text: a sequence cut at the end is fine.
[[nodiscard]] bool valid_utf8_prefix(std::string_view s) noexcept;

}  // namespace customs::daemon::detail
