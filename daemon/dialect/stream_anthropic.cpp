// Anthropic Messages streams: "event: <type>" + "data: {"type":<type>,...}".
//   message_start        {"message":{...,"content":[],"usage":{"input_tokens":N,...}}}
//   content_block_start  {"index":i,"content_block":{"type":"text","text":""}}
//                        (or tool_use with "input":{}, thinking, redacted_thinking,
//                        server_tool_use, web_search_tool_result)
//   content_block_delta  {"index":i,"delta":{"type":"text_delta","text":T}}
//                        (input_json_delta partial_json, thinking_delta thinking,
//                        signature_delta, citations_delta)
//   content_block_stop   {"index":i}
//   message_delta        {"delta":{"stop_reason":...},"usage":{"output_tokens":N}}
//   message_stop, ping, error {"type":"error","error":{"type":..,"message":..}}
// The SDKs select the events to read by their name but build each from its
// data's "type" (the Python SDK: an `event: message_delta` whose data says
// content_block_delta is shown as a text delta). A name and a data "type" that
// disagree are therefore an event this codec does not decode (unscannable),
// except `event: error`, which the SDKs raise from its name whatever the data
// (every string of it is scanned). Without a name, the data's "type" decides.
#include "daemon/dialect/response_walk.hpp"
#include "daemon/dialect/stream_impl.hpp"

#include <boost/json/serialize.hpp>

namespace customs::daemon::detail {
namespace {

class anthropic_codec final : public stream_codec_impl {
 public:
  codec_result<stream_event> decode(std::string_view name, std::string_view data) override {
    stream_event ev(document_storage());  // the event's nodes in one resource, freed with it
    auto root = parse_object(ev, data);
    if (!root) return root.error();
    auto& o = **root;
    std::string_view type = name;
    if (const auto* t = o.if_contains("type"); name != "error" && t != nullptr) {
      if (!t->is_string()) return codec_error{codec_errc::unexpected_shape, "/type"};
      const std::string_view data_type = t->get_string();
      if (!name.empty() && data_type != name) {
        return codec_error{codec_errc::unexpected_shape, "/type: the data's type is not the event's name"};
      }
      type = data_type;
    }

    if (type == "error") {
      error_event(ev);
      return ev;
    }
    if (type == "ping") {
      ev.kind = event_kind::other;
      return ev;
    }
    if (type == "message_stop") {
      ev.kind = event_kind::end_marker;
      channels.close_all(ev.closes);
      return ev;
    }
    if (type == "message_start") {
      auto* message = object_member(o, "message");
      if (message == nullptr) return codec_error{codec_errc::unexpected_shape, "/message"};
      ev.usage = anthropic_usage(member(*message, "usage"));
      // The message's content is empty in practice; if a provider fills it, its
      // texts are the blocks' first texts.
      walker w(ev.slots, ev.non_text);
      auto s = w.at("message");
      walk_anthropic_message_content(w, *message);
      for (auto& slot : ev.slots) {
        const auto form = slot.role == slot_role::prose       ? delta_form::anth_text
                          : slot.role == slot_role::reasoning ? delta_form::anth_thinking
                                                              : delta_form::none;
        auto* ch = channels.touch(slot.channel, trailing_index(slot.channel), form);
        if (ch == nullptr) return too_many_channels();
      }
      settle_kind(ev);
      return ev;
    }
    if (type == "message_delta") {
      ev.usage = anthropic_usage(member(o, "usage"));
      settle_kind(ev);
      return ev;
    }

    auto index = index_member(o, "index");
    if (type == "content_block_start") {
      auto* block = object_member(o, "content_block");
      if (!index || block == nullptr) return codec_error{codec_errc::unexpected_shape, {}};
      return block_start(std::move(ev), *index, *block);
    }
    if (type == "content_block_delta") {
      auto* delta = object_member(o, "delta");
      if (!index || delta == nullptr) return codec_error{codec_errc::unexpected_shape, {}};
      const auto key = channel_key("b", *index);
      auto delta_type = string_or_empty(*delta, "type");
      struct form_of {
        std::string_view type, field;
        slot_role role;
        delta_form form;
      };
      static constexpr form_of forms[] = {
          {"text_delta", "text", slot_role::prose, delta_form::anth_text},
          {"input_json_delta", "partial_json", slot_role::tool_arguments, delta_form::anth_input_json},
          {"thinking_delta", "thinking", slot_role::reasoning, delta_form::anth_thinking},
      };
      for (const auto& f : forms) {
        if (delta_type != f.type) continue;
        auto* s = string_member(*delta, f.field);
        if (s == nullptr) return codec_error{codec_errc::unexpected_shape, "/delta/" + std::string(f.field)};
        auto* ch = add_slot(ev, *s, f.role, key, *index, f.form);
        if (ch == nullptr) return too_many_channels();
        if (ch->form == delta_form::none) ch->form = f.form;
        ev.kind = event_kind::content;
        return ev;
      }
      // signature_delta: the thinking block's signature. citations_delta: a
      // citation of a document the client sent (it was scanned on the way out).
      ev.kind = delta_type == "signature_delta" || delta_type == "citations_delta" ? event_kind::other
                                                                                   : event_kind::unknown;
      return ev;
    }
    if (type == "content_block_stop") {
      if (!index) return codec_error{codec_errc::unexpected_shape, "/index"};
      channels.close(channel_key("b", *index), ev.closes);
      ev.kind = event_kind::other;
      return ev;
    }
    ev.kind = event_kind::unknown;
    return ev;
  }

