#include "router/api_key.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tandem {
namespace {

constexpr absl::string_view kBearer = "bearer ";

absl::Status CheckKeyCharacters(const std::string& key,
                                const std::string& where) {
  for (unsigned char c : key) {
    if (c <= 0x20 || c >= 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       " holds a character other than printable ASCII without "
                       "spaces"));
    }
  }
  return absl::OkStatus();
}

// Whether `given` equals `key`, touching every byte of `given` whatever
// its contents, so that the time taken says nothing about the key.
bool SameKey(absl::string_view given, absl::string_view key) {
  unsigned char diff = given.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i]) ^
            static_cast<unsigned char>(key[i % key.size()]);
  }
  return diff == 0;
}

}  // namespace

absl::StatusOr<std::string> LoadApiKey(const std::string& key,
                                       const std::string& key_file) {
  if (!key.empty() && !key_file.empty()) {
    return absl::InvalidArgumentError(
        "--api_key and --api_key_file are both set; use one");
  }
  if (!key.empty()) {
    absl::Status checked = CheckKeyCharacters(key, "--api_key");
    if (!checked.ok()) return checked;
    return key;
  }
  if (key_file.empty()) return std::string();
  std::ifstream in(key_file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--api_key_file ", key_file, " cannot be read"));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string loaded(absl::StripAsciiWhitespace(contents.str()));
  if (loaded.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--api_key_file ", key_file, " is empty"));
  }
  absl::Status checked =
      CheckKeyCharacters(loaded, absl::StrCat("--api_key_file ", key_file));
  if (!checked.ok()) return checked;
  return loaded;
}

absl::Status CheckAuthorization(std::optional<absl::string_view> authorization,
                                const std::string& key) {
  if (key.empty()) return absl::OkStatus();
  if (!authorization.has_value() || authorization->empty()) {
    return absl::UnauthenticatedError(
        "this router requires an API key: send Authorization: Bearer <key>");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  if (value.size() < kBearer.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kBearer.size()), kBearer)) {
    return absl::UnauthenticatedError(
        "the Authorization value is not of the form 'Bearer <key>'");
  }
  value.remove_prefix(kBearer.size());
  if (!SameKey(absl::StripLeadingAsciiWhitespace(value), key)) {
    return absl::UnauthenticatedError("the API key is not valid");
  }
  return absl::OkStatus();
}

std::string BearerValue(absl::string_view key) {
  return absl::StrCat("Bearer ", key);
}

}  // namespace tandem
