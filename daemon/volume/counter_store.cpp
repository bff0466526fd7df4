// The counter stores' error category (shared by the SQLite and Redis stores
// and the Redis protocol reader).
#include "daemon/volume/counter_store.hpp"

#include <string>

namespace customs::daemon::volume {

namespace {
class store_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "customs.volume"; }
  std::string message(int e) const override {
    switch (static_cast<store_errc>(e)) {
      case store_errc::unavailable: return "counter store unavailable";
      case store_errc::timeout: return "counter store did not answer within the budget";
      case store_errc::failed: return "counter store error";
      case store_errc::refused: return "counter store refused the operation";
      case store_errc::journal_full:
        return "the local fallback's journal is full (volumes.journal_max_entries): nothing counted";
    }
    return "counter store error";
  }
};
}  // namespace

const std::error_category& store_category() noexcept {
  static const store_category_impl c;
  return c;
}
std::error_code make_error_code(store_errc e) noexcept { return {static_cast<int>(e), store_category()}; }

}  // namespace customs::daemon::volume
