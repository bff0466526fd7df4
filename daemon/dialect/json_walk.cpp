#include "daemon/dialect/json_walk.hpp"

#include "daemon/dialect/blob.hpp"

#include <algorithm>
#include <cmath>

#include <unordered_set>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value_stack.hpp>


namespace customs::daemon::detail {

json::parse_options codec_parse_options() noexcept {
  json::parse_options opt;
  opt.max_depth = max_json_depth;
  return opt;
}

namespace {

// A Boost.JSON parse handler that builds the value as json::parser does and
// counts the members every object had in the text.
struct counting_handler {
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  // Spelled out: basic_parser constructs its handler from the arguments after
  // the options (aggregate initialization from parentheses is C++20, which
  // clang 14, the fuzz build's compiler, does not implement).
  explicit counting_handler(json::storage_ptr sp) : st(std::move(sp)) {}

  json::value_stack st;
  std::size_t members = 0;
  std::string* numbers = nullptr;  // number literals, when asked for
  bool in_number = false;          // a literal's first part was appended

  void number_text(json::string_view s, bool last) {
    if (numbers == nullptr) return;
    if (!in_number && !numbers->empty()) *numbers += ", ";
    numbers->append(s.data(), s.size());
    in_number = !last;
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    members += n;
    st.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    st.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number_text(s, false);
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view s, json::error_code&) {
    number_text(s, true);
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view s, json::error_code&) {
    number_text(s, true);
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    number_text(s, true);
    // A number beyond a double's range parses as infinity, which no JSON text
    // can hold: a rewritten body would carry "Infinity". Such bodies are
    // malformed.
    if (!std::isfinite(d)) {
      ec = json::error::exponent_overflow;
      return false;
    }
    st.push_double(d);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

// Members of every object in `v` (depth bounded by the parser's max_depth).
std::size_t kept_members(const json::value& v) noexcept {
  std::size_t n = 0;
  if (v.is_object()) {
    const auto& o = v.get_object();
    n += o.size();
    for (const auto& kv : o) {
      if (kv.value().is_structured()) n += kept_members(kv.value());
    }
  } else if (v.is_array()) {
    for (const auto& e : v.get_array()) {
      if (e.is_structured()) n += kept_members(e);
    }
  }
  return n;
}

// Finds the first repeated key: a stack of the open containers, each object
// with the keys seen so far (only run on a text known to repeat one).
struct duplicate_finder {
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  struct frame {
    bool object = false;
    std::vector<std::string> keys;  // object: keys so far, the current one last
    std::size_t count = 0;          // array: elements begun
  };
  std::vector<frame> stack;
  std::string key;        // the key being read
  bool in_scalar = false; // a string or number began (its parts are not new elements)
  std::string found;      // the pointer, once found

  void begin_value() {
    if (!stack.empty() && !stack.back().object) ++stack.back().count;
  }
  bool scalar_part() {
    if (!in_scalar) begin_value();
    in_scalar = true;
    return true;
  }
  bool scalar_end() {
    if (!in_scalar) begin_value();
    in_scalar = false;
    return true;
  }
  std::string pointer() const {
    std::string out;
    for (const auto& f : stack) {
      if (f.object) {
        if (!f.keys.empty()) append_pointer_token(out, f.keys.back());
      } else {
        out += '/';
        out += std::to_string(f.count == 0 ? 0 : f.count - 1);
      }
    }
    return out;
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    begin_value();
    stack.push_back({true, {}, 0});
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    stack.pop_back();
    return true;
  }
  bool on_array_begin(json::error_code&) {
    begin_value();
    stack.push_back({false, {}, 0});
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    stack.pop_back();
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    key.append(s.data(), s.size());
    auto& keys = stack.back().keys;
    const bool repeated = std::find(keys.begin(), keys.end(), key) != keys.end();
    keys.push_back(std::move(key));
    key.clear();
    if (!repeated) return true;
    found = pointer();
    ec = json::error::extra_data;  // any error: stop here
    return false;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return scalar_part(); }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return scalar_end(); }
  bool on_number_part(json::string_view, json::error_code&) { return scalar_part(); }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return scalar_end(); }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return scalar_end(); }
  bool on_double(double, json::string_view, json::error_code&) { return scalar_end(); }
  bool on_bool(bool, json::error_code&) { return scalar_end(); }
  bool on_null(json::error_code&) { return scalar_end(); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

}  // namespace

struct json_parser::impl {
  json::basic_parser<counting_handler> p{codec_parse_options(), json::storage_ptr()};
};

json_parser::json_parser() : impl_(std::make_unique<impl>()) {}
json_parser::~json_parser() = default;

codec_result<json::value> json_parser::parse(std::string_view text, bool* duplicates, std::string* numbers,
                                             json::storage_ptr sp) {
  auto& p = impl_->p;
  p.reset();
  p.handler().st.reset(std::move(sp));
  p.handler().members = 0;
  p.handler().numbers = numbers;
  p.handler().in_number = false;
  json::error_code ec;
  const std::size_t n = p.write_some(false, text.data(), text.size(), ec);
  if (ec || n < text.size() || !p.done()) return codec_error{codec_errc::malformed_json, {}};
  json::value v = p.handler().st.release();
  const bool repeated = kept_members(v) != p.handler().members;
  if (duplicates != nullptr) {
    *duplicates = repeated;
  } else if (repeated) {
    return codec_error{codec_errc::duplicate_key, first_duplicate_key(text)};
  }
  return v;
}

codec_result<json::value> parse_json(std::string_view text, json_parser* reuse, bool* duplicates,
                                     std::string* numbers, json::storage_ptr sp) {
  if (reuse != nullptr) return reuse->parse(text, duplicates, numbers, std::move(sp));
  json_parser p;
  return p.parse(text, duplicates, numbers, std::move(sp));
}

json::storage_ptr document_storage() { return json::make_shared_resource<json::monotonic_resource>(); }

std::string first_duplicate_key(std::string_view text) {
  json::basic_parser<duplicate_finder> p(codec_parse_options());
  json::error_code ec;
  p.write_some(false, text.data(), text.size(), ec);
  return p.handler().found;
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

namespace {

bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Keys whose string values the APIs constrain to identifiers or enumerations.
bool identifier_key(std::string_view key) noexcept {
  static constexpr std::string_view exact[] = {"name", "model", "id", "type", "role", "object",
                                               "mimeType", "mime_type", "media_type"};
  for (auto k : exact) {
    if (key == k) return true;
  }
  return ends_with(key, "_id") || ends_with(key, "Id");
}

// Bytes decoded to sniff whether a blob is text.
constexpr std::size_t sniff_bytes = 1024;

}  // namespace

bool walker::blob(json::string& s, std::string_view declared) {
  const std::string_view value(s.data(), s.size());
  std::string_view encoded = value;
  std::string media_type(declared);
  bool base64 = true;
  slot_form form = slot_form::base64;
  if (declared.empty()) {
    auto url = parse_data_url(value);
    if (!url) return true;  // a URL or an id: sweep() scans it as a field
    form = slot_form::data_url;
    base64 = url->base64;
    encoded = url->data;
    media_type = url->media_type.empty() ? "text/plain" : std::string(url->media_type);
    media_type += url->params;
  }
  const bool declared_text = textual_media_type(media_type);
  if (!declared_text) {
    // Sniff: a text labelled as something else is still text.
    const auto head = base64 ? decode_base64(encoded, sniff_bytes)
                             : std::optional<std::string>(percent_decode(encoded.substr(0, sniff_bytes)));
    if (!head || !looks_like_text(*head, head->size() >= sniff_bytes || (!base64 && encoded.size() > sniff_bytes))) {
      return true;
    }
  }
  // Decoding stops one byte past the budget: a longer text is not read at all.
  auto text = base64 ? decode_base64(encoded, blob_budget_ + 1)
                     : std::optional<std::string>(percent_decode(encoded));
  const bool over = text && text->size() > blob_budget_;
  if (!text || !(over ? valid_utf8_prefix(*text) : valid_utf8(*text))) {
    if (!declared_text) return true;  // sniffed only: binary after all
    return fail(codec_errc::undecodable_text);
  }
  if (over) return fail(codec_errc::too_much_text);
  blob_budget_ -= text->size();
  text_slot slot;
  slot.owned = std::make_shared<std::string>(std::move(*text));
  slot.text = *slot.owned;
  slot.role = slot_role::attachment;
  slot.where = pointer();
  slot.target = &s;
  slot.form = form;
  slot.media_type = std::move(media_type);
  slot.payload = static_cast<std::size_t>(encoded.data() - value.data());
  slots_.push_back(std::move(slot));
  decoded_.push_back(&s);
  return true;
}

bool walker::blob_member(json::object& o, std::string_view key, std::string_view declared) {
  auto* v = member(o, key);
  if (v == nullptr || !v->is_string()) return true;
  auto sc = at(key);
  return blob(v->get_string(), declared);
}

namespace {

bool is_data_url(const json::string& s) noexcept {
  if (s.size() < 5) return false;
  for (std::size_t i = 0; i < 5; ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != "data:"[i]) return false;
  }
  return true;
}

bool taken_by(const std::vector<const json::string*>& taken, const json::string* s) {
  return std::binary_search(taken.begin(), taken.end(), s, std::less<const json::string*>());
}

// The media type an object declares for its "data" member (Gemini inlineData,
// Anthropic sources, audio parts), or empty.
std::string declared_media_type(const json::object& o) {
  for (std::string_view k : {"mimeType", "mime_type", "media_type"}) {
    if (auto t = string_or_empty(o, k); !t.empty()) return std::string(t);
  }
  if (auto f = string_or_empty(o, "format"); !f.empty()) return "audio/" + std::string(f);
  return {};
}

}  // namespace

bool walker::sweep_value(json::value& v, std::string_view key, sweep_state& st) {
  if (v.is_string()) {
    auto& str = v.get_string();
    if (taken_by(st.taken, &str)) return true;
    // An inline file's own string (base64, a data: URL) is scanned as it is
    // too, but nothing is written into it: its text is written back through
    // its attachment slot.
    bool fixed = taken_by(st.decoded, &str);
    if (!fixed && is_data_url(str)) {
      // A data: URL wherever it is: its text (if it is text) is scanned decoded.
      const auto before = decoded_.size();
      if (!blob(str, {})) return false;
      fixed = decoded_.size() > before;
    }
    const bool ident = identifier_key(key) || taken_by(st.options, &str);
    add(str, ident ? slot_role::identifier : slot_role::field);
    if (ident || fixed) slots_.back().form = slot_form::fixed;
  } else if (v.is_object()) {
    auto& o = v.get_object();
    const std::string declared = o.contains("data") ? declared_media_type(o) : std::string();
    for (auto& kv : o) {
      st.keys.push_back(kv.key());
      auto sc = at(kv.key());
      bool fixed = false;
      if (!declared.empty() && kv.key() == "data" && kv.value().is_string() &&
          !taken_by(st.taken, &kv.value().get_string()) && !taken_by(st.decoded, &kv.value().get_string())) {
        // base64 data beside a media type, wherever it is: decoded like the
        // walkers' inline files.
        const auto before = decoded_.size();
        if (!blob(kv.value().get_string(), declared)) return false;
        fixed = decoded_.size() > before;
      }
      if (!sweep_value(kv.value(), kv.key(), st)) return false;
      if (fixed) slots_.back().form = slot_form::fixed;
      // An audio "format" beside the data says how the data is read: a
      // redaction written into it would change that (an empty format leaves
      // the data undecoded), so it is an identifier, as a media type is.
      if (!declared.empty() && kv.key() == "format" && kv.value().is_string() && !slots_.empty() &&
          slots_.back().target == &kv.value().get_string()) {
        slots_.back().role = slot_role::identifier;
        slots_.back().form = slot_form::fixed;
      }
    }
  } else if (v.is_array()) {
    auto& a = v.get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto sc = at(i);
      if (!sweep_value(a[i], key, st)) return false;
    }
  }
  return true;
}

bool walker::sweep(json::value& root) {
  sweep_state st;
  st.taken.reserve(slots_.size());
  for (const auto& s : slots_) {
    // Attachment slots hold decoded text: their own strings are swept too.
    if (s.target != nullptr && s.role != slot_role::attachment) st.taken.push_back(s.target);
  }
  std::sort(st.taken.begin(), st.taken.end(), std::less<const json::string*>());
  st.decoded = decoded_;
  std::sort(st.decoded.begin(), st.decoded.end(), std::less<const json::string*>());
  st.options = options_;
  std::sort(st.options.begin(), st.options.end(), std::less<const json::string*>());
  if (!sweep_value(root, {}, st)) return false;
  // Every distinct key once, in order of first appearance.
  std::unordered_set<std::string_view> seen;
  seen.reserve(st.keys.size());
  auto owned = std::make_shared<std::string>();
  for (auto k : st.keys) {
    if (!seen.insert(k).second) continue;
    if (!owned->empty()) *owned += '\n';
    owned->append(k.data(), k.size());
  }
  if (owned->empty()) return true;
  text_slot slot;
  slot.owned = std::move(owned);
  slot.text = *slot.owned;
  slot.role = slot_role::key;
  slot.form = slot_form::fixed;
  slots_.push_back(std::move(slot));
  return true;
}

bool walker::fail(codec_errc e) {
  if (!error_) error_ = codec_error{e, pointer()};
  return false;
}

}  // namespace customs::daemon::detail
