#include "daemon/dialect/codec_error.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace customs::daemon {
namespace {

class codec_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "customs.dialect"; }
  std::string message(int ev) const override {
    switch (static_cast<codec_errc>(ev)) {
      case codec_errc::malformed_json: return "malformed JSON";
      case codec_errc::not_an_object: return "JSON value is not an object";
      case codec_errc::unknown_endpoint: return "unknown API endpoint";
      case codec_errc::unexpected_shape: return "unexpected JSON shape";
      case codec_errc::unknown_part_type: return "unknown content part type";
      case codec_errc::slot_out_of_range: return "text slot out of range";
      case codec_errc::unknown_channel: return "unknown stream channel";
      case codec_errc::no_delta_form: return "channel has no delta form";
      case codec_errc::too_many_channels: return "too many stream channels";
      case codec_errc::not_streamed: return "endpoint is not streamed";
      case codec_errc::duplicate_key: return "duplicate JSON object key";
      case codec_errc::slot_not_writable: return "text slot cannot take a replacement";
      case codec_errc::undecodable_text: return "inline text file is not valid base64 or UTF-8";
      case codec_errc::too_much_text: return "inline files decode to more text than the limit";
    }
    return "unknown dialect codec error";
  }
};

}  // namespace

const boost::system::error_category& codec_category() noexcept {
  static const codec_category_impl category;
  return category;
}

boost::system::error_code make_error_code(codec_errc e) noexcept {
  return {static_cast<int>(e), codec_category()};
}

std::string codec_error::message() const {
  std::string out = code.message();
  if (!where.empty()) {
    out += " at ";
    out += where;
  }
  return out;
}

void throw_exception_from_error(const codec_error& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code, e.where), loc);
}

}  // namespace customs::daemon
