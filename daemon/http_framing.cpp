#include "daemon/http_framing.hpp"

#include "daemon/http_util.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <new>
#include <stdexcept>

namespace customs::daemon {
namespace http = boost::beast::http;
using boost::system::error_code;

// ---- error category ----------------------------------------------------------

namespace {

class framing_category_impl final : public boost::system::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "customs.framing"; }
  [[nodiscard]] std::string message(int ev) const override {
    return std::string(to_string(static_cast<framing_error>(ev)));
  }
};

}  // namespace

const boost::system::error_category& framing_category() noexcept {
  static const framing_category_impl c;
  return c;
}

error_code make_error_code(framing_error e) noexcept { return {static_cast<int>(e), framing_category()}; }

framing_error framing_error_of(const error_code& ec) noexcept {
  if (!ec) return framing_error::none;
  if (ec.category() == framing_category()) return static_cast<framing_error>(ec.value());
  if (ec == http::error::header_limit) return framing_error::head_too_large;
  if (ec == http::error::buffer_overflow) return framing_error::read_buffer_full;
  if (ec == http::error::bad_content_length || ec == http::error::multiple_content_length) {
    return framing_error::bad_content_length;
  }
  if (ec == http::error::bad_transfer_encoding) return framing_error::bad_transfer_encoding;
  if (ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension) return framing_error::bad_chunk;
  return framing_error::none;
}

// ---- limits --------------------------------------------------------------------

framing_limits request_framing(const limits_config& l) noexcept {
  framing_limits f;
  f.header_bytes = l.header_bytes;
  f.header_fields = l.header_fields;
  f.target_bytes = l.target_bytes;
  f.trailer_bytes = l.trailer_bytes;
  f.chunk_extension_bytes = l.chunk_extension_bytes;
  f.body_bytes = l.request_body_bytes;
  return f;
}

framing_limits response_framing(const limits_config& l) noexcept {
  framing_limits f;
  f.header_bytes = l.response_header_bytes;
  f.header_fields = l.header_fields;
  f.target_bytes = 0;  // not used for responses
  f.trailer_bytes = l.trailer_bytes;
  f.chunk_extension_bytes = l.chunk_extension_bytes;
  return f;
}

std::size_t read_buffer_bytes(const framing_limits& l) noexcept {
  // The last chunk's line with its extensions, the trailer section and their
  // line ends; 4 KiB of room for the bytes that arrive with them.
  const std::uint64_t body_element = l.chunk_extension_bytes + l.trailer_bytes + 64;
  return static_cast<std::size_t>(std::max<std::uint64_t>(l.header_bytes, body_element) + 4096);
}

// ---- the checked parser --------------------------------------------------------

