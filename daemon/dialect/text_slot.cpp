#include "daemon/dialect/text_slot.hpp"

#include <functional>

#include <boost/json/serialize.hpp>

namespace customs::daemon {

std::string_view to_string(slot_role r) noexcept {
  switch (r) {
    case slot_role::prose: return "prose";
    case slot_role::tool_arguments: return "tool_arguments";
    case slot_role::structured_leaf: return "structured_leaf";
    case slot_role::tool_definition: return "tool_definition";
    case slot_role::reasoning: return "reasoning";
    case slot_role::refusal: return "refusal";
  }
  return "prose";
}

std::string_view to_string(media_kind k) noexcept {
  switch (k) {
    case media_kind::image: return "image";
    case media_kind::audio: return "audio";
    case media_kind::video: return "video";
    case media_kind::file: return "file";
    case media_kind::document: return "document";
    case media_kind::tokens: return "tokens";
    case media_kind::opaque: return "opaque";
  }
  return "opaque";
}

codec_result<std::string> rewrite_document(const boost::json::value& doc,
                                           std::vector<text_slot>& slots,
                                           std::span<const text_replacement> changes) {
  // Check every index before touching anything, so that a bad list leaves the
  // document as it was.
  for (const auto& c : changes) {
    if (c.slot >= slots.size() || slots[c.slot].target == nullptr) {
      return codec_error{codec_errc::slot_out_of_range, {}};
    }
  }
  for (const auto& c : changes) {
    auto& s = slots[c.slot];
    const char* begin = s.target->data();
    const std::less<const char*> before;  // total order, also for unrelated pointers
    if (!before(c.text.data(), begin) && !before(begin + s.target->size(), c.text.data())) {
      // The new text views the string it replaces: copy it out first.
      std::string copy(c.text);
      s.target->assign(copy.data(), copy.size());
    } else {
      s.target->assign(c.text.data(), c.text.size());
    }
    s.text = std::string_view(s.target->data(), s.target->size());
  }
  return boost::json::serialize(doc);
}

}  // namespace customs::daemon
