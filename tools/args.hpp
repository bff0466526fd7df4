#pragma once
// A small option parser shared by customsctl's keys and audit commands:
// "--name value" options (repeatable where allowed), "--flag" switches, and
// positional arguments. Unknown options are usage errors (exit 2). `--help` and
// `-h` where an option may stand ask for the command's usage (help()); after
// `--` every argument is positional, also one that starts with dashes.

#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace customs::tools {

class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class parsed_args {
 public:
  // valued: options that take a value; flags: options without one.
  // Throws usage_error on an unknown option or a missing value, unless --help
  // came first (then the rest is not parsed).
  parsed_args(std::span<const std::string_view> args, const std::set<std::string>& valued,
              const std::set<std::string>& flags = {});

  [[nodiscard]] std::optional<std::string> get(const std::string& name) const;
  [[nodiscard]] std::string require(const std::string& name) const;  // throws usage_error
  [[nodiscard]] std::vector<std::string> all(const std::string& name) const;
  [[nodiscard]] bool flag(const std::string& name) const { return flags_.count(name) != 0; }
  [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }
  // --help or -h was given (as an option, not as a value or after `--`).
  [[nodiscard]] bool help() const { return help_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

// True when args ask for help (--help or -h before any `--`): for commands that
// parse their own arguments. A value that happens to be "--help" counts too.
[[nodiscard]] bool wants_help(std::span<const std::string_view> args);

}  // namespace customs::tools
