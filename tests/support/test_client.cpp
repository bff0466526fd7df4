#include "tests/support/test_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <algorithm>
#include <cctype>

namespace customs::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string http_result::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        }))
      return v;
  }
  return {};
}

struct http_client::impl {
  explicit impl(client_options o) : opts(std::move(o)) {}

  client_options opts;
  net::io_context ioc;
  std::optional<net::ssl::context> tls;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;

  beast::tcp_stream& tcp_layer() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  // Runs the operations started on this client's io_context to completion; the
  // tcp_stream deadlines bound them.
  void run() {
    ioc.restart();
    ioc.run();
  }

  template <class Stream>
  http_result exchange(Stream& stream, http::request<http::string_body>& req,
                       std::chrono::milliseconds timeout) {
    http_result out;
    boost::system::error_code ec;
    tcp_layer().expires_after(timeout);
    http::async_write(stream, req, [&](boost::system::error_code e, std::size_t) { ec = e; });
    run();
    if (ec) {
      out.ec = ec;
      return out;
    }

    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    auto on_header = [&](std::uint64_t size, std::string_view, boost::system::error_code&) {
      if (size > 0) out.chunks.emplace_back();
    };
    auto on_body = [&](std::uint64_t, std::string_view piece, boost::system::error_code&) {
      out.chunks.back() += piece;
      out.body += piece;
      return piece.size();
    };
    parser.on_chunk_header(on_header);
    parser.on_chunk_body(on_body);
    tcp_layer().expires_after(timeout);
    http::async_read(stream, buffer, parser, [&](boost::system::error_code e, std::size_t) { ec = e; });
    run();

    out.ec = ec;
    out.complete = !ec && parser.is_done();
    if (parser.is_header_done()) {
      const auto& res = parser.get();
      out.status = res.result_int();
      for (const auto& f : res.base())
        out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      out.chunked = parser.chunked();
      out.keep_alive = res.keep_alive();
      if (!out.chunked) out.body = res.body();
    }
    return out;
  }
};

http_client::http_client(client_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

http_client::~http_client() = default;

boost::system::error_code http_client::connect() {
  auto& i = *impl_;
  i.secure.reset();
  i.plain.reset();
  i.buffer.clear();
  boost::system::error_code ec;
  tcp::resolver resolver(i.ioc);
  const auto endpoints = resolver.resolve(i.opts.host, std::to_string(i.opts.port), ec);
  if (ec) return ec;

  if (i.opts.tls) {
    const client_tls& t = *i.opts.tls;
    i.tls.emplace(net::ssl::context::tls_client);
    i.tls->set_options(net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
    i.tls->load_verify_file(t.ca_file.string(), ec);
    if (ec) return ec;
    if (t.client_cert && t.client_key) {
      i.tls->use_certificate_chain_file(t.client_cert->string(), ec);
      if (!ec) i.tls->use_private_key_file(t.client_key->string(), net::ssl::context::pem, ec);
      if (ec) return ec;
    }
    i.secure.emplace(i.ioc, *i.tls);
    i.secure->set_verify_mode(net::ssl::verify_peer);
    i.secure->set_verify_callback(net::ssl::host_name_verification(t.verify_name));
    boost::system::error_code not_ip;
    net::ip::make_address(t.verify_name, not_ip);
    if (not_ip) ::SSL_set_tlsext_host_name(i.secure->native_handle(), t.verify_name.c_str());
  } else {
    i.plain.emplace(i.ioc);
  }

  i.tcp_layer().expires_after(i.opts.timeout);
  i.tcp_layer().async_connect(endpoints, [&](boost::system::error_code e, const tcp::endpoint&) { ec = e; });
  i.run();
  if (ec || !i.secure) return ec;
  i.tcp_layer().expires_after(i.opts.timeout);
  i.secure->async_handshake(net::ssl::stream_base::client, [&](boost::system::error_code e) { ec = e; });
  i.run();
  if (ec) i.tcp_layer().close();
  return ec;
}

http_result http_client::request(std::string_view method, std::string_view target,
                                 std::string_view body, const header_list& headers,
                                 std::optional<std::chrono::milliseconds> timeout) {
  auto& i = *impl_;
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, i.opts.host + ":" + std::to_string(i.opts.port));
  req.set(http::field::user_agent, "customs-test-client");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [n, v] : headers) req.set(n, v);
  req.body() = std::string(body);
  req.prepare_payload();
  const auto t = timeout.value_or(i.opts.timeout);
  if (i.secure) return i.exchange(*i.secure, req, t);
  if (i.plain) return i.exchange(*i.plain, req, t);
  http_result not_connected;
  not_connected.ec = net::error::not_connected;
  return not_connected;
}

bool http_client::is_open() const {
  if (impl_->secure) return beast::get_lowest_layer(*impl_->secure).socket().is_open();
  return impl_->plain && impl_->plain->socket().is_open();
}

void http_client::close() {
  if (impl_->secure || impl_->plain) impl_->tcp_layer().close();
}

std::vector<sse_event> parse_sse(std::string_view body, std::string* rest) {
  std::vector<sse_event> events;
  sse_event current;
  bool has_data = false;
  std::size_t consumed = 0;  // bytes up to the end of the last complete event
  std::size_t pos = 0;
  while (pos < body.size()) {
    const std::size_t eol = body.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) break;  // a line not yet terminated
    // A CR at the very end may be the first half of a CRLF not yet received.
    if (body[eol] == '\r' && eol + 1 == body.size()) break;
    const std::string_view line = body.substr(pos, eol - pos);
    pos = eol + ((body[eol] == '\r' && body[eol + 1] == '\n') ? 2 : 1);
    if (line.empty()) {
      if (has_data) events.push_back(std::move(current));
      current = {};
      has_data = false;
      consumed = pos;
      continue;
    }
    if (line.front() == ':') continue;
    const auto colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "event") {
      current.event = std::string(value);
    } else if (field == "data") {
      if (has_data) current.data += '\n';
      current.data += value;
      has_data = true;
    }
  }
  if (rest) *rest = std::string(body.substr(consumed));
  return events;
}

}  // namespace customs::testing
