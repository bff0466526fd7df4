#include "tools/args.hpp"

namespace customs::tools {

parsed_args::parsed_args(std::span<const std::string_view> args, const std::set<std::string>& valued,
                         const std::set<std::string>& flags) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--") {  // the end of options: the rest are positional
      for (++i; i < args.size(); ++i) positional_.emplace_back(args[i]);
      break;
    }
    if (a == "--help" || a == "-h") {
      help_ = true;
      return;
    }
    if (a.size() > 2 && a.substr(0, 2) == "--") {
      std::string name(a.substr(2));
      std::optional<std::string> inline_value;
      if (const auto eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
      if (flags.count(name)) {
        if (inline_value) throw usage_error("--" + name + " takes no value");
        flags_.insert(name);
      } else if (valued.count(name)) {
        if (inline_value) {
          values_[name].push_back(*inline_value);
        } else {
          if (i + 1 >= args.size()) throw usage_error("--" + name + " needs a value");
          values_[name].emplace_back(args[++i]);
        }
      } else {
        throw usage_error("unknown option --" + name);
      }
    } else {
      positional_.emplace_back(a);
    }
  }
}

bool wants_help(std::span<const std::string_view> args) {
  for (const auto a : args) {
    if (a == "--") return false;
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

std::optional<std::string> parsed_args::get(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::string parsed_args::require(const std::string& name) const {
  auto v = get(name);
  if (!v) throw usage_error("--" + name + " is required");
  return *v;
}

std::vector<std::string> parsed_args::all(const std::string& name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace customs::tools
