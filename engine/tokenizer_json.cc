#include "engine/tokenizer_json.h"

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace tandem {

std::string JsonPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return absl::StrCat(AbslView(path), ".", AbslView(key));
}

std::string JsonPath(std::string_view path, size_t index) {
  return absl::StrCat(AbslView(path), "[", index, "]");
}

absl::Status JsonError(std::string_view path, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(
      "tokenizer.json: ", AbslView(path), ": ", AbslView(problem)));
}

absl::Status UnsupportedType(std::string_view kind, std::string_view type) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: unsupported ",
                                                 AbslView(kind), " type '",
                                                 AbslView(type), "'"));
}

absl::StatusOr<const nlohmann::json*> RequireField(const nlohmann::json& obj,
                                                   std::string_view key,
                                                   std::string_view path) {
  if (!obj.is_object()) {
    return JsonError(path.empty() ? "(top level)" : path, "expected an object");
  }
  auto it = obj.find(key);
  if (it == obj.end()) {
    return JsonError(JsonPath(path, key), "missing field");
  }
  return &*it;
}

absl::StatusOr<std::string> RequireString(const nlohmann::json& obj,
                                          std::string_view key,
                                          std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* field,
                          RequireField(obj, key, path));
  if (!field->is_string()) {
    return JsonError(JsonPath(path, key), "expected a string");
  }
  return field->get<std::string>();
}

absl::StatusOr<int64_t> RequireInt(const nlohmann::json& obj,
                                   std::string_view key,
                                   std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* field,
                          RequireField(obj, key, path));
  if (!field->is_number_integer()) {
    return JsonError(JsonPath(path, key), "expected an integer");
  }
  return field->get<int64_t>();
}

absl::StatusOr<bool> OptionalBool(const nlohmann::json& obj,
                                  std::string_view key, std::string_view path,
                                  bool fallback) {
  if (!obj.is_object()) return JsonError(path, "expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    return JsonError(JsonPath(path, key), "expected true or false");
  }
  return it->get<bool>();
}

absl::StatusOr<std::string> ComponentType(const nlohmann::json& obj,
                                          std::string_view path) {
  return RequireString(obj, "type", path);
}

absl::StatusOr<std::string> PatternField(const nlohmann::json& obj,
                                         std::string_view path,
                                         bool* is_regex) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* pattern,
                          RequireField(obj, "pattern", path));
  const std::string pattern_path = JsonPath(path, "pattern");
  if (pattern->is_object() && pattern->contains("String")) {
    *is_regex = false;
    return RequireString(*pattern, "String", pattern_path);
  }
  if (pattern->is_object() && pattern->contains("Regex")) {
    *is_regex = true;
    return RequireString(*pattern, "Regex", pattern_path);
  }
  return JsonError(pattern_path,
                   "expected {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace tandem
