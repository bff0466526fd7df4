// Encoding of the audit format; the byte layout is specified in format.hpp.
#include "audit/format.hpp"

#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <ctime>
#include <stdexcept>

namespace customs::audit::format {

namespace {

// Tags include their terminating NUL (sizeof of the literal).
constexpr char payload_tag[] = "customs/audit/payload/v1";
constexpr char record_tag[] = "customs/audit/record/v1";
constexpr char mac_tag[] = "customs/audit/mac/v1";
constexpr char checkpoint_tag[] = "customs/audit/checkpoint/v1";

template <std::size_t N>
crypto::byte_view tag_bytes(const char (&t)[N]) {
  return {reinterpret_cast<const std::uint8_t*>(t), N};
}

// Little-endian integers, appended whole (the header is encoded for every record
// written and every record verified).
template <typename T>
void put_le(crypto::bytes& out, T v) {
  std::uint8_t b[sizeof(T)];
  for (std::size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
  const std::size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, b, sizeof(T));
}
void put_u8(crypto::bytes& out, std::uint8_t v) { out.push_back(v); }
void put_u16(crypto::bytes& out, std::uint16_t v) { put_le(out, v); }
void put_u32(crypto::bytes& out, std::uint32_t v) { put_le(out, v); }
void put_u64(crypto::bytes& out, std::uint64_t v) { put_le(out, v); }
void put_str(crypto::bytes& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  const std::size_t at = out.size();
  out.resize(at + s.size());
  if (!s.empty()) std::memcpy(out.data() + at, s.data(), s.size());
}
void put_bytes(crypto::bytes& out, crypto::byte_view b) { out.insert(out.end(), b.begin(), b.end()); }

// Bounds-checked cursor over untrusted bytes.
struct cursor {
  crypto::byte_view in;
  std::size_t at = 0;
  bool ok = true;
  bool need(std::size_t n) {
    if (!ok || in.size() - at < n) ok = false;
    return ok;
  }
  std::uint64_t uint(int bytes) {
    if (!need(static_cast<std::size_t>(bytes))) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::uint64_t{in[at + static_cast<std::size_t>(i)]} << (8 * i);
    at += static_cast<std::size_t>(bytes);
    return v;
  }
  void copy(std::uint8_t* dst, std::size_t n) {
    if (!need(n)) return;
    std::memcpy(dst, in.data() + at, n);
    at += n;
  }
  bool done() const { return ok && at == in.size(); }
};

}  // namespace

void encode_header(const header_fields& h, crypto::bytes& out) {
  encode_header(h.kind, h.seq, h.epoch, h.time_us, h.flow_id, h.index, out);
}

void encode_header(record_kind kind, std::uint64_t seq, std::uint64_t epoch, std::int64_t time_us,
                   std::string_view flow_id, const index_fields& index, crypto::bytes& out) {
  out.clear();
  out.reserve(128);
  put_u8(out, version);
  put_u8(out, static_cast<std::uint8_t>(kind));
  put_u64(out, seq);
  put_u64(out, epoch);
  put_u64(out, static_cast<std::uint64_t>(time_us));
  put_str(out, flow_id);
  put_str(out, index.route);
  put_str(out, index.src);
  put_str(out, index.dst);
  put_str(out, index.tenant);
  put_str(out, index.action);
  // The rules as joined for their column, without building the joined string.
  std::size_t len = index.rules.empty() ? 0 : index.rules.size() - 1;
  for (const auto& r : index.rules) len += r.size();
  put_u32(out, static_cast<std::uint32_t>(len));
  for (std::size_t i = 0; i < index.rules.size(); ++i) {
    if (i) out.push_back(',');
    out.insert(out.end(), index.rules[i].begin(), index.rules[i].end());
  }
  put_str(out, index.rule_set_hash);
  put_u64(out, index.tokens_in);
  put_u64(out, index.tokens_out);
}

std::string payload_over_limit(std::size_t original_bytes) {
  return "{\"truncated\":{\"reason\":\"payload over the audit record size limit\",\"bytes\":" +
         std::to_string(original_bytes) + ",\"limit\":" + std::to_string(max_payload_bytes) + "}}";
}

namespace {

// Cuts s to at most max bytes, not inside a UTF-8 sequence.
bool cut_field(std::string& s, std::size_t max) {
  if (s.size() <= max) return false;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return true;
}

}  // namespace

bool bound_record(record& r) {
  bool changed = false;
  for (auto* f : {&r.flow_id, &r.index.route, &r.index.src, &r.index.dst, &r.index.tenant,
                  &r.index.action, &r.index.rule_set_hash})
    changed |= cut_field(*f, max_field_bytes);
  // Rule ids, joined with ',', within one field: whole ids, then "...".
  std::size_t joined = 0;
  for (std::size_t i = 0; i < r.index.rules.size(); ++i) joined += r.index.rules[i].size() + (i ? 1 : 0);
  if (joined > max_field_bytes) {
    std::size_t keep = 0;
    joined = 0;
    for (; keep < r.index.rules.size(); ++keep) {
      const std::size_t add = r.index.rules[keep].size() + (keep ? 1 : 0);
      if (joined + add > max_field_bytes - 4) break;
      joined += add;
    }
    r.index.rules.resize(keep);
    r.index.rules.emplace_back("...");
    changed = true;
  }
  if (r.payload.size() > max_payload_bytes) {
    r.payload = payload_over_limit(r.payload.size());
    changed = true;
  }
  return changed;
}

std::string join_rules(const std::vector<std::string>& rules) {
  std::string out;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (i) out.push_back(',');
    out += rules[i];
  }
  return out;
}

