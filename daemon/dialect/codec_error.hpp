#pragma once
// Errors of the dialect codecs (request extraction, response extraction, stream
// decoding and re-encoding). The codecs are data plane: they never throw on
// input; every failure is a codec_error, which the enforcement filter treats as
// "unscannable" (requests) or as a reason to cut the stream (responses).

#include <string>
#include <type_traits>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace customs::daemon {

enum class codec_errc {
  malformed_json = 1,      // the body or event data is not valid JSON (or is too deep)
  not_an_object,           // the top-level JSON value is not the object the API sends
  unknown_endpoint,        // the upstream path is not an endpoint this dialect knows
  unexpected_shape,        // a known field has a type or shape the API does not allow
  unknown_part_type,       // a request content part / block / item of an unknown type
  slot_out_of_range,       // a text replacement names a slot that does not exist
  unknown_channel,         // make_delta for a channel this flow has not seen
  no_delta_form,           // the channel's text cannot be carried by a new delta event
  too_many_channels,       // a flow opened more channels than the codec tracks
  not_streamed,            // the endpoint has no streamed form
  duplicate_key,           // an object repeats a key (a request body; see parse_json)
  slot_not_writable,       // a text replacement names a slot nothing can be written into
  undecodable_text,        // an inline file declared as text is not valid base64 / UTF-8
  too_much_text,           // inline files decode to more text than a request may carry
};

[[nodiscard]] const boost::system::error_category& codec_category() noexcept;
[[nodiscard]] boost::system::error_code make_error_code(codec_errc e) noexcept;

// An error and where it happened: `where` is the RFC 6901 JSON pointer of the
// offending value inside the body or event data (empty when not applicable),
// so an audit record can say "unknown content part type at /messages/3/content/1".
struct codec_error {
  boost::system::error_code code;
  std::string where;

  [[nodiscard]] std::string message() const;  // "<code message> at <where>"
};

// For boost::system::result<T, codec_error>::value() on an error (tests only;
// the data plane checks has_value() first). Throws boost::system::system_error.
[[noreturn]] void throw_exception_from_error(const codec_error& e,
                                             const boost::source_location& loc);

template <class T>
using codec_result = boost::system::result<T, codec_error>;

}  // namespace customs::daemon

template <>
struct boost::system::is_error_code_enum<customs::daemon::codec_errc> : std::true_type {};
