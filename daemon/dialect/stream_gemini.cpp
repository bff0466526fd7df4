// Gemini streamGenerateContent?alt=sse: "data: <GenerateContentResponse>" events,
// no event names, no end marker (the body ends):
//   {"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"index":0}],
//    "usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":1,"totalTokenCount":9},
//    "modelVersion":"gemini-2.0-flash","responseId":"..."}
// The last chunk of a candidate has "finishReason". usageMetadata is cumulative.
// An error mid-stream is {"error":{"code":N,"message":M,"status":S}}.
#include <utility>

#include "daemon/dialect/request_walk.hpp"
#include "daemon/dialect/response_walk.hpp"
#include "daemon/dialect/stream_impl.hpp"

#include <boost/json/serialize.hpp>

namespace customs::daemon::detail {
namespace {

// Candidates a flow may report whole-part counters for (n of "c<i>.p<n>").
constexpr std::size_t max_candidates = 64;

class gemini_codec final : public stream_codec_impl {
 public:
  codec_result<stream_event> decode(std::string_view /*name*/, std::string_view data) override {
    stream_event ev(document_storage());  // the event's nodes in one resource, freed with it
    auto root = parse_object(ev, data);
    if (!root) return root.error();
    auto& o = **root;
    if (auto* err = member(o, "error"); err != nullptr && !err->is_null()) {
      error_event(ev);
      return ev;
    }
    if (auto* cands = member(o, "candidates")) {
      if (!cands->is_array()) return codec_error{codec_errc::unexpected_shape, "/candidates"};
      auto& a = cands->get_array();
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!a[i].is_object()) return codec_error{codec_errc::unexpected_shape, "/candidates/" + std::to_string(i)};
        if (auto e = decode_candidate(ev, a[i].get_object(), i); e) return *e;
      }
      if (!ev.slots.empty() && !envelope_captured_) capture_envelope(o);
    }
    ev.usage = gemini_usage(member(o, "usageMetadata"));
    settle_kind(ev);
    return ev;
  }

  codec_result<sse_event> make_delta(const channel_state& ch, std::string_view text) const override {
    if (ch.form != delta_form::gem_text && ch.form != delta_form::gem_thought) {
      return codec_error{codec_errc::no_delta_form, {}};
    }
    json::object part;
    part["text"] = text;
    if (ch.form == delta_form::gem_thought) part["thought"] = true;
    json::object content;
    content["parts"] = json::array{std::move(part)};
    content["role"] = "model";
    json::object cand;
    cand["content"] = std::move(content);
    cand["index"] = ch.owner;
    json::object chunk;
    chunk["candidates"] = json::array{std::move(cand)};
    for (const auto& kv : envelope_) chunk.emplace(kv.key(), kv.value());
    return sse_event{{}, json::serialize(chunk)};
  }

 private:
  // modelVersion, responseId, createTime...: the fields other than candidates and
  // usageMetadata, the same on every chunk.
  void capture_envelope(const json::object& o) {
    envelope_captured_ = true;
    for (const auto& kv : o) {
      if (kv.key() == "candidates" || kv.key() == "usageMetadata" || kv.key() == "promptFeedback") continue;
      envelope_.emplace(kv.key(), kv.value());
    }
  }

  // The next whole-part number of candidate `ci`; nullopt past max_candidates.
  std::optional<std::uint64_t> next_part(std::uint64_t ci) {
    for (auto& [c, n] : part_counters_) {
      if (c == ci) return n++;
    }
    if (part_counters_.size() >= max_candidates) return std::nullopt;
    part_counters_.emplace_back(ci, 1);
    return 0;
  }

  // Texts of a part that arrives whole: leaf channels that open and close here
  // ("c<i>.p<n>.l<k>"), and the name of a called tool ("c<i>.p<n>.n").
  std::optional<codec_error> add_whole(stream_event& ev, std::uint64_t ci, json::value* v, slot_role role,
                                       json::string* tool = nullptr) {
    auto n = next_part(ci);
    if (!n) return too_many_channels();
    const std::string base = channel_key("c", ci, ".p", *n);
    if (v != nullptr) {
      std::vector<text_slot> leaves;
      walker w(leaves, ev.non_text);
      w.leaves(*v, role);
      for (std::size_t k = 0; k < leaves.size(); ++k) {
        leaves[k].where.clear();
        leaves[k].channel = base + ".l" + std::to_string(k);
        ev.closes.push_back(leaves[k].channel);
        ev.slots.push_back(std::move(leaves[k]));
      }
    }
    if (tool != nullptr) {
      text_slot slot;
      slot.text = std::string_view(tool->data(), tool->size());
      slot.role = slot_role::tool_name;
      slot.channel = base + ".n";
      slot.target = tool;
      ev.closes.push_back(slot.channel);
      ev.slots.push_back(std::move(slot));
    }
    return std::nullopt;
  }

  std::optional<codec_error> decode_candidate(stream_event& ev, json::object& cand, std::size_t position) {
    const auto ci = index_member(cand, "index").value_or(position);
    if (auto* lp = member(cand, "logprobsResult"); lp != nullptr && !lp->is_null()) ev.has_logprobs = true;
    if (auto* content = object_member(cand, "content")) {
      if (auto* parts = array_member(*content, "parts")) {
        for (auto& pv : *parts) {
          if (!pv.is_object()) {
            ev.non_text.add(media_kind::opaque);
            continue;
          }
          auto& p = pv.get_object();
          if (auto* t = string_member(p, "text")) {
            const bool thought = is_true(p, "thought");
            auto key = thought ? channel_key("c", ci) + ".th" : channel_key("c", ci);
            if (!add_slot(ev, *t, thought ? slot_role::reasoning : slot_role::prose, key, ci,
                          thought ? delta_form::gem_thought : delta_form::gem_text)) {
              return too_many_channels();
            }
          } else if (auto* fc = object_member(p, "functionCall")) {
            json::string* name = string_member(*fc, "name");
            json::value* args = member(*fc, "args");
            if (name != nullptr || args != nullptr) {
              if (auto e = add_whole(ev, ci, args, slot_role::structured_leaf, name)) return e;
            }
          } else if (auto* code = object_member(p, "executableCode")) {
            if (auto* c = member(*code, "code")) {
              if (auto e = add_whole(ev, ci, c, slot_role::prose)) return e;
            }
          } else if (auto* res = object_member(p, "codeExecutionResult")) {
            if (auto* out = member(*res, "output")) {
              if (auto e = add_whole(ev, ci, out, slot_role::prose)) return e;
            }
          } else if (auto* d = object_member(p, "inlineData")) {
            ev.non_text.add(media_of_mime(string_or_empty(*d, "mimeType")));
          } else if (auto* f = object_member(p, "fileData")) {
            ev.non_text.add(media_of_mime(string_or_empty(*f, "mimeType")));
          } else {
            ev.non_text.add(media_kind::opaque);
          }
        }
      }
    }
    if (!string_or_empty(cand, "finishReason").empty()) channels.close_owner(ci, ev.closes);
    return std::nullopt;
  }

  json::object envelope_;
  bool envelope_captured_ = false;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> part_counters_;
};

}  // namespace

std::unique_ptr<stream_codec_impl> make_gemini_codec() { return std::make_unique<gemini_codec>(); }

}  // namespace customs::daemon::detail
