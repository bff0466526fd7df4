#pragma once
// A small option parser shared by customsctl's keys and audit commands:
// "--name value" options (repeatable where allowed), "--flag" switches, and
// positional arguments. Unknown options are usage errors (exit 2).

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
  // Throws usage_error on an unknown option or a missing value.
  parsed_args(std::span<const std::string_view> args, const std::set<std::string>& valued,
              const std::set<std::string>& flags = {});

  [[nodiscard]] std::optional<std::string> get(const std::string& name) const;
  [[nodiscard]] std::string require(const std::string& name) const;  // throws usage_error
  [[nodiscard]] std::vector<std::string> all(const std::string& name) const;
  [[nodiscard]] bool flag(const std::string& name) const { return flags_.count(name) != 0; }
  [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

}  // namespace customs::tools
