// OpenAI streams: chat completion chunks and Responses API events.
//
// Chat completions: every event is "data: <chunk>" without an event name,
// ending with "data: [DONE]":
//   {"id":"chatcmpl-..","object":"chat.completion.chunk","created":N,"model":M,
//    "system_fingerprint":F,"choices":[{"index":0,"delta":{"content":"Hi"},
//    "logprobs":null,"finish_reason":null}]}
// With stream_options.include_usage every chunk has "usage":null and a last
// chunk has "choices":[] and the usage. An error is a data object with "error".
//
// Responses API: "event: <type>" + "data: {"type":<type>,"sequence_number":N,...}",
// see the event table in decode() below. No [DONE]; response.completed ends it.
#include <array>

#include "daemon/dialect/response_walk.hpp"
#include "daemon/dialect/stream_impl.hpp"

#include <boost/json/serialize.hpp>

namespace customs::daemon::detail {
namespace {

class chat_codec final : public stream_codec_impl {
 public:
  codec_result<stream_event> decode(std::string_view name, std::string_view data) override {
    stream_event ev(document_storage());  // the event's nodes in one resource, freed with it
    if (take_done_marker(ev, data)) return ev;
    auto root = parse_object(ev, data);
    if (!root) return root.error();
    auto& o = **root;
    if (auto* err = member(o, "error"); (err != nullptr && !err->is_null()) || name == "error") {
      error_event(ev);
      return ev;
    }
    if (auto* choices = member(o, "choices")) {
      if (!choices->is_array()) return codec_error{codec_errc::unexpected_shape, "/choices"};
      auto& a = choices->get_array();
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!a[i].is_object()) return codec_error{codec_errc::unexpected_shape, "/choices/" + std::to_string(i)};
        if (!decode_choice(ev, a[i].get_object(), i)) return too_many_channels();
      }
      if (!a.empty() && envelope_.empty()) capture_envelope(o);
    }
    ev.usage = openai_usage(member(o, "usage"));
    settle_kind(ev);
    return ev;
  }

  codec_result<sse_event> make_delta(const channel_state& ch, std::string_view text) const override {
    json::object delta;
    switch (ch.form) {
      case delta_form::chat_content: delta["content"] = text; break;
      case delta_form::chat_refusal: delta["refusal"] = text; break;
      case delta_form::chat_reasoning: delta[ch.field] = text; break;
      case delta_form::chat_tool:
      case delta_form::chat_custom_tool: {
        json::object call;
        call["index"] = ch.sub;
        json::object fn;
        if (ch.form == delta_form::chat_tool) {
          fn["arguments"] = text;
          call["function"] = std::move(fn);
        } else {
          fn["input"] = text;
          call["custom"] = std::move(fn);
        }
        delta["tool_calls"] = json::array{std::move(call)};
        break;
      }
      case delta_form::chat_function: delta["function_call"] = json::object{{"arguments", text}}; break;
      case delta_form::chat_audio: delta["audio"] = json::object{{"transcript", text}}; break;
      default: return codec_error{codec_errc::no_delta_form, {}};
    }
    json::object chunk = envelope_;
    json::object choice;
    choice["index"] = ch.owner;
    choice["delta"] = std::move(delta);
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = nullptr;
    chunk["choices"] = json::array{std::move(choice)};
    return sse_event{{}, json::serialize(chunk)};
  }

 private:
  // The chunk's fields other than choices and usage (id, object, created, model,
  // system_fingerprint, service_tier, ...): the same on every chunk of a stream.
  void capture_envelope(const json::object& o) {
    for (const auto& kv : o) {
      if (kv.key() == "choices" || kv.key() == "usage") continue;
      envelope_.emplace(kv.key(), kv.value());
    }
  }

