#include "daemon/volume/subject_key.hpp"

#include <algorithm>

#include "crypto/key_file.hpp"

namespace customs::daemon::volume {

namespace {
constexpr std::string_view subject_tag{"customs/volume/subject/v1\0", 26};
}

subject_hasher::subject_hasher(const std::filesystem::path& key_file) : key_(crypto::load_subject_key(key_file)) {}

subject_hasher::subject_hasher(const crypto::mac_key& key) {
  std::copy(key.data(), key.data() + key.size(), key_.data());
}

subject_hash subject_hasher::hash(std::string_view normalised) const {
  crypto::hasher h(key_.view());
  h.update(subject_tag);
  h.update(normalised);
  const crypto::hash full = h.finish();
  subject_hash out{};
  std::copy_n(full.begin(), out.size(), out.begin());
  return out;
}

std::string to_hex(const subject_hash& h) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(h.size() * 2);
  for (const auto b : h) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

}  // namespace customs::daemon::volume
