#pragma once
// HTTP/1.1 framing as customsd reads it, from clients and from upstreams:
// Beast's parser with customsd's limits and the rules below. The session and
// the fuzz target (tests/fuzz/fuzz_http_framing.cpp) use the same pieces, so
// what is fuzzed is what runs. Data plane: nothing here throws on input.
//
// Rules (RFC 9112; each has a framing_error and a metric):
//   Both directions
//   - Every field (name + value) at most max_field_bytes: Beast keeps a field's
//     offsets in 16 bits and throws beyond 64 KiB, so no field that big ever
//     reaches it, whatever limits.header_bytes says.
//   - At most limits.header_fields header fields.
//   - Trailer fields never become header fields: they are counted against
//     limits.trailer_bytes and dropped. Requests are forwarded with
//     Content-Length (no trailers can follow it); responses are forwarded with
//     the head already sent or rebuilt by customsd.
//   - Chunk extensions of one message are counted against
//     limits.chunk_extension_bytes and dropped (never forwarded).
//   - Transfer-Encoding, when present, is exactly "chunked" (one field, one
//     coding). Anything else is refused: a request whose final coding is not
//     chunked could be read as bodiless by one reader and as carrying a body by
//     another (request smuggling); other codings before chunked are not
//     implemented (501). A response with another coding fails the flow and its
//     connection is closed, never pooled.
//   - Transfer-Encoding with Content-Length, or Content-Length values that
//     differ: refused (Beast reports these; they are mapped to bad_framing).
//   - Heads are checked raw before Beast parses them (head_scanner): lines
//     end with CRLF (a bare CR or LF is refused), no obsolete line folding (a
//     field line starting with SP or HTAB; a proxy may refuse it, RFC 9112
//     section 5.2), the head at most limits.header_bytes (requests, 431) or
//     limits.response_header_bytes (responses, 502), exactly.
//   Requests only
//   - The request target at most limits.target_bytes (414).
//   - HTTP/1.1: exactly one Host field; HTTP/1.0: at most one. Its value is
//     a host[:port] (no list, no spaces). Transfer-Encoding in an HTTP/1.0
//     request is refused.

#include "daemon/config.hpp"
#include "daemon/framing_error.hpp"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace customs::daemon {

// A field's name plus value over this many bytes is refused (documented
// constant; Beast's basic_fields throws at 65534).
inline constexpr std::size_t max_field_bytes = 65000;


// The error category of framing_error (name "customs.framing"); parse errors
// that come from these rules carry it.
[[nodiscard]] const boost::system::error_category& framing_category() noexcept;
[[nodiscard]] boost::system::error_code make_error_code(framing_error e) noexcept;
// The framing_error an error code carries, none when it is of another category.
[[nodiscard]] framing_error framing_error_of(const boost::system::error_code& ec) noexcept;

struct framing_limits {
  std::uint64_t header_bytes = 16 * 1024;
  std::uint64_t header_fields = 100;
  std::uint64_t target_bytes = 8 * 1024;  // requests only
  std::uint64_t trailer_bytes = 4 * 1024;
  std::uint64_t chunk_extension_bytes = 1024;
  std::optional<std::uint64_t> body_bytes;  // none: unlimited (the session bounds it otherwise)
};

[[nodiscard]] framing_limits request_framing(const limits_config& l) noexcept;
[[nodiscard]] framing_limits response_framing(const limits_config& l) noexcept;

// How big a connection's read buffer may grow: a chunk-size line and a whole
// trailer section must fit in it (Beast parses each only once it is complete),
// and so must a whole head. Bytes of pipelined requests beyond the one being
// handled stay in it: they are read only as far as this bound.
[[nodiscard]] std::size_t read_buffer_bytes(const framing_limits& l) noexcept;

// Beast's parser with the rules above (header fields, trailers, chunk
// extensions, Transfer-Encoding, Host). One per message, as Beast's parser.
template <bool isRequest, class Body>
class checked_parser : public boost::beast::http::parser<isRequest, Body> {
 public:
  explicit checked_parser(const framing_limits& l);