std::vector<std::string> split_rules(std::string_view joined) {
  // split_rules(join_rules(v)) == v for every v whose join is not empty, so a
  // header rebuilt from the stored column hashes the same as the one written.
  std::vector<std::string> out;
  if (joined.empty()) return out;
  for (;;) {
    const auto comma = joined.find(',');
    out.emplace_back(joined.substr(0, comma));
    if (comma == std::string_view::npos) break;
    joined.remove_prefix(comma + 1);
  }
  return out;
}

crypto::hash payload_hash(crypto::byte_view payload) {
  crypto::hasher h;
  h.update(tag_bytes(payload_tag)).update(payload);
  return h.finish();
}

crypto::hash chain_hash(const crypto::hash& prev, crypto::byte_view header,
                        const crypto::hash& ph) {
  crypto::bytes len;
  put_u32(len, static_cast<std::uint32_t>(header.size()));
  crypto::hasher h;
  h.update(tag_bytes(record_tag)).update(prev).update(len).update(header).update(ph);
  return h.finish();
}

crypto::hash record_mac(const crypto::mac_key& k, const crypto::hash& record_hash) {
  crypto::hasher h(k.view());
  h.update(tag_bytes(mac_tag)).update(record_hash);
  return h.finish();
}

crypto::bytes encode_epoch_start(const epoch_start_body& b) {
  crypto::bytes out;
  put_u8(out, version);
  put_bytes(out, b.signer);
  put_u16(out, static_cast<std::uint16_t>(b.keys.size()));
  for (const auto& k : b.keys) {
    put_bytes(out, k.auditor);
    put_bytes(out, k.box);
  }
  return out;
}

std::optional<epoch_start_body> decode_epoch_start(crypto::byte_view p) {
  cursor c{p};
  if (c.uint(1) != version) return std::nullopt;
  epoch_start_body b;
  c.copy(b.signer.data(), b.signer.size());
  const auto n = c.uint(2);
  if (!c.ok || n == 0 || n > max_auditors) return std::nullopt;
  b.keys.resize(n);
  for (auto& k : b.keys) {
    c.copy(k.auditor.data(), k.auditor.size());
    c.copy(k.box.data(), k.box.size());
  }
  if (!c.done()) return std::nullopt;
  return b;
}

crypto::bytes encode_erasure(const erasure_body& b) {
  crypto::bytes out;
  put_u8(out, version);
  put_str(out, b.reason);
  put_u32(out, static_cast<std::uint32_t>(b.seqs.size()));
  for (const auto s : b.seqs) put_u64(out, s);
  return out;
}

std::optional<erasure_body> decode_erasure(crypto::byte_view p) {
  cursor c{p};
  if (c.uint(1) != version) return std::nullopt;
  erasure_body b;
  const auto len = c.uint(4);
  if (!c.need(len) || len > max_field_bytes) return std::nullopt;
  b.reason.assign(reinterpret_cast<const char*>(p.data() + c.at), len);
  c.at += len;
  const auto n = c.uint(4);
  if (!c.ok || n > (p.size() - c.at) / 8) return std::nullopt;
  b.seqs.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) b.seqs.push_back(c.uint(8));
  if (!c.done()) return std::nullopt;
  return b;
}

crypto::bytes checkpoint_message(const checkpoint& cp) {
  crypto::bytes out;
  put_bytes(out, tag_bytes(checkpoint_tag));
  put_u64(out, cp.seq);
  put_u64(out, cp.epoch);
  put_u64(out, static_cast<std::uint64_t>(cp.time_us));
  put_bytes(out, cp.head);
  return out;
}

std::string checkpoint_to_text(const checkpoint& c) {
  std::string out = "customs audit checkpoint v1\n";
  out += "seq: " + std::to_string(c.seq) + "\n";
  out += "epoch: " + std::to_string(c.epoch) + "\n";
  out += "time: " + format_time(c.time_us) + "\n";
  out += "time_us: " + std::to_string(c.time_us) + "\n";
  out += "head: " + crypto::to_hex(c.head) + "\n";
  if (c.signer) out += "signer: " + crypto::to_hex(*c.signer) + "\n";
  out += "signature: " + crypto::to_hex(c.sig) + "\n";
  return out;
}

