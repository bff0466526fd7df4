#pragma once
// The canonical form of a rule set and its content hash (private to policy/).
//
// The canonical form is JSON text with a fixed key order (alphabetical), packs
// and their groups, detectors, rules and exceptions sorted by id, and every list
// whose order carries no meaning (members, keywords, tags, references, ...)
// sorted and de-duplicated; defaults are written out. Embedded tests are not part
// of it: they never change a verdict. YAML layout, comments, key order, quoting
// and the split of packs over files therefore leave it unchanged; any change that
// can alter a verdict, a redaction, a tag or a cited reference alters it.
//
// hash = hex(SHA-256("customs/rule-set/v1\n" || canonical form)).
#include <string>

namespace customs::policy::detail {
class compiled_rule_set;
[[nodiscard]] std::string canonical_form(const compiled_rule_set& set);
[[nodiscard]] std::string canonical_hash(const compiled_rule_set& set);
}  // namespace customs::policy::detail
namespace customs::policy {
using detail::canonical_hash;
}
