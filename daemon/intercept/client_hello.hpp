#pragma once
// Reads a TLS ClientHello (RFC 8446 section 4.1.2, RFC 5246 section 7.4.1.2)
// from the first bytes of a connection, without consuming them: customsd peeks
// at the socket, decides from the server name (SNI, RFC 6066 section 3) whether
// to intercept, tunnel or refuse the connection, and leaves the bytes where the
// TLS stack or the tunnel will read them.
//
// The hello may be split across several TLS records (a handshake message can
// be fragmented, RFC 8446 section 5.1) and the records across any number of TCP
// segments: parse_client_hello says how many bytes it needs in all, so that the
// caller can wait for exactly that much (SO_RCVLOWAT) instead of polling.
//
// Pure parser of untrusted bytes: data plane, never throws.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon::intercept {

enum class hello_status : std::uint8_t {
  need_more,  // read until `need` bytes are there in all, then parse again
  complete,   // `out` holds the hello
  not_tls,    // the first bytes are not a TLS handshake record
  invalid,    // a TLS record, but not a well-formed ClientHello
  too_large,  // the hello would need more than `limit` bytes
};

struct client_hello {
  std::uint16_t legacy_version = 0;  // 0x0303 for TLS 1.2 and 1.3
  bool has_server_name = false;      // a server_name extension with a host_name entry
  std::string server_name;           // as sent (not normalised, at most 255 bytes)
  std::vector<std::string> alpn;     // protocols offered, in order
  bool offers_tls13 = false;         // supported_versions lists 0x0304
  std::size_t bytes = 0;             // the records that carry the hello, headers included
};

struct hello_result {
  hello_status status = hello_status::need_more;
  std::size_t need = 0;  // need_more: total bytes needed before the next attempt
};

// bytes: the connection's first bytes (all of them so far). limit: the most
// bytes the hello may take (limits.client_hello_bytes).
[[nodiscard]] hello_result parse_client_hello(std::string_view bytes, std::size_t limit, client_hello& out) noexcept;

[[nodiscard]] std::string_view to_string(hello_status s) noexcept;

// The bytes of a fatal TLS alert record (RFC 8446 section 6), e.g. 49
// access_denied, 40 handshake_failure, 112 unrecognized_name. A client that
// gets one before any handshake message reports the alert.
[[nodiscard]] std::string alert_record(std::uint8_t description);

}  // namespace customs::daemon::intercept