checkpoint checkpoint_from_text(std::string_view text) {
  checkpoint c;
  int line_no = 0;
  bool seen_header = false, have_seq = false, have_epoch = false, have_time = false,
       have_head = false, have_sig = false;
  const auto bad = [&](const std::string& why) -> std::runtime_error {
    return std::runtime_error("line " + std::to_string(line_no) + ": " + why);
  };
  // A number above `max` is an error, never wrapped: the checkpoint must say
  // exactly what is written in it.
  const auto parse_u64 = [&](std::string_view v, std::uint64_t max) {
    if (v.empty()) throw bad("expected a number");
    std::uint64_t n = 0;
    for (const char ch : v) {
      if (ch < '0' || ch > '9') throw bad("expected a number");
      const auto digit = static_cast<std::uint64_t>(ch - '0');
      if (n > (max - digit) / 10) throw bad("number out of range (largest is " + std::to_string(max) + ")");
      n = n * 10 + digit;
    }
    return n;
  };
  constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();
  constexpr auto i64_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::set<std::string, std::less<>> seen_fields;
  const auto parse_fixed = [&](std::string_view v, std::uint8_t* dst, std::size_t n) {
    const auto raw = crypto::from_hex(v);
    if (!raw || raw->size() != n) throw bad("expected " + std::to_string(2 * n) + " hex digits");
    std::memcpy(dst, raw->data(), n);
  };
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    if (!seen_header) {
      if (line != "customs audit checkpoint v1")
        throw bad("not a customs audit checkpoint (expected \"customs audit checkpoint v1\")");
      seen_header = true;
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) throw bad("expected \"name: value\"");
    const auto name = line.substr(0, colon);
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (!seen_fields.emplace(name).second) throw bad("field \"" + std::string(name) + "\" written twice");
    if (name == "seq") {
      c.seq = parse_u64(value, u64_max), have_seq = true;
    } else if (name == "epoch") {
      c.epoch = parse_u64(value, u64_max), have_epoch = true;
    } else if (name == "time_us") {
      c.time_us = static_cast<std::int64_t>(parse_u64(value, i64_max)), have_time = true;
    } else if (name == "time") {
      // informational; time_us is authoritative
    } else if (name == "head") {
      parse_fixed(value, c.head.data(), c.head.size()), have_head = true;
    } else if (name == "signer") {
      crypto::sign_public_key pk{};
      parse_fixed(value, pk.data(), pk.size());
      c.signer = pk;
    } else if (name == "signature") {
      parse_fixed(value, c.sig.data(), c.sig.size()), have_sig = true;
    } else {
      throw bad("unknown field \"" + std::string(name) + "\"");
    }
  }
  if (!seen_header) throw std::runtime_error("empty checkpoint file");
  if (!(have_seq && have_epoch && have_time && have_head && have_sig))
    throw std::runtime_error("checkpoint lacks one of seq, epoch, time_us, head, signature");
  return c;
}

std::string format_time(std::int64_t time_us) {
  std::int64_t secs = time_us / 1000000;
  std::int64_t frac = time_us % 1000000;
  if (frac < 0) frac += 1000000, secs -= 1;
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

std::optional<std::int64_t> parse_time(std::string_view s) {
  const auto digits = [&](std::size_t at, std::size_t n, int& out) {
    if (s.size() < at + n) return false;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const char c = s[at + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    out = v;
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  std::int64_t micros = 0;
  if (!digits(0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
      !digits(8, 2, d))
    return std::nullopt;
  std::size_t at = 10;
  if (s.size() > 10) {
    if ((s[10] != 'T' && s[10] != ' ') || !digits(11, 2, h) || s.size() < 16 || s[13] != ':' ||
        !digits(14, 2, mi))
      return std::nullopt;
    at = 16;
    if (at < s.size() && s[at] == ':') {
      if (!digits(at + 1, 2, sec)) return std::nullopt;
      at += 3;
      if (at < s.size() && s[at] == '.') {
        ++at;
        int n = 0;
        std::int64_t scale = 100000;
        while (at < s.size() && s[at] >= '0' && s[at] <= '9' && n < 6) {
          micros += (s[at] - '0') * scale;
          scale /= 10;
          ++at, ++n;
        }
        if (n == 0) return std::nullopt;
      }
    }
    if (at != s.size() - 1 || s[at] != 'Z') return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const std::time_t t = timegm(&tm);
  return static_cast<std::int64_t>(t) * 1000000 + micros;
}

std::string_view kind_name(record_kind k) noexcept {
  switch (k) {
    case record_kind::flow_opened: return "flow_opened";
    case record_kind::flow_closed: return "flow_closed";
    case record_kind::erasure: return "erasure";
    case record_kind::epoch_start: return "epoch_start";
  }
  return "unknown";
}

}  // namespace customs::audit::format
