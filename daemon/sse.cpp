#include "daemon/sse.hpp"

#include <cstring>

namespace customs::daemon {
namespace {

constexpr std::string_view bom = "\xEF\xBB\xBF";

// Position of the first '\r' or '\n' in s from `from`, or npos.
std::size_t find_line_end(std::string_view s, std::size_t from) noexcept {
  const char* p = s.data() + from;
  const char* end = s.data() + s.size();
  for (; p != end; ++p) {
    if (*p == '\n' || *p == '\r') return static_cast<std::size_t>(p - s.data());
  }
  return std::string_view::npos;
}

}  // namespace

sse_parser::sse_parser(std::size_t max_event_bytes) : max_(max_event_bytes) {
  raw_.reserve(max_ < 4096 ? max_ : 4096);
}

void sse_parser::reset() {
  start_block();
  after_cr_ = false;
  at_stream_start_ = true;
}

void sse_parser::start_block() {
  raw_.clear();
  data_.clear();
  line_begin_ = 0;
  event_begin_ = event_end_ = id_begin_ = id_end_ = 0;
  retry_.reset();
  has_data_ = has_id_ = has_event_ = false;
  blank_pending_ = false;
  delivered_ = false;
  event_ = sse_block{};
}

std::size_t sse_parser::pending_bytes() const noexcept { return delivered_ ? 0 : raw_.size(); }

sse_parser::result sse_parser::feed(std::string_view bytes) {
  if (delivered_) start_block();
  std::size_t pos = 0;
  if (after_cr_ && !bytes.empty()) {
    after_cr_ = false;
    // "\r\n" split between two pieces: the '\n' belongs to the line end already
    // counted; keep it in the raw bytes so that the relay stays byte-exact.
    if (bytes[0] == '\n') {
      if (raw_.size() + 1 > max_) return {status::too_large, 0};
      raw_ += '\n';
      line_begin_ = raw_.size();
      pos = 1;
    }
    if (blank_pending_) {
      blank_pending_ = false;
      complete(true);
      return {status::event, pos};
    }
  }
  while (pos < bytes.size()) {
    const std::size_t end = find_line_end(bytes, pos);
    if (end == std::string_view::npos) {
      const std::size_t n = bytes.size() - pos;
      if (raw_.size() + n > max_) return {status::too_large, pos};
      raw_.append(bytes.data() + pos, n);
      return {status::need_more, bytes.size()};
    }
    std::size_t next = end + 1;
    if (bytes[end] == '\r') {
      if (next < bytes.size()) {
        if (bytes[next] == '\n') ++next;
      } else {
        after_cr_ = true;
      }
    }
    if (raw_.size() + (next - pos) > max_) return {status::too_large, pos};
    const std::size_t line_end_in_raw = raw_.size() + (end - pos);
    raw_.append(bytes.data() + pos, next - pos);
    const std::size_t line_begin = line_begin_;
    line_begin_ = raw_.size();
    pos = next;
    if (line_end_in_raw == line_begin) {
      // A blank line ended by a '\r' that ends the piece: the next piece may
      // start with its '\n', which belongs to this block.
      if (after_cr_) {
        blank_pending_ = true;
        return {status::need_more, pos};
      }
      complete(true);
      return {status::event, pos};
    }
    field_line(line_begin, line_end_in_raw);
  }
  return {status::need_more, pos};
}

bool sse_parser::finish() {
  if (delivered_) start_block();
  after_cr_ = false;
  if (blank_pending_) {
    blank_pending_ = false;
    complete(true);
    return true;
  }
  if (raw_.empty()) return false;
  if (line_begin_ < raw_.size()) field_line(line_begin_, raw_.size());
  complete(false);
  return true;
}

void sse_parser::field_line(std::size_t begin, std::size_t end) {
  if (at_stream_start_) {
    at_stream_start_ = false;
    if (std::string_view(raw_).substr(begin, end - begin).starts_with(bom)) begin += bom.size();
  }
  if (begin == end) return;
  const std::string_view line(raw_.data() + begin, end - begin);
  if (line[0] == ':') return;  // comment
  const std::size_t colon = line.find(':');
  std::string_view name = line;
  std::size_t value_begin = end;
  if (colon != std::string_view::npos) {
    name = line.substr(0, colon);
    value_begin = begin + colon + 1;
    if (value_begin < end && raw_[value_begin] == ' ') ++value_begin;
  }
  const std::string_view value(raw_.data() + value_begin, end - value_begin);
  if (name == "data") {
    data_.append(value);
    data_ += '\n';
    has_data_ = true;
  } else if (name == "event") {
    event_begin_ = value_begin;
    event_end_ = end;
    has_event_ = true;
  } else if (name == "id") {
    if (value.find('\0') == std::string_view::npos) {
      id_begin_ = value_begin;
      id_end_ = end;
      has_id_ = true;
    }
  } else if (name == "retry") {
    if (!value.empty() && value.size() <= 19 &&
        value.find_first_not_of("0123456789") == std::string_view::npos) {
      std::uint64_t v = 0;
      for (char c : value) v = v * 10 + static_cast<std::uint64_t>(c - '0');
      retry_ = v;
    }
  }
  // Other field names are ignored, as the specification says.
}

void sse_parser::complete(bool terminated) {
  // A blank line is a line too: the BOM rule applies to the first line only.
  at_stream_start_ = false;
  delivered_ = true;
  event_.raw = raw_;
  event_.event = has_event_ ? std::string_view(raw_).substr(event_begin_, event_end_ - event_begin_)
                            : std::string_view{};
  event_.id = has_id_ ? std::string_view(raw_).substr(id_begin_, id_end_ - id_begin_)
                      : std::string_view{};
  event_.data = std::string_view(data_);
  if (!event_.data.empty()) event_.data.remove_suffix(1);  // the last '\n'
  event_.retry = retry_;
  event_.has_data = has_data_;
  event_.has_id = has_id_;
  event_.terminated = terminated;
}

}  // namespace customs::daemon