namespace {

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// uri-host [":" port]: reg-name, IPv4 or an IP literal in brackets. No list
// separator, no whitespace, nothing of a path, query or userinfo.
bool valid_host(std::string_view h) noexcept {
  for (const char c : h) {
    const auto u = static_cast<unsigned char>(c);
    const bool ok = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
                    std::string_view("-._~!$&'()*+;=:[]%").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// Transfer-Encoding of a message whose fields are `m`: none when absent or
// exactly "chunked" (and Beast also took the message as chunked).
template <class Fields>
framing_error check_transfer_encoding(const Fields& m, bool beast_chunked) {
  const auto range = m.equal_range(http::field::transfer_encoding);
  if (range.first == range.second) return framing_error::none;
  std::size_t codings = 0, chunked = 0;
  bool last_chunked = false;
  bool empty_element = false;
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view v(it->value().data(), it->value().size());
    for (;;) {
      const auto comma = v.find(',');
      const std::string_view element = trim_ows(v.substr(0, comma));
      if (element.empty()) {
        empty_element = true;
      } else {
        ++codings;
        last_chunked = iequals(element, "chunked");
        if (last_chunked) ++chunked;
      }
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  if (codings == 0 || empty_element || !last_chunked || chunked > 1 || !beast_chunked) {
    return framing_error::bad_transfer_encoding;
  }
  if (codings > 1) return framing_error::unsupported_coding;
  return framing_error::none;
}

}  // namespace

template <bool isRequest, class Body>
checked_parser<isRequest, Body>::checked_parser(const framing_limits& l) : limits_(l) {
  this->header_limit(static_cast<std::uint32_t>(std::min<std::uint64_t>(l.header_bytes, UINT32_MAX)));
  if (l.body_bytes) this->body_limit(*l.body_bytes);
  else this->body_limit(boost::none);
}

template <bool isRequest, class Body>
void checked_parser<isRequest, Body>::fail(framing_error e, error_code& ec) noexcept {
  if (violation_ == framing_error::none) violation_ = e;
  ec = make_error_code(e);
}

template <bool isRequest, class Body>
void checked_parser<isRequest, Body>::on_field_impl(http::field name, boost::beast::string_view name_string,
                                                    boost::beast::string_view value, error_code& ec) {
  if (header_done_) {
    // A trailer field: counted, never stored with the header fields.
    ++trailer_fields_;
    trailer_bytes_ += name_string.size() + value.size() + 4;
    if (trailer_bytes_ > limits_.trailer_bytes) fail(framing_error::trailer_too_large, ec);
    return;
  }
  if (++fields_ > limits_.header_fields) {
    fail(framing_error::too_many_fields, ec);
    return;
  }
  if (name_string.size() + value.size() > max_field_bytes) {
    fail(framing_error::field_too_large, ec);
    return;
  }
  try {
    this->get().insert(name, name_string, value);
  } catch (const std::bad_alloc&) {
    ec = boost::system::errc::make_error_code(boost::system::errc::not_enough_memory);
  } catch (const std::length_error&) {
    // Cannot happen below max_field_bytes; kept so that Beast never ends the process.
    fail(framing_error::field_too_large, ec);
  }
}

template <bool isRequest, class Body>
void checked_parser<isRequest, Body>::on_header_impl(error_code& ec) {
  header_done_ = true;
  const auto& m = this->get();
  const framing_error te = check_transfer_encoding(m, this->chunked());
  if (te != framing_error::none) {
    fail(te, ec);
    return;
  }
  if constexpr (isRequest) {
    if (m.version() < 11 && m.find(http::field::transfer_encoding) != m.end()) {
      fail(framing_error::bad_transfer_encoding, ec);
      return;
    }
    const auto hosts = m.equal_range(http::field::host);
    const auto n = static_cast<std::size_t>(std::distance(hosts.first, hosts.second));
    if (n > 1 || (n == 0 && m.version() >= 11)) {
      fail(framing_error::bad_host, ec);
      return;
    }
    if (n == 1 && !valid_host(std::string_view(hosts.first->value().data(), hosts.first->value().size()))) {
      fail(framing_error::bad_host, ec);
      return;
    }
  }
  ec = {};
}

template <bool isRequest, class Body>
void checked_parser<isRequest, Body>::on_chunk_header_impl(std::uint64_t, boost::beast::string_view extensions,
                                                           error_code& ec) {
  // Extensions are never forwarded: only their size matters.
  extension_bytes_ += extensions.size();
  if (extension_bytes_ > limits_.chunk_extension_bytes) fail(framing_error::chunk_extension_too_large, ec);
}

template class checked_parser<true, http::string_body>;
template class checked_parser<false, http::buffer_body>;
template class checked_parser<false, http::string_body>;

// ---- raw request head ----------------------------------------------------------

namespace {
// Method, two spaces and "HTTP/1.1" around the target: a request line longer
// than target_bytes plus this is refused before it ends.
constexpr std::size_t request_line_overhead = 64;
}  // namespace

head_scanner::status head_scanner::scan(std::string_view b) noexcept {
  if (error_ != framing_error::none) return status::failed;
  if (head_bytes_ != 0) return status::complete;
  const auto failed = [this](framing_error e) {
    error_ = e;
    return status::failed;
  };
  std::size_t i = pos_;
  for (; i < b.size(); ++i) {
    const char c = b[i];
    if (i == line_start_ && lines_ > 0 && is_ows(c)) return failed(framing_error::obs_fold);
    if (c == '\r') {
      if (i + 1 >= b.size()) break;  // look again when the next byte is here
      if (b[i + 1] != '\n') return failed(framing_error::bad_line_ending);
    } else if (c == '\n') {
      if (i == 0 || b[i - 1] != '\r') return failed(framing_error::bad_line_ending);
      if (lines_ == 0) {
        const framing_error e = request_ ? check_request_line(b.substr(0, i - 1)) : framing_error::none;
        if (e != framing_error::none) return failed(e);
      } else if (i - 1 == line_start_) {
        // The blank line: the head is complete.
        if (i + 1 > limits_.header_bytes) return failed(framing_error::head_too_large);
        head_bytes_ = i + 1;
        pos_ = i + 1;
        return status::complete;
      } else if (lines_ > limits_.header_fields) {
        return failed(framing_error::too_many_fields);
      }
      ++lines_;
      line_start_ = i + 1;
      continue;
    }
    if (lines_ > 0 && i - line_start_ > max_field_bytes + 2) return failed(framing_error::field_too_large);
    if (request_ && lines_ == 0 && i > limits_.target_bytes + request_line_overhead) {
      return failed(framing_error::target_too_long);
    }
  }
  pos_ = i;
  if (b.size() >= limits_.header_bytes) return failed(framing_error::head_too_large);
  return status::need_more;
}

framing_error head_scanner::check_request_line(std::string_view line) const noexcept {
  // method SP request-target SP HTTP-version (Beast checks the parts).
  const auto sp = line.find(' ');
  if (sp == std::string_view::npos) return framing_error::none;
  const auto sp2 = line.find(' ', sp + 1);
  const std::size_t target = (sp2 == std::string_view::npos ? line.size() : sp2) - sp - 1;
  return target > limits_.target_bytes ? framing_error::target_too_long : framing_error::none;
}

framing_error classify_full_buffer(std::string_view b) noexcept {
  // The CRLF that ends the previous chunk's data may still be there.
  if (b.starts_with("\r\n")) b.remove_prefix(2);
  const auto eol = b.find("\r\n");
  if (eol == std::string_view::npos) return framing_error::chunk_extension_too_large;
  // A complete size line: a trailer section follows only the last chunk (size 0).
  std::string_view size = b.substr(0, eol);
  size = size.substr(0, size.find_first_of("; \t"));
  const bool zero = !size.empty() && size.find_first_not_of('0') == std::string_view::npos;
  return zero ? framing_error::trailer_too_large : framing_error::chunk_extension_too_large;
}

// ---- without a socket ----------------------------------------------------------

namespace {

// Feeds `bytes` to a parser whose head is already parsed (or, for responses,
// not yet), the way Beast's read does from a buffer of at most `cap` bytes.
template <class Parser>
void put_rest(std::string_view bytes, std::size_t cap, Parser& p, parsed_message& r) {
  p.eager(true);
  while (!p.is_done()) {
    if (r.consumed == bytes.size()) {
      // The input ended: the peer closed. That ends a body read until the
      // connection closes; any other message is incomplete.
      error_code ec;
      p.put_eof(ec);
      if (ec) {
        r.ec = ec == http::error::partial_message ? error_code(http::error::need_more) : ec;
        r.violation = p.violation();
        return;
      }
      break;
    }
    const std::string_view window = bytes.substr(r.consumed, std::min(cap, bytes.size() - r.consumed));
    error_code ec;
    const std::size_t n = p.put(boost::asio::buffer(window.data(), window.size()), ec);
    r.consumed += n;
    if (ec == http::error::need_more) {
      if (n > 0) continue;
      if (window.size() == cap) {
        r.ec = make_error_code(classify_full_buffer(window));
        r.violation = framing_error_of(r.ec);
      } else {
        r.ec = ec;  // the input ended inside the message
      }
      return;
    }
    if (ec) {
      r.ec = ec;
      r.violation = p.violation() != framing_error::none ? p.violation() : framing_error_of(ec);
      return;
    }
  }
  r.done = true;
}

template <class Parser>
parsed_message parse_message(std::string_view bytes, const framing_limits& l, Parser& p, bool request) {
  parsed_message r;
  const std::size_t cap = read_buffer_bytes(l);
  head_scanner scanner(l, request);
  const std::string_view first = bytes.substr(0, std::min(cap, bytes.size()));
  const auto st = scanner.scan(first);
  if (st == head_scanner::status::failed) {
    r.violation = scanner.error();
    r.ec = make_error_code(r.violation);
    return r;
  }
  if (st == head_scanner::status::need_more) {
    r.ec = http::error::need_more;
    return r;
  }
  p.eager(false);
  error_code ec;
  r.consumed = p.put(boost::asio::buffer(first.data(), scanner.head_bytes()), ec);
  if (ec) {
    r.ec = ec;
    r.violation = p.violation() != framing_error::none ? p.violation() : framing_error_of(ec);
    return r;
  }
  put_rest(bytes, cap, p, r);
  return r;
}

}  // namespace

parsed_message parse_request(std::string_view bytes, const framing_limits& l, request_parser& p) {
  return parse_message(bytes, l, p, true);
}

parsed_message parse_response(std::string_view bytes, const framing_limits& l, string_response_parser& p) {
  return parse_message(bytes, l, p, false);
}

}  // namespace customs::daemon
