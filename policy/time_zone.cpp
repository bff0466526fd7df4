// TZif (RFC 8536) reading for named time zones.
//
// What is read, per RFC 8536 section 3: the 44-byte header ("TZif", version,
// 15 reserved bytes, six u32 big-endian counts isutcnt, isstdcnt, leapcnt,
// timecnt, typecnt, charcnt); for version 2 and later the version-1 data block
// is skipped and the second header and 64-bit data block are read: timecnt i64
// transition times, timecnt u8 type indices, typecnt 6-byte local time types
// (i32 utoff, u8 isdst, u8 abbreviation index), then abbreviations, leap
// seconds and indicators, which are not needed here. A file is accepted only if
// every count is within its bound, every index within range and the transition
// times ascend.
#include "policy/time_zone.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace customs::policy {
namespace {

struct cursor {
  std::string_view s;
  std::size_t i = 0;
  bool ok = true;
  bool need(std::size_t n) {
    if (!ok || s.size() - i < n) ok = false;
    return ok;
  }
  std::uint32_t u32() {
    if (!need(4)) return 0;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v = (v << 8) | static_cast<std::uint8_t>(s[i++]);
    return v;
  }
  std::int64_t i64() {
    if (!need(8)) return 0;
    std::uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = (v << 8) | static_cast<std::uint8_t>(s[i++]);
    return static_cast<std::int64_t>(v);
  }
  std::uint8_t u8() {
    if (!need(1)) return 0;
    return static_cast<std::uint8_t>(s[i++]);
  }
  void skip(std::uint64_t n) {
    if (!ok || s.size() - i < n) {
      ok = false;
      return;
    }
    i += static_cast<std::size_t>(n);
  }
};

struct header {
  char version = 0;
  std::uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;
};

bool read_header(cursor& c, header& h, std::string& why) {
  if (!c.need(44) || c.s.substr(c.i, 4) != "TZif") {
    why = "not a TZif file";
    return false;
  }
  c.i += 4;
  h.version = static_cast<char>(c.u8());
  c.skip(15);
  h.isutcnt = c.u32();
  h.isstdcnt = c.u32();
  h.leapcnt = c.u32();
  h.timecnt = c.u32();
  h.typecnt = c.u32();
  h.charcnt = c.u32();
  if (!c.ok) {
    why = "truncated header";
    return false;
  }
  if (h.typecnt == 0 || h.typecnt > 256 || h.timecnt > time_zone::max_transitions || h.charcnt > 4096 ||
      h.leapcnt > 1024 || (h.isutcnt != 0 && h.isutcnt != h.typecnt) ||
      (h.isstdcnt != 0 && h.isstdcnt != h.typecnt)) {
    why = "counts out of bounds";
    return false;
  }
  return true;
}

// Bytes of a data block with time values of `tsize` bytes.
std::uint64_t block_size(const header& h, std::uint64_t tsize) {
  return h.timecnt * tsize + h.timecnt + h.typecnt * 6ull + h.charcnt + h.leapcnt * (tsize + 4) + h.isstdcnt +
         h.isutcnt;
}

bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 64 || n.front() == '/' || n.find("..") != std::string_view::npos) return false;
  return std::all_of(n.begin(), n.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
           c == '-' || c == '+';
  });
}

}  // namespace

std::int64_t civil_days(int y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

time_zone::civil civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int>(y + (m <= 2)), m, d};
}

std::optional<time_zone> time_zone::parse(std::string_view name, std::string_view data, std::string& why) {
  if (data.size() > max_file_bytes) {
    why = "file too large";
    return std::nullopt;
  }
  cursor c{data};
  header h;
  if (!read_header(c, h, why)) return std::nullopt;
  std::uint64_t tsize = 4;
  if (h.version >= '2') {
    c.skip(block_size(h, 4));
    if (!c.ok) {
      why = "truncated version 1 data";
      return std::nullopt;
    }
    if (!read_header(c, h, why)) return std::nullopt;
    tsize = 8;
  } else if (h.version != 0) {
    why = "unknown version";
    return std::nullopt;
  }
  if (!c.need(block_size(h, tsize))) {
    why = "truncated data";
    return std::nullopt;
  }
  time_zone z;
  z.name_ = std::string(name);
  std::vector<std::int64_t> at(h.timecnt);
  for (auto& t : at) t = tsize == 8 ? c.i64() : static_cast<std::int32_t>(c.u32());
  std::vector<std::uint8_t> idx(h.timecnt);
  for (auto& x : idx) x = c.u8();
  std::vector<std::int32_t> off(h.typecnt);
  for (auto& o : off) {
    o = static_cast<std::int32_t>(c.u32());
    c.skip(2);
    if (o < -25 * 3600 || o > 26 * 3600) {
      why = "offset out of range";
      return std::nullopt;
    }
  }
  if (!c.ok) {
    why = "truncated data";
    return std::nullopt;
  }
  for (std::size_t k = 0; k < at.size(); ++k) {
    if (idx[k] >= h.typecnt || (k > 0 && at[k] <= at[k - 1])) {
      why = "bad transition table";
      return std::nullopt;
    }
    z.at_.push_back(at[k]);
    z.offset_.push_back(off[idx[k]]);
  }
  // RFC 8536: local time type 0 applies before the first transition.
  z.initial_ = off[0];
  return z;
}

std::optional<time_zone> time_zone::load(std::string_view name, std::string& why, const std::filesystem::path& root) {
  if (name == "UTC") return time_zone{};
  if (!valid_name(name)) {
    why = "not a time zone name";
    return std::nullopt;
  }
  std::ifstream in(root / std::string(name), std::ios::binary);
  if (!in) {
    why = "no such time zone in " + root.string();
    return std::nullopt;
  }
  std::string data(max_file_bytes + 1, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<std::size_t>(in.gcount()));
  return parse(name, data, why);
}

std::int32_t time_zone::offset_at(std::int64_t t) const noexcept {
  const auto it = std::upper_bound(at_.begin(), at_.end(), t);
  if (it == at_.begin()) return initial_;
  return offset_[static_cast<std::size_t>(it - at_.begin()) - 1];
}

std::int64_t time_zone::local_midnight(int year, unsigned month, unsigned day) const noexcept {
  const std::int64_t local = civil_days(year, month, day) * 86400;
  // The offset in force at that local time: guess with the offset at the local
  // value read as UTC, then correct once (offsets change by at most a day).
  std::int64_t t = local - offset_at(local);
  t = local - offset_at(t);
  return t;
}

time_zone::civil time_zone::date_at(std::int64_t t) const noexcept {
  const std::int64_t local = t + offset_at(t);
  const std::int64_t days = local >= 0 ? local / 86400 : (local - 86399) / 86400;
  return civil_from_days(days);
}

}  // namespace customs::policy
