#pragma once
// Internal to the dialect codecs: parsing with the codecs' limits, typed member
// look-ups, and a walker that records text slots with their JSON pointer and
// reports the first error with the pointer of the offending value.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/value.hpp>

#include "daemon/dialect/codec_error.hpp"
#include "daemon/dialect/text_slot.hpp"

namespace customs::daemon::detail {

namespace json = boost::json;

// Nesting limit for bodies and events. Provider APIs nest a handful of levels;
// tool arguments and JSON schemas nest deeper, but not past this. The walkers
// recurse at most this deep.
inline constexpr std::size_t max_json_depth = 64;

// Repeated object keys. JSON parsers disagree on a key an object repeats (some
// keep the first value, some the last, some refuse), and Boost.JSON keeps the
// last: the text a codec reads need not be the text a provider or a client
// reads. So a body that repeats a key is never taken as it came:
//   - request bodies fail with duplicate_key at the second occurrence (the flow
//     is unscannable and the `unscannable` setting decides);
//   - response bodies and stream events are read (the last value of each key)
//     and the caller forwards them re-serialised from what was read, so the
//     client gets exactly the text that was scanned.
// Detection costs a counter per object while parsing and one walk over the
// parsed tree: the members objects had in the text are compared with those the
// parser kept. Only when they differ is the text parsed again to name the key.
//
// A parser that keeps its scratch memory across calls (one per stream).
class json_parser {
 public:
  json_parser();
  ~json_parser();
  json_parser(const json_parser&) = delete;
  json_parser& operator=(const json_parser&) = delete;

  // Parses one complete JSON text (trailing bytes other than whitespace are an
  // error; so is invalid UTF-8, and nesting past max_json_depth). A repeated key
  // fails with duplicate_key when `duplicates` is null; otherwise the last value
  // is kept and *duplicates says whether any key was repeated. With `numbers`,
  // the literal of every number as the text spells it is appended there, the
  // literals separated by ", " (no separator a detector pattern reads inside
  // a number, so two numbers never read as one).
  // The value is made in `sp` (the default resource when null).
  [[nodiscard]] codec_result<json::value> parse(std::string_view text, bool* duplicates = nullptr,
                                                std::string* numbers = nullptr, json::storage_ptr sp = {});

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// parse() on a parser made for this call, or on `reuse`.
[[nodiscard]] codec_result<json::value> parse_json(std::string_view text, json_parser* reuse = nullptr,
                                                   bool* duplicates = nullptr, std::string* numbers = nullptr,
                                                   json::storage_ptr sp = {});
// Storage for a whole request or response document: one monotonic resource,
// shared by the document's values and freed with the last of them, instead
// of a heap allocation per object, array and string. What a document's values
// give back (a string redaction rewrote) is freed with the document.
[[nodiscard]] json::storage_ptr document_storage();
[[nodiscard]] json::parse_options codec_parse_options() noexcept;
// The RFC 6901 pointer of the first repeated key in `text` (the second
// occurrence), or empty when no key repeats or the text is not valid JSON.
[[nodiscard]] std::string first_duplicate_key(std::string_view text);

[[nodiscard]] json::value* member(json::object& o, std::string_view key) noexcept;
// Gemini's REST API accepts both the camelCase and the snake_case form of a field.
[[nodiscard]] json::value* member(json::object& o, std::string_view key, std::string_view alt) noexcept;
[[nodiscard]] json::object* object_member(json::object& o, std::string_view key) noexcept;
[[nodiscard]] json::array* array_member(json::object& o, std::string_view key) noexcept;
[[nodiscard]] json::string* string_member(json::object& o, std::string_view key) noexcept;
// The string value of `key`, or empty when absent or not a string.
[[nodiscard]] std::string_view string_or_empty(const json::object& o, std::string_view key) noexcept;
// A non-negative integer member, or nullopt.
[[nodiscard]] std::optional<std::uint64_t> index_member(const json::object& o,
                                                        std::string_view key) noexcept;
[[nodiscard]] bool is_true(const json::object& o, std::string_view key) noexcept;

// Appends an RFC 6901 reference token (with ~0 / ~1 escapes) to `out`.
void append_pointer_token(std::string& out, std::string_view token);

class walker {
 public:
  walker(std::vector<text_slot>& slots, media_counts& media) : slots_(slots), media_(media) {}
  walker(const walker&) = delete;
  walker& operator=(const walker&) = delete;

  // One step down the path; popped when the scope ends.
  class [[nodiscard]] scope {
   public:
    explicit scope(walker& w) : w_(w) {}
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() { w_.path_.pop_back(); }

