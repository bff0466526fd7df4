#pragma once
// SHA-256 (FIPS 180-4), for the rule-set content hash. policy/ depends on RE2
// and yaml-cpp only, so it carries this small implementation rather than OpenSSL.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace customs::policy {

class sha256 {
 public:
  sha256() noexcept;
  void update(std::string_view data) noexcept;
  [[nodiscard]] std::array<std::uint8_t, 32> finish() noexcept;
  [[nodiscard]] static std::string hex(std::string_view data);

 private:
  void block(const std::uint8_t* p) noexcept;
  std::array<std::uint32_t, 8> h_{};
  std::array<std::uint8_t, 64> buf_{};
  std::size_t used_ = 0;
  std::uint64_t total_ = 0;
};

}  // namespace customs::policy
