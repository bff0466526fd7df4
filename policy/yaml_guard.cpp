#include "policy/yaml_guard.hpp"

#include <vector>

namespace customs::policy {

namespace {

bool blank(char c) { return c == ' ' || c == '\t'; }

// "---" or "..." at column 0, alone or followed by a blank.
bool marker(std::string_view line, std::string_view m) {
  return line.starts_with(m) && (line.size() == 3 || blank(line[3]));
}

// What follows a marker: nothing or a comment.
bool only_comment(std::string_view rest) {
  std::size_t i = 0;
  while (i < rest.size() && blank(rest[i])) ++i;
  return i == rest.size() || rest[i] == '#';
}

// A block mapping entry at column 0: a plain key (not starting with an
// indicator) or a quoted key, then ':' followed by a blank or the line end.
bool mapping_key_line(std::string_view line) {
  if (line.empty()) return false;
  const char c = line[0];
  std::size_t i = 0;
  if (c == '"' || c == '\'') {
    for (i = 1; i < line.size(); ++i) {
      if (c == '"' && line[i] == '\\') {
        ++i;
        continue;
      }
      if (line[i] == c) {
        if (c == '\'' && i + 1 < line.size() && line[i + 1] == '\'') {
          ++i;
          continue;
        }
        break;
      }
    }
    if (i >= line.size()) return false;
    ++i;
    while (i < line.size() && blank(line[i])) ++i;
    return i < line.size() && line[i] == ':' && (i + 1 == line.size() || blank(line[i + 1]));
  }
  if (blank(c) || std::string_view(",[]{}#&*!|>%@`?-").find(c) != std::string_view::npos) return false;
  for (i = 1; i < line.size(); ++i) {
    if (line[i] == '#' && blank(line[i - 1])) return false;
    if (line[i] == ':' && (i + 1 == line.size() || blank(line[i + 1]))) return true;
  }
  return false;
}

}  // namespace

std::optional<yaml_refusal> check_yaml_top_level(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  // YAML's printable set has no C0 controls but tab, LF and CR, and no DEL; a
  // NUL at the start of a key line let yaml-cpp loop as above.
  std::size_t at_line = 1;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') ++at_line;
    else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
      return yaml_refusal{at_line, "a control character (YAML allows tab, line feed and carriage return only)"};
  }
  bool expect_root = true;
  // YAML directives belong before a document's "---": at the start of the
  // stream or after a "..." end marker. Anywhere else a line starting with '%'
  // made yaml-cpp 0.7 loop too ("a: b\n%\n,").
  bool directives_allowed = true;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (marker(line, "---") || marker(line, "...")) {
      if (!only_comment(line.substr(3)))
        return yaml_refusal{number, "content on a document marker line; start the document's mapping on the next line"};
      expect_root = true;
      directives_allowed = line.starts_with("...");
      continue;
    }
    if (!line.empty() && line[0] == '%') {
      if (!directives_allowed)
        return yaml_refusal{number, "a directive (a line starting with '%') inside a document; directives go before "
                                    "the document's `---`, at the start of the file or after `...`"};
      continue;
    }
    if (!expect_root) continue;
    std::size_t i = 0;
    while (i < line.size() && blank(line[i])) ++i;
    if (i == line.size() || line[i] == '#') continue;
    directives_allowed = false;
    if (i != 0 || !mapping_key_line(line))
      return yaml_refusal{number, "the top level must be a mapping: `key: value` lines starting at column 1"};
    expect_root = false;
  }
  return std::nullopt;
}

std::optional<yaml_refusal> check_yaml_expansion(const YAML::Node& root, const yaml_expansion_limits& limits) {
  std::size_t bytes = 0;
  std::size_t nodes = 0;
  std::vector<YAML::Node> todo{root};  // an explicit stack: nesting depth costs no native stack
  while (!todo.empty()) {
    const YAML::Node n = todo.back();
    todo.pop_back();
    if (!n.IsDefined()) continue;
    ++nodes;
    if (n.IsScalar()) bytes += n.Scalar().size();
    if (nodes > limits.max_nodes || bytes > limits.max_bytes) {
      const YAML::Mark m = n.Mark();
      const bool by_nodes = nodes > limits.max_nodes;
      return yaml_refusal{m.line >= 0 ? static_cast<std::size_t>(m.line) + 1 : 0,
                          by_nodes ? "with its aliases expanded, the file has more than " +
                                         std::to_string(limits.max_nodes) + " nodes (the limit)"
                                   : "with its aliases expanded, the file's strings add up to more than " +
                                         std::to_string(limits.max_bytes) + " bytes (the limit)"};
    }
    if (n.IsSequence()) {
      for (auto it = n.begin(); it != n.end(); ++it) todo.push_back(*it);
    } else if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        todo.push_back(it->first);
        todo.push_back(it->second);
      }
    }
  }
  return std::nullopt;
}

}  // namespace customs::policy