  // false: the channel table is full.
  bool decode_choice(stream_event& ev, json::object& choice, std::size_t position) {
    const auto ci = index_member(choice, "index").value_or(position);
    if (auto* lp = member(choice, "logprobs"); lp != nullptr && !lp->is_null()) ev.has_logprobs = true;
    if (auto* delta = object_member(choice, "delta")) {
      const auto base = channel_key("c", ci);
      if (auto* s = string_member(*delta, "content")) {
        if (!add_slot(ev, *s, slot_role::prose, base, ci, delta_form::chat_content)) return false;
      }
      if (auto* s = string_member(*delta, "refusal")) {
        if (!add_slot(ev, *s, slot_role::refusal, base + ".r", ci, delta_form::chat_refusal)) return false;
      }
      for (std::string_view field : {"reasoning_content", "reasoning"}) {
        if (auto* s = string_member(*delta, field)) {
          auto* ch = add_slot(ev, *s, slot_role::reasoning, base + ".rs", ci, delta_form::chat_reasoning);
          if (ch == nullptr) return false;
          if (ch->field.empty()) ch->field = std::string(field);
        }
      }
      if (auto* calls = array_member(*delta, "tool_calls")) {
        for (std::size_t t = 0; t < calls->size(); ++t) {
          if (!(*calls)[t].is_object()) continue;
          auto& call = (*calls)[t].get_object();
          const auto ti = index_member(call, "index").value_or(t);
          const auto key = channel_key("c", ci, ".t", ti);
          json::string* s = nullptr;
          json::string* tool = nullptr;  // the tool's name, sent whole in the call's first delta
          delta_form form = delta_form::chat_tool;
          if (auto* fn = object_member(call, "function")) {
            s = string_member(*fn, "arguments");
            tool = string_member(*fn, "name");
          } else if (auto* custom = object_member(call, "custom")) {
            s = string_member(*custom, "input");
            tool = string_member(*custom, "name");
            form = delta_form::chat_custom_tool;
          }
          if (s != nullptr) {
            auto* ch = add_slot(ev, *s, slot_role::tool_arguments, key, ci, form);
            if (ch == nullptr) return false;
            ch->sub = ti;
          }
          if (tool != nullptr && !add_whole_slot(ev, *tool, slot_role::tool_name, key + ".n", ci)) return false;
        }
      }
      if (auto* fc = object_member(*delta, "function_call")) {
        if (auto* s = string_member(*fc, "arguments")) {
          if (!add_slot(ev, *s, slot_role::tool_arguments, base + ".f", ci, delta_form::chat_function)) return false;
        }
        if (auto* n = string_member(*fc, "name")) {
          if (!add_whole_slot(ev, *n, slot_role::tool_name, base + ".f.n", ci)) return false;
        }
      }
      if (auto* audio = object_member(*delta, "audio")) {
        if (auto* s = string_member(*audio, "transcript")) {
          if (!add_slot(ev, *s, slot_role::prose, base + ".a", ci, delta_form::chat_audio)) return false;
        }
      }
    }
    if (auto* fr = member(choice, "finish_reason"); fr != nullptr && !fr->is_null()) {
      channels.close_owner(ci, ev.closes);
    }
    return true;
  }

  json::object envelope_;
};

// --- Responses API -----------------------------------------------------------

struct responses_text_event {
  std::string_view delta_type;  // "response.output_text.delta"
  std::string_view done_type;   // "response.output_text.done"
  std::string_view done_field;  // field of the done event holding the full text
  delta_form form;
  slot_role role;
  char index_letter;            // 'c' (content_index), 's' (summary_index), 0 (item level)
};

constexpr std::array<responses_text_event, 6> text_events{{
    {"response.output_text.delta", "response.output_text.done", "text", delta_form::resp_output_text,
     slot_role::prose, 'c'},
    {"response.refusal.delta", "response.refusal.done", "refusal", delta_form::resp_refusal,
     slot_role::refusal, 'c'},
    {"response.reasoning_text.delta", "response.reasoning_text.done", "text",
     delta_form::resp_reasoning_text, slot_role::reasoning, 'c'},
    {"response.reasoning_summary_text.delta", "response.reasoning_summary_text.done", "text",
     delta_form::resp_summary_text, slot_role::reasoning, 's'},
    {"response.function_call_arguments.delta", "response.function_call_arguments.done", "arguments",
     delta_form::resp_arguments, slot_role::tool_arguments, 0},
    {"response.custom_tool_call_input.delta", "response.custom_tool_call_input.done", "input",
     delta_form::resp_custom_input, slot_role::tool_arguments, 0},
}};

// Events that carry no text.
bool is_quiet_responses_event(std::string_view type) {
  static constexpr std::array<std::string_view, 4> exact{
      "response.created", "response.in_progress", "response.queued",
      "response.output_text.annotation.added"};
  for (auto e : exact) {
    if (type == e) return true;
  }
  static constexpr std::array<std::string_view, 5> prefixes{
      "response.web_search_call.", "response.file_search_call.", "response.image_generation_call.",
      "response.mcp_list_tools.", "response.code_interpreter_call."};
  for (auto p : prefixes) {
    if (type.starts_with(p)) return true;
  }
  return false;
}

