#pragma once
// Named time zones for calendar windows of volume counters ("counted since 1
// January" in China means 1 January in Asia/Shanghai). Read from the system's
// TZif files (RFC 8536, /usr/share/zoneinfo, Debian package tzdata) when a rule
// set is loaded; immutable afterwards.
//
// Only what a window boundary needs is kept: the UTC offset in force from each
// transition on. Instants after the file's last transition use the offset of
// that transition (the TZif footer's POSIX rule is not evaluated): exact for
// zones without daylight saving time today (Asia/Shanghai, UTC, Asia/Tokyo,
// ...), and for zones with it as far as the file lists transitions (Debian's
// tzdata lists them up to 2037).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace customs::policy {

class time_zone {
 public:
  // UTC (no file needed).
  time_zone() = default;

  // Parses TZif data (versions 1 to 4); nullopt with `why` when it is not valid
  // TZif or is over the bounds below. Never throws on any input.
  [[nodiscard]] static std::optional<time_zone> parse(std::string_view name, std::string_view data, std::string& why);
  // Loads zone `name` ("Asia/Shanghai") from `root`. Names are checked first:
  // letters, digits, '/', '_', '-' and '+', no "..", at most 64 bytes.
  [[nodiscard]] static std::optional<time_zone> load(std::string_view name, std::string& why,
                                                     const std::filesystem::path& root = "/usr/share/zoneinfo");

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  // Seconds east of UTC at instant t (unix seconds).
  [[nodiscard]] std::int32_t offset_at(std::int64_t t) const noexcept;
  // The instant (unix seconds) of local midnight starting the given civil day.
  [[nodiscard]] std::int64_t local_midnight(int year, unsigned month, unsigned day) const noexcept;
  // The civil date (year, month 1-12, day 1-31) of instant t in this zone.
  struct civil {
    int year;
    unsigned month;
    unsigned day;
  };
  [[nodiscard]] civil date_at(std::int64_t t) const noexcept;

  static constexpr std::size_t max_transitions = 4096;
  static constexpr std::size_t max_file_bytes = 256 * 1024;

 private:
  std::string name_ = "UTC";
  std::vector<std::int64_t> at_;      // transition instants, ascending
  std::vector<std::int32_t> offset_;  // offset from at_[i] on
  std::int32_t initial_ = 0;          // before the first transition
};

// Days since 1970-01-01 of a civil date (proleptic Gregorian), and back.
[[nodiscard]] std::int64_t civil_days(int y, unsigned m, unsigned d) noexcept;
[[nodiscard]] time_zone::civil civil_from_days(std::int64_t z) noexcept;

}  // namespace customs::policy
