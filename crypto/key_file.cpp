// Key files; the format is described in key_file.hpp.
#include "crypto/key_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdio>

namespace customs::crypto {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t max_key_file_bytes = 4096;

struct kind_info {
  key_kind kind;
  std::string_view file;
  std::string_view header;  // checked part of line 1
  std::string_view advice;  // rest of line 1
  bool secret;
  bool has_epoch;
  std::size_t key_bytes;
};

constexpr kind_info kinds[] = {
    {key_kind::auditor_public, "auditor.pub", "# customs auditor public key (X25519) v1",
     "configure it in customsd; only the matching auditor.key can read the audit trail",
     false, false, box_public_bytes},
    {key_kind::auditor_secret, "auditor.key", "# customs auditor secret key (X25519) v1",
     "decrypts the audit trail; keep it with the auditors, never on an edge host", true,
     false, box_secret_bytes},
    {key_kind::sealing_key, "sealing.key",
     "# customs sealing key (forward-secure MAC key, customsd's copy) v1",
     "customsd evolves it in place at each epoch end; do not copy or restore it", true, true,
     mac_key_bytes},
    {key_kind::sealing_seed, "sealing.seed",
     "# customs sealing seed (epoch-0 MAC key, the auditors' copy) v1",
     "verifies the audit trail's MACs; keep it with the auditors, never on an edge host",
     true, true, mac_key_bytes},
    {key_kind::signing_secret, "signing.key",
     "# customs signing key (Ed25519 seed of the checkpoint signer) v1",
     "customsd signs audit checkpoints with it", true, false, sign_seed_bytes},
    {key_kind::signing_public, "signing.pub", "# customs signing public key (Ed25519) v1",
     "checks audit checkpoint signatures (customsctl audit verify --signer)", false, false,
     sign_public_bytes},
    {key_kind::subject_key, "subject.key", "# customs subject key (keyed hashes of data subjects) v1",
     "customsd hashes identifiers in volume counters with it; the same file on every host sharing counters",
     true, false, mac_key_bytes},
};

const kind_info& info(key_kind k) {
  for (const auto& i : kinds)
    if (i.kind == k) return i;
  throw std::logic_error("unknown key kind");
}

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw key_file_error(file.string() + ": " + what);
}

std::string errno_text() { return std::strerror(errno); }

// A string whose bytes are wiped when it goes away (key text in transit).
struct wiped_string {
  std::string s;
  ~wiped_string() {
    if (!s.empty()) secure_wipe(s.data(), s.size());
  }
};

void write_all(int fd, const std::string& s, const fs::path& file) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(file, "cannot write: " + errno_text());
    }
    off += static_cast<std::size_t>(n);
  }
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, "cannot open folder to sync it: " + errno_text());
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail(dir, "cannot sync folder: " + errno_text());
}

void render(wiped_string& out, const kind_info& i, byte_view key, std::uint64_t epoch) {
  out.s.reserve(512);
  out.s.append(i.header).append(": ").append(i.advice).append("\n");
  if (i.has_epoch) out.s.append("epoch: ").append(std::to_string(epoch)).append("\n");
  wiped_string hex{to_hex(key)};
  out.s.append("key: ").append(hex.s).append("\n");
}

// Creates `file` exclusively with `mode`, writes and fsyncs it.
void create_file(const fs::path& file, const std::string& content, mode_t mode) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) fail(file, "already exists; key files are never overwritten");
    fail(file, "cannot create: " + errno_text());
  }
  try {
    // The umask may have narrowed the mode; public keys must stay readable and
    // secrets must be exactly 0600.
    if (::fchmod(fd, mode) != 0) fail(file, "cannot set mode: " + errno_text());
    write_all(fd, content, file);
    if (::fsync(fd) != 0) fail(file, "cannot sync: " + errno_text());
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail(file, "cannot close: " + errno_text());
}

struct parsed {
  std::uint64_t epoch = 0;
  wiped_string key;  // raw key bytes
};

