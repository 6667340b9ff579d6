// The Replace component of tokenizer.json, shared by normalizers and
// decoders: every match of a literal string or a regex becomes `content`.
#ifndef TANDEM_ENGINE_REPLACE_RULE_H_
#define TANDEM_ENGINE_REPLACE_RULE_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer_regex.h"
#include "nlohmann/json.hpp"

namespace tandem {

class ReplaceRule {
 public:
  // Reads {"pattern": {"String" | "Regex": ...}, "content": ...} at `path`.
  // InvalidArgument naming the field for a missing or mistyped field or a
  // regex that does not compile.
  static absl::StatusOr<ReplaceRule> Parse(const nlohmann::json& json,
                                           std::string_view path);

  bool is_regex() const { return regex_.has_value(); }

  // Replaces every match in `text`. An empty literal pattern matches
  // nothing. A regex fails (Internal) only on PCRE2 resource limits.
  absl::Status Apply(std::string* text) const;

 private:
  ReplaceRule(std::string pattern, std::optional<TokenizerRegex> regex,
              std::string content);

  std::string pattern_;
  std::optional<TokenizerRegex> regex_;  // unset for a String pattern
  std::string content_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_REPLACE_RULE_H_
