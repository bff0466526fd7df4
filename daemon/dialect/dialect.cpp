#include "daemon/dialect/dialect.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace customs::daemon {
namespace {

// OpenAI error "type" by HTTP status.
std::string_view openai_type(unsigned status) {
  switch (status) {
    case 400: case 404: case 413: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: case 451: return "permission_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

// Anthropic error "type" by HTTP status (their documented set).
std::string_view anthropic_type(unsigned status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: case 451: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

// google.rpc.Code name by HTTP status, as the Gemini API reports it.
std::string_view gemini_status(unsigned status) {
  switch (status) {
    case 400: case 413: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: case 451: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 429: return "RESOURCE_EXHAUSTED";
    case 502: case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
}

}  // namespace

std::optional<dialect> parse_dialect(std::string_view s) noexcept {
  if (s == "openai") return dialect::openai;
  if (s == "anthropic") return dialect::anthropic;
  if (s == "gemini") return dialect::gemini;
  return std::nullopt;
}

std::string_view to_string(dialect d) noexcept {
  switch (d) {
    case dialect::openai: return "openai";
    case dialect::anthropic: return "anthropic";
    case dialect::gemini: return "gemini";
  }
  return "openai";
}

std::string error_body(dialect d, unsigned status, std::string_view message,
                       std::string_view code) {
  boost::json::object err;
  boost::json::object top;
  switch (d) {
    case dialect::openai:
      err["message"] = message;
      err["type"] = openai_type(status);
      err["param"] = nullptr;
      if (code.empty()) err["code"] = nullptr; else err["code"] = code;
      top["error"] = std::move(err);
      break;
    case dialect::anthropic:
      err["type"] = anthropic_type(status);
      err["message"] = message;
      if (!code.empty()) err["customs_code"] = code;
      top["type"] = "error";
      top["error"] = std::move(err);
      break;
    case dialect::gemini:
      err["code"] = status;
      err["message"] = message;
      err["status"] = gemini_status(status);
      if (!code.empty()) err["customs_code"] = code;
      top["error"] = std::move(err);
      break;
  }
  return boost::json::serialize(top);
}

std::string stream_error_event(dialect d, unsigned status, std::string_view message,
                               std::string_view code) {
  std::string out;
  if (d == dialect::anthropic) out += "event: error\n";
  out += "data: ";
  out += error_body(d, status, message, code);
  out += "\n\n";
  return out;
}

}  // namespace customs::daemon
