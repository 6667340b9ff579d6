#include "engine/replace_rule.h"

#include <utility>

#include "absl/strings/str_replace.h"
#include "engine/status_macros.h"
#include "engine/tokenizer_json.h"

namespace tandem {

ReplaceRule::ReplaceRule(std::string pattern,
                         std::optional<TokenizerRegex> regex,
                         std::string content)
    : pattern_(std::move(pattern)),
      regex_(std::move(regex)),
      content_(std::move(content)) {}

absl::StatusOr<ReplaceRule> ReplaceRule::Parse(const nlohmann::json& json,
                                               std::string_view path) {
  bool is_regex = false;
  TANDEM_ASSIGN_OR_RETURN(std::string pattern,
                          PatternField(json, path, &is_regex));
  TANDEM_ASSIGN_OR_RETURN(std::string content,
                          RequireString(json, "content", path));
  std::optional<TokenizerRegex> regex;
  if (is_regex) {
    TANDEM_ASSIGN_OR_RETURN(
        regex, TokenizerRegex::Compile(pattern, /*literal=*/false,
                                       JsonPath(path, "pattern.Regex")));
  }
  return ReplaceRule(std::move(pattern), std::move(regex), std::move(content));
}

absl::Status ReplaceRule::Apply(std::string* text) const {
  if (regex_.has_value()) return regex_->ReplaceAll(content_, text);
  if (!pattern_.empty()) {
    *text = absl::StrReplaceAll(*text, {{pattern_, content_}});
  }
  return absl::OkStatus();
}

}  // namespace tandem
