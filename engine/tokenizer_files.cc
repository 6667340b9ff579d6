// LoadTokenizer: finds tokenizer.json and reads the model directory's
// config files into TokenizerOptions (see tokenizer.h).

#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_json.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

// The contents of `path`; NotFound if it does not exist.
absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": cannot be read"));
  }
  return contents.str();
}

// The parsed JSON object in `dir`/`name`, or null when the file is absent.
absl::StatusOr<nlohmann::json> ReadOptionalJson(const fs::path& dir,
                                                std::string_view name) {
  absl::StatusOr<std::string> text = ReadFile(dir / name);
  if (absl::IsNotFound(text.status())) return nlohmann::json();
  TANDEM_RETURN_IF_ERROR(text.status());
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat((dir / name).string(), ": not a JSON object"));
  }
  return json;
}

absl::Status FieldError(std::string_view file, std::string_view key,
                        std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(
      AbslView(file), ": ", AbslView(key), ": ", AbslView(problem)));
}

// An id field: null or absent gives nothing.
absl::StatusOr<std::vector<int32_t>> ReadIds(const nlohmann::json& json,
                                             std::string_view key,
                                             std::string_view file) {
  std::vector<int32_t> ids;
  if (!json.is_object() || !json.contains(key) || json[key].is_null()) {
    return ids;
  }
  const nlohmann::json& value = json[key];
  const nlohmann::json list =
      value.is_array() ? value : nlohmann::json::array({value});
  for (const nlohmann::json& id : list) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > INT32_MAX) {
      return FieldError(file, key, "expected a token id or a list of them");
    }
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return ids;
}

// A token text: a string or {"content": string}; null or absent: nothing.
absl::StatusOr<std::optional<std::string>> ReadTokenText(
    const nlohmann::json& json, std::string_view key, std::string_view file) {
  if (!json.is_object() || !json.contains(key) || json[key].is_null()) {
    return std::nullopt;
  }
  const nlohmann::json& value = json[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") &&
      value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return FieldError(file, key, "expected a string or {\"content\": ...}");
}

absl::StatusOr<bool> ReadFlag(const nlohmann::json& json, std::string_view key,
                              std::string_view file) {
  if (!json.is_object() || !json.contains(key) || json[key].is_null()) {
    return false;
  }
  if (!json[key].is_boolean()) return FieldError(file, key, "expected a bool");
  return json[key].get<bool>();
}

absl::StatusOr<TokenizerOptions> ReadOptions(const fs::path& dir) {
  TANDEM_ASSIGN_OR_RETURN(nlohmann::json config,
                          ReadOptionalJson(dir, "config.json"));
  TANDEM_ASSIGN_OR_RETURN(nlohmann::json generation,
                          ReadOptionalJson(dir, "generation_config.json"));
  TANDEM_ASSIGN_OR_RETURN(nlohmann::json tokenizer_config,
                          ReadOptionalJson(dir, "tokenizer_config.json"));
  TokenizerOptions options;
  TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> bos,
                          ReadIds(config, "bos_token_id", "config.json"));
  if (!bos.empty()) options.bos_token_id = bos[0];
  TANDEM_ASSIGN_OR_RETURN(
      options.eos_token_ids,
      ReadIds(generation, "eos_token_id", "generation_config.json"));
  if (options.eos_token_ids.empty()) {
    TANDEM_ASSIGN_OR_RETURN(options.eos_token_ids,
                            ReadIds(config, "eos_token_id", "config.json"));
  }
  constexpr std::string_view kTc = "tokenizer_config.json";
  TANDEM_ASSIGN_OR_RETURN(options.bos_token,
                          ReadTokenText(tokenizer_config, "bos_token", kTc));
  TANDEM_ASSIGN_OR_RETURN(options.eos_token,
                          ReadTokenText(tokenizer_config, "eos_token", kTc));
  TANDEM_ASSIGN_OR_RETURN(options.add_bos_token,
                          ReadFlag(tokenizer_config, "add_bos_token", kTc));
  TANDEM_ASSIGN_OR_RETURN(options.add_eos_token,
                          ReadFlag(tokenizer_config, "add_eos_token", kTc));
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::filesystem::path& path) {
  std::error_code error;
  const bool is_dir = fs::is_directory(path, error);
  const fs::path file = is_dir ? path / "tokenizer.json" : path;
  fs::path dir = is_dir ? path : path.parent_path();
  if (dir.empty()) dir = ".";
  TANDEM_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  absl::StatusOr<TokenizerOptions> options = ReadOptions(dir);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      options.ok()
          ? LoadTokenizerFromJson(text, *options)
          : absl::StatusOr<std::unique_ptr<Tokenizer>>(options.status());
  if (!tokenizer.ok()) {
    return absl::Status(
        tokenizer.status().code(),
        absl::StrCat(dir.string(), ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

}  // namespace tandem