void read_key_file(const fs::path& file, const kind_info& i, parsed& out) {
  // O_NONBLOCK: a FIFO named as a key file is refused below (not a regular
  // file) instead of blocking the open until someone writes to it.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (errno == ELOOP) fail(file, "is a symbolic link; give the key file itself");
    fail(file, "cannot open " + std::string(i.file) + ": " + errno_text());
  }
  wiped_string text;
  try {
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail(file, "cannot stat: " + errno_text());
    if (!S_ISREG(st.st_mode)) fail(file, "is not a regular file");
    if (i.secret && (st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      fail(file, std::string("refusing to load a secret key (") + std::string(i.file) +
                     ") that others may read (mode " + mode + "); run: chmod 600 " +
                     file.string());
    }
    if (st.st_size > static_cast<off_t>(max_key_file_bytes))
      fail(file, "is too large to be a customs key file");
    text.s.resize(max_key_file_bytes);
    std::size_t got = 0;
    for (;;) {
      const ssize_t n = ::read(fd, text.s.data() + got, text.s.size() - got);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(file, "cannot read: " + errno_text());
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
      if (got == text.s.size()) fail(file, "is too large to be a customs key file");
    }
    text.s.resize(got);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);

  std::string_view rest(text.s);
  const auto take_line = [&rest]() {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  const std::string_view header = take_line();
  if (header.substr(0, i.header.size()) != i.header) {
    std::string found(header.substr(0, 80));
    for (const auto& other : kinds)
      if (header.substr(0, other.header.size()) == other.header)
        fail(file, "is a " + std::string(other.file) + " file, but a " + std::string(i.file) +
                       " file is needed here");
    fail(file, "is not a customs " + std::string(i.file) + " file (its first line must start with \"" +
                   std::string(i.header) + "\")");
  }
  bool have_key = false, have_epoch = false;
  int line_no = 1;
  while (!rest.empty()) {
    const std::string_view line = take_line();
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos)
      fail(file, "line " + std::to_string(line_no) + ": expected \"name: value\"");
    const std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    if (name == "key") {
      auto raw = from_hex(value);
      if (!raw || raw->size() != i.key_bytes) {
        if (raw) secure_wipe(raw->data(), raw->size());
        fail(file, "line " + std::to_string(line_no) + ": key must be " +
                       std::to_string(i.key_bytes * 2) + " hex digits");
      }
      out.key.s.assign(raw->begin(), raw->end());
      secure_wipe(raw->data(), raw->size());
      have_key = true;
    } else if (name == "epoch" && i.has_epoch) {
      std::uint64_t v = 0;
      if (value.empty() || value.size() > 19) fail(file, "line " + std::to_string(line_no) + ": bad epoch");
      for (const char c : value) {
        if (c < '0' || c > '9') fail(file, "line " + std::to_string(line_no) + ": bad epoch");
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
      }
      out.epoch = v;
      have_epoch = true;
    } else {
      fail(file, "line " + std::to_string(line_no) + ": unknown field \"" + std::string(name) + "\"");
    }
  }
  if (!have_key) fail(file, "has no \"key:\" line");
  if (i.has_epoch && !have_epoch) fail(file, "has no \"epoch:\" line");
}

template <std::size_t N>
void copy_into(secret<N>& s, const parsed& p) {
  std::memcpy(s.data(), p.key.s.data(), N);
}

}  // namespace

std::string_view default_file_name(key_kind k) noexcept {
  for (const auto& i : kinds)
    if (i.kind == k) return i.file;
  return {};
}

bool is_secret(key_kind k) noexcept {
  for (const auto& i : kinds)
    if (i.kind == k) return i.secret;
  return true;
}

std::string_view header_prefix(key_kind k) noexcept {
  for (const auto& i : kinds)
    if (i.kind == k) return i.header;
  return {};
}

void write_key_file(const fs::path& file, key_kind k, byte_view key, std::uint64_t epoch) {
  const auto& i = info(k);
  if (key.size() != i.key_bytes) throw std::invalid_argument("wrong key size for key file");
  wiped_string text;
  render(text, i, key, epoch);
  create_file(file, text.s, i.secret ? 0600 : 0644);
}

box_public_key load_auditor_public(const fs::path& file) {
  parsed p;
  read_key_file(file, info(key_kind::auditor_public), p);
  box_public_key pk{};
  std::memcpy(pk.data(), p.key.s.data(), pk.size());
  return pk;
}