  codec_result<sse_event> make_delta(const channel_state& ch, std::string_view text) const override {
    json::object delta;
    switch (ch.form) {
      case delta_form::anth_text: delta["type"] = "text_delta"; delta["text"] = text; break;
      case delta_form::anth_input_json: delta["type"] = "input_json_delta"; delta["partial_json"] = text; break;
      case delta_form::anth_thinking: delta["type"] = "thinking_delta"; delta["thinking"] = text; break;
      default: return codec_error{codec_errc::no_delta_form, {}};
    }
    json::object e;
    e["type"] = "content_block_delta";
    e["index"] = ch.owner;
    e["delta"] = std::move(delta);
    return sse_event{"content_block_delta", json::serialize(e)};
  }

 private:
  codec_result<stream_event> block_start(stream_event ev, std::uint64_t index, json::object& block) {
    const auto key = channel_key("b", index);
    auto type = string_or_empty(block, "type");
    if (type == "text" || type == "thinking") {
      const bool text = type == "text";
      // The block's initial text ("" in practice) is its first delta.
      if (auto* s = string_member(block, text ? "text" : "thinking")) {
        if (!add_slot(ev, *s, text ? slot_role::prose : slot_role::reasoning, key, index,
                      text ? delta_form::anth_text : delta_form::anth_thinking)) {
          return too_many_channels();
        }
      }
      settle_kind(ev);
      return ev;
    }
    if (type == "tool_use" || type == "server_tool_use" || type == "mcp_tool_use" ||
        type == "web_search_tool_result") {
      // The input of a tool use arrives as input_json_delta fragments (its start
      // input is {}); search results arrive whole. Texts present at the start
      // are whole leaves on channels that open and close here.
      std::vector<text_slot> found;
      walker w(found, ev.non_text);
      auto bs = w.at("content_block");
      walk_anthropic_block(w, block, {});
      std::size_t leaf = 0;
      for (auto& slot : found) {
        // The tool's name on "b<i>.n", the input's leaves on "b<i>.l<k>".
        slot.channel = slot.role == slot_role::tool_name ? channel_key("b", index) + ".n" : channel_key("b", index, ".l", leaf++);
        ev.closes.push_back(slot.channel);
        ev.slots.push_back(std::move(slot));
      }
      settle_kind(ev);
      return ev;
    }
    if (type == "redacted_thinking") {
      ev.non_text.add(media_kind::opaque);
      ev.kind = event_kind::other;
      return ev;
    }
    ev.non_text.add(media_kind::opaque);
    ev.kind = event_kind::unknown;
    return ev;
  }
};

}  // namespace

std::unique_ptr<stream_codec_impl> make_anthropic_codec() { return std::make_unique<anthropic_codec>(); }

}  // namespace customs::daemon::detail
