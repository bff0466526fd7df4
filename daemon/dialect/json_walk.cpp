#include "daemon/dialect/json_walk.hpp"


namespace customs::daemon::detail {

json::parse_options codec_parse_options() noexcept {
  json::parse_options opt;
  opt.max_depth = max_json_depth;
  return opt;
}

codec_result<json::value> parse_json(std::string_view text, json::parser* reuse) {
  boost::system::error_code ec;
  if (reuse != nullptr) {
    reuse->reset();
    reuse->write(text.data(), text.size(), ec);
    if (ec) return codec_error{codec_errc::malformed_json, {}};
    return reuse->release();
  }
  json::parser p({}, codec_parse_options());
  p.write(text.data(), text.size(), ec);
  if (ec) return codec_error{codec_errc::malformed_json, {}};
  return p.release();
}

json::value* member(json::object& o, std::string_view key) noexcept {
  auto it = o.find(key);
  return it == o.end() ? nullptr : &it->value();
}

json::value* member(json::object& o, std::string_view key, std::string_view alt) noexcept {
  if (auto* v = member(o, key)) return v;
  return member(o, alt);
}

json::object* object_member(json::object& o, std::string_view key) noexcept {
  auto* v = member(o, key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

json::array* array_member(json::object& o, std::string_view key) noexcept {
  auto* v = member(o, key);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}

json::string* string_member(json::object& o, std::string_view key) noexcept {
  auto* v = member(o, key);
  return v != nullptr && v->is_string() ? &v->get_string() : nullptr;
}

std::string_view string_or_empty(const json::object& o, std::string_view key) noexcept {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  const auto& s = it->value().get_string();
  return {s.data(), s.size()};
}

std::optional<std::uint64_t> index_member(const json::object& o, std::string_view key) noexcept {
  auto it = o.find(key);
  if (it == o.end()) return std::nullopt;
  const auto& v = it->value();
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  return std::nullopt;
}

bool is_true(const json::object& o, std::string_view key) noexcept {
  auto it = o.find(key);
  return it != o.end() && it->value().is_bool() && it->value().get_bool();
}

void append_pointer_token(std::string& out, std::string_view token) {
  out += '/';
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
}

std::string walker::pointer() const {
  std::string out;
  for (const auto& s : path_) {
    if (s.is_index) {
      out += '/';
      out += std::to_string(s.index);
    } else {
      append_pointer_token(out, s.key);
    }
  }
  return out;
}

void walker::add(json::string& s, slot_role role, std::string channel, bool aggregate) {
  text_slot slot;
  slot.text = std::string_view(s.data(), s.size());
  slot.role = role;
  slot.aggregate = aggregate;
  slot.channel = std::move(channel);
  slot.where = pointer();
  slot.target = &s;
  slots_.push_back(std::move(slot));
}

bool walker::optional_text(json::object& o, std::string_view key, slot_role role) {
  auto* v = member(o, key);
  if (v == nullptr || v->is_null()) return true;
  auto s = at(key);
  if (!v->is_string()) return fail(codec_errc::unexpected_shape);
  add(v->get_string(), role);
  return true;
}

bool walker::required_text(json::object& o, std::string_view key, slot_role role) {
  auto* t = string_member(o, key);
  auto s = at(key);
  if (t == nullptr) return fail(codec_errc::unexpected_shape);
  add(*t, role);
  return true;
}

bool walk_typed_part(walker& w, json::value& part, std::span<const part_rule> rules) {
  if (!part.is_object()) return w.fail(codec_errc::unexpected_shape);
  auto& p = part.get_object();
  const auto type = string_or_empty(p, "type");
  for (const auto& r : rules) {
    if (type != r.type) continue;
    if (r.text_field.empty()) {
      w.media(r.media);
      return true;
    }
    return w.required_text(p, r.text_field, r.role);
  }
  auto s = w.at("type");
  return w.fail(codec_errc::unknown_part_type);
}

void walker::leaves(json::value& v, slot_role role, const std::string& channel) {
  // Depth is bounded by the parser's max_depth.
  if (v.is_string()) {
    add(v.get_string(), role, channel);
  } else if (v.is_object()) {
    for (auto& kv : v.get_object()) {
      auto s = at(kv.key());
      leaves(kv.value(), role, channel);
    }
  } else if (v.is_array()) {
    auto& a = v.get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto s = at(i);
      leaves(a[i], role, channel);
    }
  }
}

void walker::descriptions(json::value& v) {
  if (v.is_object()) {
    for (auto& kv : v.get_object()) {
      auto s = at(kv.key());
      if (kv.key() == "description" && kv.value().is_string()) {
        add(kv.value().get_string(), slot_role::tool_definition);
      } else {
        descriptions(kv.value());
      }
    }
  } else if (v.is_array()) {
    auto& a = v.get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto s = at(i);
      descriptions(a[i]);
    }
  }
}

bool walker::fail(codec_errc e) {
  if (!error_) error_ = codec_error{e, pointer()};
  return false;
}

}  // namespace customs::daemon::detail