  // The rule a failed parse broke (none when it failed for another reason).
  [[nodiscard]] framing_error violation() const noexcept { return violation_; }
  // Trailer fields received and dropped, and their bytes (name + value + 4).
  [[nodiscard]] std::uint64_t trailer_fields() const noexcept { return trailer_fields_; }
  [[nodiscard]] std::uint64_t trailer_bytes() const noexcept { return trailer_bytes_; }
  [[nodiscard]] std::uint64_t chunk_extension_bytes() const noexcept { return extension_bytes_; }

 private:
  void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string,
                     boost::beast::string_view value, boost::system::error_code& ec) override;
  void on_header_impl(boost::system::error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, boost::beast::string_view extensions,
                            boost::system::error_code& ec) override;
  void fail(framing_error e, boost::system::error_code& ec) noexcept;

  framing_limits limits_;
  framing_error violation_ = framing_error::none;
  bool header_done_ = false;
  std::uint64_t fields_ = 0;
  std::uint64_t trailer_fields_ = 0;
  std::uint64_t trailer_bytes_ = 0;
  std::uint64_t extension_bytes_ = 0;
};

using request_parser = checked_parser<true, boost::beast::http::string_body>;
using response_parser = checked_parser<false, boost::beast::http::buffer_body>;
// For whole responses in tests and the fuzz target.
using string_response_parser = checked_parser<false, boost::beast::http::string_body>;

extern template class checked_parser<true, boost::beast::http::string_body>;
extern template class checked_parser<false, boost::beast::http::buffer_body>;
extern template class checked_parser<false, boost::beast::http::string_body>;

// Finds the end of a message head in the bytes buffered so far and checks it
// raw (line endings, obs-fold, head size, number and size of fields; for a
// request the target's size) before Beast parses it. Feed it the same growing
// buffer each time; it resumes where it stopped.
class head_scanner {
 public:
  head_scanner(const framing_limits& l, bool request) noexcept : limits_(l), request_(request) {}
  enum class status : std::uint8_t { need_more, complete, failed };
  [[nodiscard]] status scan(std::string_view buffered) noexcept;
  // When complete: the head's size, its final blank line included.
  [[nodiscard]] std::size_t head_bytes() const noexcept { return head_bytes_; }
  // When failed.
  [[nodiscard]] framing_error error() const noexcept { return error_; }

 private:
  [[nodiscard]] framing_error check_request_line(std::string_view line) const noexcept;
  framing_limits limits_;
  bool request_;
  std::size_t pos_ = 0;         // bytes looked at so far
  std::size_t line_start_ = 0;  // where the current line starts
  std::size_t lines_ = 0;       // complete lines so far (the request line is the first)
  std::size_t head_bytes_ = 0;
  framing_error error_ = framing_error::none;
};

// What overflowed when a read buffer filled up in the body of a chunked
// message, from the bytes left in it: a trailer section (they start with the
// last chunk's size line, "0") or a chunk-size line (extensions).
[[nodiscard]] framing_error classify_full_buffer(std::string_view buffered) noexcept;

// The whole framing path of one message as the session runs it, without a
// socket: head scan, head parse, body parse. For the fuzz target and tests.
struct parsed_message {
  boost::system::error_code ec;  // first error; need_more when the input ended early
  framing_error violation = framing_error::none;
  std::size_t consumed = 0;      // bytes of the input that belonged to the message
  bool done = false;
};
[[nodiscard]] parsed_message parse_request(std::string_view bytes, const framing_limits& l, request_parser& p);
[[nodiscard]] parsed_message parse_response(std::string_view bytes, const framing_limits& l,
                                            string_response_parser& p);

}  // namespace customs::daemon

namespace boost::system {
template <>
struct is_error_code_enum<customs::daemon::framing_error> : std::true_type {};
}  // namespace boost::system
