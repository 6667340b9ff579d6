#include "engine/post_processor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer_json.h"

namespace tandem {
namespace {

// The ids of special token `name` from the template's "special_tokens".
absl::StatusOr<std::vector<int32_t>> SpecialIds(const nlohmann::json& json,
                                                const std::string& name,
                                                std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* specials,
                          RequireField(json, "special_tokens", path));
  const std::string specials_path = JsonPath(path, "special_tokens");
  if (!specials->is_object() || !specials->contains(name)) {
    return JsonError(specials_path,
                     absl::StrCat("no entry for special token '", name, "'"));
  }
  const std::string entry_path = JsonPath(specials_path, name);
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* ids,
                          RequireField((*specials)[name], "ids", entry_path));
  std::vector<int32_t> out;
  if (!ids->is_array()) {
    return JsonError(JsonPath(entry_path, "ids"), "expected a list of ids");
  }
  for (const nlohmann::json& id : *ids) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > INT32_MAX - 1) {
      return JsonError(JsonPath(entry_path, "ids"), "expected a list of ids");
    }
    out.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return out;
}

absl::StatusOr<PostProcessor> ParseTemplate(const nlohmann::json& json,
                                            std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* single,
                          RequireField(json, "single", path));
  const std::string single_path = JsonPath(path, "single");
  if (!single->is_array()) return JsonError(single_path, "expected a list");
  std::vector<int32_t> prefix, suffix;
  int sequences = 0;
  for (size_t i = 0; i < single->size(); ++i) {
    const nlohmann::json& piece = (*single)[i];
    const std::string piece_path = JsonPath(single_path, i);
    if (piece.is_object() && piece.contains("Sequence")) {
      ++sequences;
      continue;
    }
    if (!piece.is_object() || !piece.contains("SpecialToken")) {
      return JsonError(piece_path,
                       "expected {\"SpecialToken\": ...} or {\"Sequence\": "
                       "...}");
    }
    TANDEM_ASSIGN_OR_RETURN(
        std::string name, RequireString(piece["SpecialToken"], "id",
                                        JsonPath(piece_path, "SpecialToken")));
    TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                            SpecialIds(json, name, path));
    std::vector<int32_t>& side = sequences == 0 ? prefix : suffix;
    side.insert(side.end(), ids.begin(), ids.end());
  }
  if (sequences != 1) {
    return JsonError(single_path, "must hold the sequence exactly once");
  }
  return PostProcessor(std::move(prefix), std::move(suffix));
}

// BertProcessing and RobertaProcessing: "cls" and "sep" are [token, id].
absl::StatusOr<PostProcessor> ParseClsSep(const nlohmann::json& json,
                                          std::string_view path) {
  int32_t ids[2] = {0, 0};
  const char* keys[2] = {"cls", "sep"};
  for (int k = 0; k < 2; ++k) {
    TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* pair,
                            RequireField(json, keys[k], path));
    if (!pair->is_array() || pair->size() != 2 ||
        !(*pair)[1].is_number_integer() || (*pair)[1].get<int64_t>() < 0 ||
        (*pair)[1].get<int64_t>() > INT32_MAX - 1) {
      return JsonError(JsonPath(path, keys[k]), "expected [token, id]");
    }
    ids[k] = static_cast<int32_t>((*pair)[1].get<int64_t>());
  }
  return PostProcessor({ids[0]}, {ids[1]});
}

absl::StatusOr<PostProcessor> ParseSequence(const nlohmann::json& json,
                                            std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* list,
                          RequireField(json, "processors", path));
  const std::string list_path = JsonPath(path, "processors");
  if (!list->is_array()) return JsonError(list_path, "expected a list");
  std::vector<int32_t> prefix, suffix;
  for (size_t i = 0; i < list->size(); ++i) {
    TANDEM_ASSIGN_OR_RETURN(
        PostProcessor part,
        PostProcessor::FromJson((*list)[i], JsonPath(list_path, i)));
    prefix.insert(prefix.begin(), part.prefix().begin(), part.prefix().end());
    suffix.insert(suffix.end(), part.suffix().begin(), part.suffix().end());
  }
  return PostProcessor(std::move(prefix), std::move(suffix));
}

}  // namespace

absl::StatusOr<PostProcessor> PostProcessor::FromJson(
    const nlohmann::json& json, std::string_view path) {
  if (json.is_null()) return PostProcessor();
  TANDEM_ASSIGN_OR_RETURN(std::string type, ComponentType(json, path));
  if (type == "TemplateProcessing") return ParseTemplate(json, path);
  if (type == "ByteLevel") return PostProcessor();
  if (type == "Sequence") return ParseSequence(json, path);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    return ParseClsSep(json, path);
  }
  return UnsupportedType("post_processor", type);
}

std::vector<int32_t> PostProcessor::Apply(std::vector<int32_t> ids) const {
  if (adds_nothing()) return ids;
  std::vector<int32_t> out;
  out.reserve(prefix_.size() + ids.size() + suffix_.size());
  out.insert(out.end(), prefix_.begin(), prefix_.end());
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), suffix_.begin(), suffix_.end());
  return out;
}

}  // namespace tandem
