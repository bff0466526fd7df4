#include "daemon/dialect/stream_codec.hpp"

#include "daemon/dialect/stream_impl.hpp"

namespace customs::daemon {
namespace detail {

channel_state* channel_table::touch(std::string_view key, std::uint64_t owner, delta_form form) {
  if (auto it = index_.find(key); it != index_.end()) {
    auto& ch = channels_[it->second];
    ch.open = true;
    return &ch;
  }
  if (channels_.size() >= stream_codec::max_channels) return nullptr;
  channel_state ch;
  ch.key = std::string(key);
  ch.owner = owner;
  ch.form = form;
  index_.emplace(ch.key, channels_.size());
  channels_.push_back(std::move(ch));
  return &channels_.back();
}

const channel_state* channel_table::find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &channels_[it->second];
}

void channel_table::close(std::string_view key, std::vector<std::string>& closes) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  auto& ch = channels_[it->second];
  if (!ch.open) return;
  ch.open = false;
  closes.push_back(ch.key);
}

void channel_table::close_owner(std::uint64_t owner, std::vector<std::string>& closes) {
  for (auto& ch : channels_) {
    if (ch.open && ch.owner == owner) {
      ch.open = false;
      closes.push_back(ch.key);
    }
  }
}

void channel_table::close_all(std::vector<std::string>& closes) {
  for (auto& ch : channels_) {
    if (ch.open) {
      ch.open = false;
      closes.push_back(ch.key);
    }
  }
}

std::vector<std::string> channel_table::open_keys() const {
  std::vector<std::string> out;
  for (const auto& ch : channels_) {
    if (ch.open) out.push_back(ch.key);
  }
  return out;
}

codec_result<json::object*> stream_codec_impl::parse_object(stream_event& ev, std::string_view data) {
  auto parsed = parse_json(data, &parser_, &ev.duplicate_keys, nullptr, ev.document.storage());
  if (!parsed) return parsed.error();
  ev.document = std::move(*parsed);
  if (!ev.document.is_object()) return codec_error{codec_errc::not_an_object, {}};
  return &ev.document.get_object();
}

bool stream_codec_impl::take_done_marker(stream_event& ev, std::string_view data) {
  if (!data.starts_with("[DONE]")) return false;
  ev.kind = event_kind::end_marker;
  channels.close_all(ev.closes);
  return true;
}

channel_state* stream_codec_impl::add_slot(stream_event& ev, json::string& s, slot_role role,
                                           std::string_view key, std::uint64_t owner, delta_form form) {
  auto* ch = channels.touch(key, owner, form);
  if (ch == nullptr) return nullptr;
  text_slot slot;
  slot.text = std::string_view(s.data(), s.size());
  slot.role = role;
  slot.channel = ch->key;
  slot.target = &s;
  ev.slots.push_back(std::move(slot));
  return ch;
}

bool stream_codec_impl::add_whole_slot(stream_event& ev, json::string& s, slot_role role, std::string_view key,
                                       std::uint64_t owner) {
  if (add_slot(ev, s, role, key, owner, delta_form::none) == nullptr) return false;
  channels.close(key, ev.closes);
  return true;
}

void stream_codec_impl::error_event(stream_event& ev) {
  ev.kind = event_kind::error;
  walker w(ev.slots, ev.non_text);
  w.leaves(ev.document, slot_role::error, "err");
  // The event's own "type" says what the event is (Responses "error" and
  // "response.failed", Anthropic "error"): it is scanned like every string, but
  // a replacement there would forward an event of another kind than the one
  // inspected, so a finding in it blocks instead.
  if (!ev.document.is_object()) return;
  auto* type = ev.document.get_object().if_contains("type");
  if (type == nullptr || !type->is_string()) return;
  for (auto& slot : ev.slots)
    if (slot.target == &type->get_string()) slot.form = slot_form::fixed;
}

void settle_kind(stream_event& ev) noexcept {
  if (!ev.slots.empty()) {
    ev.kind = event_kind::content;
  } else if (!ev.usage.empty()) {
    ev.kind = event_kind::usage_only;
  } else {
    ev.kind = event_kind::other;
  }
}

}  // namespace detail

std::string_view to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::content: return "content";
    case event_kind::usage_only: return "usage_only";
    case event_kind::end_marker: return "end_marker";
    case event_kind::error: return "error";
    case event_kind::other: return "other";
    case event_kind::unknown: return "unknown";
  }
  return "unknown";
}

stream_codec::stream_codec(std::unique_ptr<detail::stream_codec_impl> impl) : impl_(std::move(impl)) {}
stream_codec::stream_codec(stream_codec&&) noexcept = default;
stream_codec& stream_codec::operator=(stream_codec&&) noexcept = default;
stream_codec::~stream_codec() = default;

codec_result<stream_codec> stream_codec::create(dialect d, endpoint_kind endpoint) {
  switch (endpoint) {
    case endpoint_kind::openai_chat:
      if (d != dialect::openai) break;
      return stream_codec(detail::make_openai_chat_codec());
    case endpoint_kind::openai_responses:
      if (d != dialect::openai) break;
      return stream_codec(detail::make_openai_responses_codec());
    case endpoint_kind::anthropic_messages:
      if (d != dialect::anthropic) break;
      return stream_codec(detail::make_anthropic_codec());
    case endpoint_kind::gemini_stream_generate:
      if (d != dialect::gemini) break;
      return stream_codec(detail::make_gemini_codec());
    case endpoint_kind::gemini_generate:
    case endpoint_kind::openai_embeddings:
    case endpoint_kind::anthropic_count_tokens:
    case endpoint_kind::gemini_count_tokens:
    case endpoint_kind::gemini_embed:
    case endpoint_kind::gemini_batch_embed:
    case endpoint_kind::model_info:
      return codec_error{codec_errc::not_streamed, {}};
  }
  return codec_error{codec_errc::unknown_endpoint, {}};
}

codec_result<stream_event> stream_codec::decode(std::string_view event_name, std::string_view data) {
  return impl_->decode(event_name, data);
}

codec_result<std::string> stream_codec::encode(stream_event& event,
                                               std::span<const text_replacement> changes) const {
  if (event.document.is_null()) {  // "[DONE]": no text
    if (!changes.empty()) return codec_error{codec_errc::slot_out_of_range, {}};
    return std::string("[DONE]");
  }
  return rewrite_document(event.document, event.slots, changes);
}

codec_result<sse_event> stream_codec::make_delta(std::string_view channel, std::string_view text) const {
  const auto* ch = impl_->channels.find(channel);
  if (ch == nullptr) return codec_error{codec_errc::unknown_channel, {}};
  if (ch->form == detail::delta_form::none) return codec_error{codec_errc::no_delta_form, {}};
  return impl_->make_delta(*ch, text);
}

std::vector<std::string> stream_codec::open_channels() const { return impl_->channels.open_keys(); }

}  // namespace customs::daemon
