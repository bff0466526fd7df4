#pragma once
// Reading a file that a user names (a config file, a rule file, a text to
// explain, a held checkpoint), bounded: control plane, throws.
//
// Only a regular file is read. A FIFO, a device (/dev/zero, a terminal), a
// socket or a folder is refused before anything is read: the file is opened
// with O_NONBLOCK (opening a FIFO without a writer does not wait) and checked
// with fstat on the descriptor that is then read (no race with a rename). A
// file larger than max_bytes is refused, also one that grows past it while it
// is read. Symbolic links are followed (configs and rule folders use them).

#include <cstddef>
#include <filesystem>
#include <iosfwd>
#include <stdexcept>
#include <string>

namespace customs::policy {

// "PATH: why" (no line or column: the file as a whole is refused).
class input_file_error : public std::runtime_error {
 public:
  input_file_error(std::string file, std::string why)
      : std::runtime_error(file + ": " + why), file_(std::move(file)), why_(std::move(why)) {}
  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] const std::string& why() const noexcept { return why_; }

 private:
  std::string file_;
  std::string why_;
};

// The whole content of a regular file of at most max_bytes bytes.
[[nodiscard]] std::string read_input_file(const std::filesystem::path& file, std::size_t max_bytes);

// A stream read to its end (standard input: name "-"), at most max_bytes bytes
// (more: input_file_error naming `name`).
[[nodiscard]] std::string read_input_stream(std::istream& in, const std::string& name, std::size_t max_bytes);

}  // namespace customs::policy
