#include "policy/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <istream>

namespace customs::policy {

namespace {

std::string kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

// Reads fd to its end into out, failing past max_bytes.
bool read_bounded(int fd, std::size_t max_bytes, std::string& out, std::string& why) {
  out.clear();
  std::size_t got = 0;
  for (;;) {
    // One byte more than allowed tells a file at the limit from one past it.
    if (out.size() < got + 65536) out.resize(std::min(got + 65536, max_bytes + 1));
    if (got == out.size()) {
      why = "is larger than " + std::to_string(max_bytes) + " bytes";
      return false;
    }
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      why = std::string("cannot read: ") + std::strerror(errno);
      return false;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > max_bytes) {
    why = "is larger than " + std::to_string(max_bytes) + " bytes";
    return false;
  }
  out.resize(got);
  return true;
}

}  // namespace

std::string read_input_file(const std::filesystem::path& file, std::size_t max_bytes) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw input_file_error(file.string(), std::string("cannot open: ") + std::strerror(errno));
  std::string why;
  std::string text;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    why = std::string("cannot stat: ") + std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    why = "is " + kind_of(st.st_mode) + ", not a regular file";
  } else if (static_cast<std::uintmax_t>(st.st_size) > max_bytes) {
    why = "is " + std::to_string(st.st_size) + " bytes, larger than the limit of " + std::to_string(max_bytes);
  } else {
    (void)read_bounded(fd, max_bytes, text, why);
  }
  ::close(fd);
  if (!why.empty()) throw input_file_error(file.string(), why);
  return text;
}

std::string read_input_stream(std::istream& in, const std::string& name, std::size_t max_bytes) {
  std::string text;
  char buf[65536];
  while (in) {
    in.read(buf, sizeof buf);
    const auto n = static_cast<std::size_t>(in.gcount());
    if (text.size() + n > max_bytes) throw input_file_error(name, "is larger than " + std::to_string(max_bytes) + " bytes");
    text.append(buf, n);
  }
  if (in.bad()) throw input_file_error(name, "cannot read");
  return text;
}

}  // namespace customs::policy
