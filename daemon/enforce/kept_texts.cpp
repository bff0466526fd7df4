#include "daemon/enforce/kept_texts.hpp"

#include "crypto/crypto.hpp"
#include "daemon/enforce/payload_json.hpp"

namespace customs::daemon::enforce {
namespace {

// The longest prefix of `s` of at most `n` bytes that ends on a character boundary.
std::size_t utf8_prefix(std::string_view s, std::size_t n) noexcept {
  if (n >= s.size()) return s.size();
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

crypto::byte_view bytes_of(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

kept_texts::kept_texts(std::size_t budget) : left_(budget) {}
kept_texts::~kept_texts() = default;
kept_texts::kept_texts(kept_texts&&) noexcept = default;
kept_texts& kept_texts::operator=(kept_texts&&) noexcept = default;

std::size_t kept_texts::open() {
  parts_.emplace_back();
  return parts_.size() - 1;
}

void kept_texts::append(std::size_t index, std::string_view piece) {
  if (index >= parts_.size() || piece.empty()) return;
  part& p = parts_[index];
  if (p.sealed) return;
  p.bytes += piece.size();
  if (!p.hash) {
    const std::size_t take = utf8_prefix(piece, left_);
    p.kept.append(piece.data(), take);
    left_ -= take;
    if (take == piece.size()) return;
    // The first byte that does not fit: hash the whole text from here on.
    cut_ = true;
    left_ = 0;
    p.hash = std::make_unique<crypto::hasher>();
    p.hash->update(bytes_of(p.kept));
    piece.remove_prefix(take);
  }
  p.hash->update(bytes_of(piece));
}

bool kept_texts::seal(part& p) {
  if (!p.hash && p.digest.empty()) return false;
  if (p.hash) {
    const auto h = p.hash->finish();
    p.digest = crypto::to_hex(h);
    p.hash.reset();
    p.sealed = true;
  }
  return true;
}

void kept_texts::write_texts(json_out& out) const {
  out.begin_array();
  for (const auto& p : parts_) out.value(p.kept);
  out.end_array();
}

void kept_texts::write_markers(json_out& out) {
  out.begin_array();
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    auto& p = parts_[i];
    if (!seal(p)) continue;
    out.begin_object()
        .member("part", std::uint64_t{i})
        .member("bytes", p.bytes)
        .member("kept", std::uint64_t{p.kept.size()})
        .member("blake2b", p.digest)
        .end_object();
  }
  out.end_array();
}

}  // namespace customs::daemon::enforce