// The delta form of a text found in a response.output_item.added item.
delta_form added_item_form(const text_slot& slot, bool custom_tool) {
  switch (slot.role) {
    case slot_role::tool_arguments: return custom_tool ? delta_form::resp_custom_input : delta_form::resp_arguments;
    case slot_role::refusal: return delta_form::resp_refusal;
    case slot_role::reasoning:
      return slot.channel.find(".s") != std::string::npos ? delta_form::resp_summary_text
                                                          : delta_form::resp_reasoning_text;
    default: return delta_form::resp_output_text;
  }
}

class responses_codec final : public stream_codec_impl {
 public:
  codec_result<stream_event> decode(std::string_view name, std::string_view data) override {
    stream_event ev(document_storage());  // the event's nodes in one resource, freed with it
    if (take_done_marker(ev, data)) return ev;
    auto root = parse_object(ev, data);
    if (!root) return root.error();
    auto& o = **root;
    std::string_view type = string_or_empty(o, "type");
    if (type.empty()) type = name;
    const auto seq = o.contains("sequence_number") && o.at("sequence_number").is_int64()
                         ? o.at("sequence_number").get_int64()
                         : std::int64_t{0};
    if (auto* lp = array_member(o, "logprobs"); lp != nullptr && !lp->empty()) ev.has_logprobs = true;

    // The Responses API's own error event, or an error object as in every
    // OpenAI stream (the SDKs raise on a data object with a non-null "error").
    if (type == "error" || name == "error") {
      error_event(ev);
      return ev;
    }
    // Any event with a non-null "error" (typed or not): the SDKs raise with
    // its message, whatever the type says. Every string of it is scanned.
    if (auto* err = member(o, "error"); err != nullptr && !err->is_null()) {
      error_event(ev);
      return ev;
    }
    if (type == "response.failed") {
      error_event(ev);
      if (auto* r = object_member(o, "response")) ev.usage = openai_usage(member(*r, "usage"));
      return ev;
    }
    if (auto* r = object_member(o, "response")) {
      // response.created / in_progress / queued / completed / incomplete: the
      // Response object; its output repeats full texts.
      walker w(ev.slots, ev.non_text);
      auto s = w.at("response");
      walk_responses_output(w, *r, true);
      ev.usage = openai_usage(member(*r, "usage"));
      if (type == "response.completed" || type == "response.incomplete") {
        ev.kind = event_kind::end_marker;
        channels.close_all(ev.closes);
        return ev;
      }
      if (is_quiet_responses_event(type)) {
        settle_kind(ev);
        return ev;
      }
      ev.kind = event_kind::unknown;
      return ev;
    }

    const auto oi = index_member(o, "output_index");
    for (const auto& te : text_events) {
      const bool is_delta = type == te.delta_type;
      if (!is_delta && type != te.done_type) continue;
      if (!oi) return codec_error{codec_errc::unexpected_shape, "/output_index"};
      std::string key = channel_key("o", *oi);
      std::uint64_t sub = 0;
      if (te.index_letter != 0) {
        const std::string_view index_field = te.index_letter == 'c' ? "content_index" : "summary_index";
        auto idx = index_member(o, index_field);
        if (!idx) return codec_error{codec_errc::unexpected_shape, "/" + std::string(index_field)};
        sub = *idx;
        key += '.';
        key += te.index_letter;
        key += std::to_string(sub);
      }
      const std::string_view field = is_delta ? std::string_view("delta") : te.done_field;
      auto* s = string_member(o, field);
      if (s == nullptr) return codec_error{codec_errc::unexpected_shape, "/" + std::string(field)};
      if (is_delta) {
        auto* ch = add_slot(ev, *s, te.role, key, *oi, te.form);
        if (ch == nullptr) return too_many_channels();
        note_delta(*ch, o, sub, seq);
      } else {
        add_aggregate(ev, *s, te.role, key);
        channels.close(key, ev.closes);
      }
      settle_kind(ev);
      return ev;
    }

    if (type == "response.content_part.added" || type == "response.content_part.done" ||
        type == "response.reasoning_summary_part.added" || type == "response.reasoning_summary_part.done") {
      const bool summary = type.starts_with("response.reasoning_summary_part.");
      const bool added = type.ends_with(".added");
      auto idx = index_member(o, summary ? "summary_index" : "content_index");
      auto* part = object_member(o, "part");
      if (!oi || !idx || part == nullptr) return codec_error{codec_errc::unexpected_shape, {}};
      const auto key = channel_key("o", *oi, summary ? ".s" : ".c", *idx);
      auto part_type = string_or_empty(*part, "type");
      json::string* s = string_member(*part, "text");
      slot_role role = summary || part_type == "reasoning_text" ? slot_role::reasoning : slot_role::prose;
      delta_form form = summary                        ? delta_form::resp_summary_text
                        : part_type == "reasoning_text" ? delta_form::resp_reasoning_text
                                                        : delta_form::resp_output_text;
      if (s == nullptr) {
        if ((s = string_member(*part, "refusal")) != nullptr) {
          role = slot_role::refusal;
          form = delta_form::resp_refusal;
        }
      }
      if (s == nullptr) {
        ev.non_text.add(media_kind::opaque);
      } else if (added) {
        // Text in an added part is the part's initial text: a delta.
        auto* ch = add_slot(ev, *s, role, key, *oi, form);
        if (ch == nullptr) return too_many_channels();
        note_delta(*ch, o, *idx, seq);
      } else {
        add_aggregate(ev, *s, role, key);
      }
      if (!added) channels.close(key, ev.closes);
      settle_kind(ev);
      return ev;
    }

    if (type == "response.output_item.added" || type == "response.output_item.done") {
      auto* item = object_member(o, "item");
      if (!oi || item == nullptr) return codec_error{codec_errc::unexpected_shape, {}};
      const bool added = type.ends_with(".added");
      walker w(ev.slots, ev.non_text);
      auto s = w.at("item");
      walk_responses_item(w, *item, *oi, !added);
      if (added) {
        // An added item's texts are its initial texts: open their channels.
        const auto item_id = string_or_empty(*item, "id");
        const bool custom = string_or_empty(*item, "type") == "custom_tool_call";
        for (auto& slot : ev.slots) {
          if (slot.aggregate) continue;  // a tool's name: a whole text, no channel of deltas
          auto* ch = channels.touch(slot.channel, *oi, added_item_form(slot, custom));
          if (ch == nullptr) return too_many_channels();
          ch->sub = trailing_index(slot.channel);
          ch->field = std::string(item_id);
          ch->sequence_number = seq;
        }
      } else {
        channels.close_owner(*oi, ev.closes);
      }
      settle_kind(ev);
      return ev;
    }

    if (is_quiet_responses_event(type)) {
      if (type.starts_with("response.image_generation_call.partial_image")) ev.non_text.add(media_kind::image);
      ev.kind = event_kind::other;
      return ev;
    }
    ev.kind = event_kind::unknown;
    return ev;
  }