   private:
    walker& w_;
  };
  scope at(std::string_view key) {
    path_.push_back({key, 0, false});
    return scope(*this);
  }
  scope at(std::size_t index) {
    path_.push_back({{}, index, true});
    return scope(*this);
  }

  // A slot for string `s` at the current path (and, for responses, its channel).
  void add(json::string& s, slot_role role, std::string channel = {}, bool aggregate = false);
  // A slot for o[key] when it is a string; absent or null is fine; any other
  // type fails with unexpected_shape.
  [[nodiscard]] bool optional_text(json::object& o, std::string_view key, slot_role role);
  // A slot for o[key], which must be a string (else unexpected_shape at key).
  [[nodiscard]] bool required_text(json::object& o, std::string_view key, slot_role role);
  // Every string leaf of `v` (object values and array elements, recursively);
  // object keys are identifiers, not slots.
  void leaves(json::value& v, slot_role role, const std::string& channel = {});
  // Every string under a "description" key, recursively (tool definitions and
  // their JSON schemas): the prose of a definition, not its identifiers.
  void descriptions(json::value& v);

  void media(media_kind k, std::uint32_t n = 1) noexcept { media_.add(k, n); }

  // An inline file in string `s` (at the current path): a data: URL when
  // `declared` is empty, otherwise base64 of the declared media type. A text
  // (see blob.hpp) becomes an attachment slot holding the decoded text (written
  // back re-encoded). Anything else is left alone. Either way sweep() scans the
  // string itself as well (a string that only claims to be base64 is still
  // read). Fails (false) with undecodable_text (a declared text that does not
  // decode to UTF-8) or too_much_text (past the budget, see set_blob_budget).
  [[nodiscard]] bool blob(json::string& s, std::string_view declared);
  // blob() on o[key] when it is a string.
  [[nodiscard]] bool blob_member(json::object& o, std::string_view key, std::string_view declared);
  // String `s` is a value the codec reads as a request option (an entry of the
  // Responses API's include[]): sweep() scans it as an identifier, fixed, so
  // that no replacement can change what the request asks for.
  void option(json::string& s) { options_.push_back(&s); }
  // Decoded text a body may carry in all (each blob read as text counts).
  void set_blob_budget(std::size_t bytes) noexcept { blob_budget_ = bytes; }

  // After the dialect's walk: a slot for every string of `root` that is not a
  // slot yet, in document order (role field, or identifier under a key the APIs
  // constrain: name, model, id, type, role, object, media types, and keys
  // ending in "_id" / "Id", and strings named by option(); fixed when nothing
  // can be written into it), and one key slot holding every distinct object
  // key, one per line, in order of first appearance.
  // Inline files met on the way (data: URLs anywhere, base64 "data" beside a
  // media type) are read as blob() reads them. False on blob()'s errors.
  [[nodiscard]] bool sweep(json::value& root);

  // Records the first error with the current path; returns false for `return w.fail(...)`.
  [[nodiscard]] bool fail(codec_errc e);
  [[nodiscard]] bool failed() const noexcept { return error_.has_value(); }
  [[nodiscard]] codec_error take_error() {
    return error_ ? std::move(*error_) : codec_error{codec_errc::unexpected_shape, pointer()};
  }

  [[nodiscard]] std::string pointer() const;

 private:
  struct segment {
    std::string_view key;
    std::size_t index;
    bool is_index;
  };
  struct sweep_state {
    std::vector<const json::string*> taken;    // slot targets (sorted)
    std::vector<const json::string*> decoded;  // strings read as inline text files (sorted)
    std::vector<const json::string*> options;  // strings read as request options (sorted)
    std::vector<std::string_view> keys;        // every key, in order
  };
  [[nodiscard]] bool sweep_value(json::value& v, std::string_view key, sweep_state& st);

  std::vector<text_slot>& slots_;
  media_counts& media_;
  std::vector<segment> path_;
  std::optional<codec_error> error_;
  std::vector<const json::string*> decoded_;  // strings blob() read as text
  std::vector<const json::string*> options_;  // strings option() named
  std::size_t blob_budget_ = 0;
};

// How a typed content part ({"type": T, ...}) is read: the string field that
// holds its text, or (text_field empty) the media kind it counts as.
struct part_rule {
  std::string_view type;
  std::string_view text_field;
  slot_role role = slot_role::prose;
  media_kind media = media_kind::file;
};

// Walks one typed part by `rules`; a type no rule names fails with
// unknown_part_type at /type.
[[nodiscard]] bool walk_typed_part(walker& w, json::value& part, std::span<const part_rule> rules);

}  // namespace customs::daemon::detail