box_secret_key load_auditor_secret(const fs::path& file) {
  parsed p;
  read_key_file(file, info(key_kind::auditor_secret), p);
  box_secret_key sk;
  copy_into(sk, p);
  return sk;
}

sealing_state load_sealing_key(const fs::path& file) {
  parsed p;
  read_key_file(file, info(key_kind::sealing_key), p);
  sealing_state st;
  st.epoch = p.epoch;
  copy_into(st.key, p);
  return st;
}

sealing_state load_sealing_seed(const fs::path& file) {
  parsed p;
  read_key_file(file, info(key_kind::sealing_seed), p);
  if (p.epoch != 0) fail(file, "a sealing seed must be at epoch 0 (is this a sealing.key?)");
  sealing_state st;
  copy_into(st.key, p);
  return st;
}

sign_seed load_signing_key(const fs::path& file) {
  parsed p;
  read_key_file(file, info(key_kind::signing_secret), p);
  sign_seed s;
  copy_into(s, p);
  return s;
}

sign_public_key load_signing_public(const fs::path& file) {
  parsed p;
  read_key_file(file, info(key_kind::signing_public), p);
  sign_public_key pk{};
  std::memcpy(pk.data(), p.key.s.data(), pk.size());
  return pk;
}

void replace_sealing_key(const fs::path& file, const sealing_state& st) {
  const auto& i = info(key_kind::sealing_key);
  fs::path tmp = file;
  tmp += ".tmp";
  // A leftover from a crash during an earlier replacement holds a key that was
  // never made current: remove it.
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT)
    fail(tmp, "cannot remove stale temporary key file: " + errno_text());
  wiped_string text;
  render(text, i, st.key.view(), st.epoch);
  create_file(tmp, text.s, 0600);
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    fail(file, "cannot replace sealing key: " + why);
  }
  fsync_dir(file.parent_path());
}

mac_key load_subject_key(const fs::path& file) {
  parsed p;
  read_key_file(file, info(key_kind::subject_key), p);
  mac_key k;
  copy_into(k, p);
  return k;
}

std::vector<fs::path> generate_key_set(const fs::path& dir, key_set which) {
  init();
  std::vector<key_kind> want;
  if (which == key_set::all || which == key_set::auditor)
    want.insert(want.end(), {key_kind::auditor_public, key_kind::auditor_secret});
  if (which == key_set::all || which == key_set::sealing)
    want.insert(want.end(), {key_kind::sealing_key, key_kind::sealing_seed});
  if (which == key_set::all || which == key_set::signing)
    want.insert(want.end(), {key_kind::signing_secret, key_kind::signing_public});
  if (which == key_set::subject) want.push_back(key_kind::subject_key);

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create folder: " + ec.message());
  for (const auto k : want) {
    const fs::path p = dir / default_file_name(k);
    if (fs::symlink_status(p, ec).type() != fs::file_type::not_found)
      fail(p, "already exists; key files are never overwritten (choose another --out folder)");
  }

  std::vector<fs::path> written;
  const auto put = [&](key_kind k, byte_view key, std::uint64_t epoch = 0) {
    const fs::path p = dir / default_file_name(k);
    write_key_file(p, k, key, epoch);
    written.push_back(p);
  };
  if (which == key_set::all || which == key_set::auditor) {
    const auto kp = box_generate();
    put(key_kind::auditor_public, kp.pk);
    put(key_kind::auditor_secret, kp.sk.view());
  }
  if (which == key_set::all || which == key_set::sealing) {
    mac_key seed;
    random_bytes({seed.data(), seed.size()});
    put(key_kind::sealing_key, seed.view(), 0);
    put(key_kind::sealing_seed, seed.view(), 0);
  }
  if (which == key_set::all || which == key_set::signing) {
    sign_seed seed;
    random_bytes({seed.data(), seed.size()});
    put(key_kind::signing_secret, seed.view());
    put(key_kind::signing_public, sign_public_from_seed(seed));
  }
  if (which == key_set::subject) {
    mac_key k;
    random_bytes({k.data(), k.size()});
    put(key_kind::subject_key, k.view());
  }
  fsync_dir(dir);
  return written;
}

}  // namespace customs::crypto
