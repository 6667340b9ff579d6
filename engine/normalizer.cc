#include "engine/normalizer.h"

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/replace_rule.h"
#include "engine/status_macros.h"
#include "engine/tokenizer_json.h"
#include "engine/tokenizer_regex.h"
#include "utf8proc.h"

namespace tandem {
namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}

  absl::Status Normalize(std::string* text) const override {
    for (const auto& part : parts_) {
      TANDEM_RETURN_IF_ERROR(part->Normalize(text));
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// One of the four Unicode normalization forms.
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}

  absl::Status Normalize(std::string* text) const override {
    if (text->empty()) return absl::OkStatus();
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text->data()),
                     static_cast<utf8proc_ssize_t>(text->size()), &out,
                     static_cast<utf8proc_option_t>(options_));
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unicode normalization failed: ", utf8proc_errmsg(n)));
    }
    text->assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
    return absl::OkStatus();
  }

 private:
  int options_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}

  absl::Status Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prefix_);
    return absl::OkStatus();
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  explicit ReplaceNormalizer(ReplaceRule rule) : rule_(std::move(rule)) {}

  absl::Status Normalize(std::string* text) const override {
    return rule_.Apply(text);
  }

 private:
  ReplaceRule rule_;
};

absl::StatusOr<std::unique_ptr<Normalizer>> ParseSequence(
    const nlohmann::json& json, std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* list,
                          RequireField(json, "normalizers", path));
  const std::string list_path = JsonPath(path, "normalizers");
  if (!list->is_array()) return JsonError(list_path, "expected a list");
  std::vector<std::unique_ptr<Normalizer>> parts;
  for (size_t i = 0; i < list->size(); ++i) {
    TANDEM_ASSIGN_OR_RETURN(
        auto part, ParseNormalizer((*list)[i], JsonPath(list_path, i)));
    if (part != nullptr) parts.push_back(std::move(part));
  }
  return std::make_unique<SequenceNormalizer>(std::move(parts));
}

absl::StatusOr<std::unique_ptr<Normalizer>> ParseReplace(
    const nlohmann::json& json, std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(ReplaceRule rule, ReplaceRule::Parse(json, path));
  return std::make_unique<ReplaceNormalizer>(std::move(rule));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(
    const nlohmann::json& json, std::string_view path) {
  if (json.is_null()) return nullptr;
  TANDEM_ASSIGN_OR_RETURN(std::string type, ComponentType(json, path));
  constexpr int kStable = UTF8PROC_STABLE;
  if (type == "Sequence") return ParseSequence(json, path);
  if (type == "NFC") {
    return std::make_unique<UnicodeNormalizer>(kStable | UTF8PROC_COMPOSE);
  }
  if (type == "NFD") {
    return std::make_unique<UnicodeNormalizer>(kStable | UTF8PROC_DECOMPOSE);
  }
  if (type == "NFKC") {
    return std::make_unique<UnicodeNormalizer>(kStable | UTF8PROC_COMPOSE |
                                               UTF8PROC_COMPAT);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(kStable | UTF8PROC_DECOMPOSE |
                                               UTF8PROC_COMPAT);
  }
  if (type == "Prepend") {
    TANDEM_ASSIGN_OR_RETURN(std::string prefix,
                            RequireString(json, "prepend", path));
    return std::make_unique<PrependNormalizer>(std::move(prefix));
  }
  if (type == "Replace") return ParseReplace(json, path);
  return UnsupportedType("normalizer", type);
}

}  // namespace tandem