  codec_result<sse_event> make_delta(const channel_state& ch, std::string_view text) const override {
    std::string_view type;
    std::string_view index_field;
    switch (ch.form) {
      case delta_form::resp_output_text: type = "response.output_text.delta"; index_field = "content_index"; break;
      case delta_form::resp_refusal: type = "response.refusal.delta"; index_field = "content_index"; break;
      case delta_form::resp_reasoning_text: type = "response.reasoning_text.delta"; index_field = "content_index"; break;
      case delta_form::resp_summary_text:
        type = "response.reasoning_summary_text.delta";
        index_field = "summary_index";
        break;
      case delta_form::resp_arguments: type = "response.function_call_arguments.delta"; break;
      case delta_form::resp_custom_input: type = "response.custom_tool_call_input.delta"; break;
      default: return codec_error{codec_errc::no_delta_form, {}};
    }
    json::object e;
    e["type"] = type;
    e["sequence_number"] = ch.sequence_number;
    e["item_id"] = ch.field;
    e["output_index"] = ch.owner;
    if (!index_field.empty()) e[index_field] = ch.sub;
    e["delta"] = text;
    if (ch.form == delta_form::resp_output_text) e["logprobs"] = json::array{};
    return sse_event{std::string(type), json::serialize(e)};
  }

 private:
  void note_delta(channel_state& ch, const json::object& o, std::uint64_t sub, std::int64_t seq) {
    ch.sub = sub;
    ch.sequence_number = seq;
    if (auto id = string_or_empty(o, "item_id"); !id.empty() && ch.field != id) ch.field = std::string(id);
  }

  static void add_aggregate(stream_event& ev, json::string& s, slot_role role, std::string key) {
    text_slot slot;
    slot.text = std::string_view(s.data(), s.size());
    slot.role = role;
    slot.aggregate = true;
    slot.channel = std::move(key);
    slot.target = &s;
    ev.slots.push_back(std::move(slot));
  }
};

}  // namespace

std::unique_ptr<stream_codec_impl> make_openai_chat_codec() { return std::make_unique<chat_codec>(); }
std::unique_ptr<stream_codec_impl> make_openai_responses_codec() { return std::make_unique<responses_codec>(); }

}  // namespace customs::daemon::detail
