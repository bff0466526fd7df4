// A provider whose answer is compressed (Content-Encoding), or whose body
// comes with a redirect status: what the client gets must have been read.
// Found by attacking customsd as a hostile provider: a gzip'd event stream and
// a gzip'd error body were relayed as they came, unscanned, recorded "allow";
// a 300 answer's body was never scanned.
#include "enforced.hpp"

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {

// gzip of an OpenAI chat event stream whose one delta holds an AWS key
// (blocked in both directions by the shipped secrets pack), then [DONE].
const std::string gzip_stream(
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x1d\x8e\xc1\x0a\x82\x40"
    "\x14\x45\xf7\xf3\x15\xf2\xd6\x22\xba\x89\x98\x9d\xa4\x45\x05\xb6"
    "\x0a\x22\x91\x98\xde\x3c\x99\xc9\xe9\x4d\xe4\x08\x85\xf8\xef\x69"
    "\xcb\x0b\xe7\x1c\xae\x56\x41\xc9\x68\x04\xab\x41\x02\x66\x10\x83"
    "\xbf\x3f\x08\xc3\xb2\x8c\x0a\x09\xfa\xe7\xcb\x51\xb0\x9e\x13\x34"
    "\x03\x77\x33\x80\xc6\x5b\xa4\x1e\x64\x3d\x6b\xac\xe9\x03\x32\x8d"
    "\x41\x93\x0b\x0a\xe4\x08\xe8\x39\x10\x2f\x81\x8e\xbe\x51\x7e\xdc"
    "\xe7\xe7\xc3\xb5\x28\xd7\xbb\x4b\xb1\xaa\x36\xdb\x2c\x2d\x61\x8a"
    "\xa1\xb5\x6c\x7b\x73\x7b\x93\xea\x3d\x83\xe4\xc1\xb9\xa9\x99\x84"
    "\xd0\xff\x3f\x75\x71\xaa\xca\x46\x88\x1f\x9a\x5b\xc8\xef\x9e\x00"
    "\x00\x00",
    162);

// gzip of {"error":{"message":"invalid key AKIAUJZDE8GXD6NCF10E in input",...}}.
const std::string gzip_error(
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\x4a\x2d\x2a\xca"
    "\x2f\x52\xb2\xaa\x56\xca\x4d\x2d\x2e\x4e\x4c\x4f\x55\xb2\x52\xca"
    "\xcc\x2b\x4b\xcc\xc9\x4c\x51\xc8\x4e\xad\x54\x70\xf4\xf6\x74\x0c"
    "\xf5\x8a\x72\x71\xb5\x70\x8f\x70\x31\xf3\x73\x76\x33\x34\x70\x55"
    "\xc8\xcc\x03\xa2\x82\xd2\x12\x25\x1d\xa5\x92\xca\x02\x24\x2d\xf1"
    "\x45\xa9\x85\xa5\xa9\xc5\x25\xf1\x10\x53\x6b\x6b\x01\x72\x8d\xeb"
    "\x21\x60\x00\x00\x00",
    101);

std::string answer(const std::string& status_line, const std::string& headers, const std::string& body) {
  return "HTTP/1.1 " + status_line + "\r\n" + headers + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

const std::string chat_request = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";

// One request through an enforcing customsd (shipped packs, a trail) whose
// provider answers `upstream_answer`; `upstream_requests` says how many
// requests reached the provider.
raw_reply through_customsd(const std::string& upstream_answer, const std::string& request,
                           std::size_t* upstream_requests = nullptr) {
  raw_upstream up([upstream_answer](std::size_t) { return upstream_answer; });
  temp_dir dir;
  enforce::trail_files t(dir.path());
  daemon_under_test d(enforcing_yaml(t, up.port()), "hostile-response-coding");
  auto r = exchange(d.port(), request);
  if (upstream_requests) *upstream_requests = up.requests().size();
  return r;
}

std::string chat_post(const std::string& body = chat_request, const std::string& headers = {}) {
  return content_length_request(body, headers, "/openai-us/v1/chat/completions");
}

}  // namespace

TEST_CASE("response coding: a gzip event stream is not relayed unread") {
  const auto r = through_customsd(
      answer("200 OK", "Content-Type: text/event-stream\r\nContent-Encoding: gzip\r\n", gzip_stream), chat_post());
  INFO(r.raw);
  // The client never gets the compressed bytes: the stream is answered with
  // an error event it can read (unscannable: block is the default).
  CHECK(r.raw.find(gzip_stream.substr(10, 24)) == std::string::npos);
  CHECK(r.response.body.find("customs_unscannable") != std::string::npos);
  CHECK(r.response.headers[boost::beast::http::field::content_encoding] != "gzip");
}

TEST_CASE("response coding: a gzip error body is answered as unscannable") {
  for (const std::string coding : {"gzip", "GZIP", "identity, gzip", "br"}) {
    INFO(coding);
    const auto r = through_customsd(
        answer("400 Bad Request", "Content-Type: application/json\r\nContent-Encoding: " + coding + "\r\n", gzip_error),
        chat_post());
    INFO(r.raw);
    CHECK(r.status == 451);
    CHECK(r.response.body.find("customs_unscannable") != std::string::npos);
    CHECK(r.response.headers.count(boost::beast::http::field::content_encoding) == 0);
  }
}

TEST_CASE("response coding: Content-Encoding identity is read as usual") {
  const auto r = through_customsd(
      answer("400 Bad Request", "Content-Type: application/json\r\nContent-Encoding: identity\r\n",
             R"({"error":{"message":"invalid key AKIAUJZDE8GXD6NCF10E in input","type":"invalid_request_error"}})"),
      chat_post());
  INFO(r.raw);
  CHECK(r.status == 451);
  CHECK(r.response.headers["X-Customs-Response-Verdict"] == "block");
  CHECK(r.raw.find("AKIA") == std::string::npos);
}

TEST_CASE("response coding: the body of a 3xx answer is scanned") {
  for (const std::string status : {"300 Multiple Choices", "307 Temporary Redirect"}) {
    INFO(status);
    const auto r = through_customsd(
        answer(status, "Content-Type: application/json\r\n", R"({"error":{"message":"invalid key AKIAUJZDE8GXD6NCF10E in input"}})"),
        chat_post());
    INFO(r.raw);
    CHECK(r.raw.find("AKIA") == std::string::npos);
    CHECK(r.status == 451);
  }
}

TEST_CASE("request coding: a request body with a Content-Encoding is unscannable") {
  // Plain JSON declared gzip: scanned as JSON, the provider would decode it
  // as something else. It is never forwarded as read.
  raw_upstream up([](std::size_t) {
    return answer("200 OK", "Content-Type: application/json\r\n",
                  R"({"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]})");
  });
  temp_dir dir;
  enforce::trail_files t(dir.path());
  daemon_under_test d(enforcing_yaml(t, up.port()), "hostile-request-coding");
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  auto r = exchange(d.port(), content_length_request(body, "Content-Encoding: gzip\r\n", "/openai-us/v1/chat/completions"));
  INFO(r.raw);
  CHECK(r.status == 451);
  CHECK(r.response.body.find("customs_unscannable") != std::string::npos);
  CHECK(up.requests().empty());
  r = exchange(d.port(), content_length_request(body, "Content-Encoding: identity\r\n", "/openai-us/v1/chat/completions"));
  CHECK(r.status == 200);
}

TEST_CASE("response coding: a coded answer of an endpoint whose answers are never scanned is relayed as it came") {
  // Embeddings answer with numbers, not text: their 2xx bodies are relayed
  // unread whatever their coding, as before.
  const auto r = through_customsd(
      answer("200 OK", "Content-Type: application/json\r\nContent-Encoding: gzip\r\n", gzip_error),
      content_length_request(R"({"model":"m","input":"hi"})", {}, "/openai-us/v1/embeddings"));
  INFO(r.raw);
  CHECK(r.status == 200);
  CHECK(r.response.headers[boost::beast::http::field::content_encoding] == "gzip");
  CHECK(r.response.body == gzip_error);
}
