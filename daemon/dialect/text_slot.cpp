#include "daemon/dialect/text_slot.hpp"

#include <algorithm>
#include <functional>

#include <boost/json/serialize.hpp>

#include "daemon/dialect/blob.hpp"

namespace customs::daemon {

std::string_view to_string(slot_role r) noexcept {
  switch (r) {
    case slot_role::prose: return "prose";
    case slot_role::tool_arguments: return "tool_arguments";
    case slot_role::structured_leaf: return "structured_leaf";
    case slot_role::tool_definition: return "tool_definition";
    case slot_role::reasoning: return "reasoning";
    case slot_role::refusal: return "refusal";
    case slot_role::field: return "field";
    case slot_role::identifier: return "identifier";
    case slot_role::key: return "key";
    case slot_role::number: return "number";
    case slot_role::attachment: return "attachment";
    case slot_role::target: return "target";
    case slot_role::header: return "header";
    case slot_role::tool_name: return "tool_name";
    case slot_role::error: return "error";
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
    if (!slots[c.slot].writable()) return codec_error{codec_errc::slot_not_writable, slots[c.slot].where};
  }
  for (const auto& c : changes) {
    auto& s = slots[c.slot];
    if (s.form == slot_form::base64 || s.form == slot_form::data_url) {
      // The new text may view the old one (owned): copy it first.
      auto text = std::make_shared<std::string>(c.text);
      std::string encoded = s.form == slot_form::data_url ? "data:" + s.media_type + ";base64," : std::string();
      encoded += detail::encode_base64(*text);
      s.target->assign(encoded.data(), encoded.size());
      s.owned = std::move(text);
      s.text = *s.owned;
      continue;
    }
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
  // Other slots on a changed string (an inline file's own string is also a
  // slot of its own) view it again.
  std::vector<const boost::json::string*> changed;
  changed.reserve(changes.size());
  for (const auto& c : changes) changed.push_back(slots[c.slot].target);
  const std::less<const boost::json::string*> order;
  std::sort(changed.begin(), changed.end(), order);
  for (auto& other : slots) {
    if (other.owned || other.target == nullptr) continue;
    if (std::binary_search(changed.begin(), changed.end(), other.target, order)) {
      other.text = std::string_view(other.target->data(), other.target->size());
    }
  }
  return boost::json::serialize(doc);
}

}  // namespace customs::daemon
