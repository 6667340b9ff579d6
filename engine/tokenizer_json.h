// Field access for parsing Hugging Face tokenizer.json files.
//
// Every error is InvalidArgument and reads "tokenizer.json: PATH: PROBLEM",
// where PATH names the field the way it is spelled in the file, e.g.
// "pre_tokenizer.pretokenizers[1].pattern.Regex". Pure functions on
// borrowed JSON; safe from any thread.
#ifndef TANDEM_ENGINE_TOKENIZER_JSON_H_
#define TANDEM_ENGINE_TOKENIZER_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tandem {

// Debian 12's Abseil has its own string_view type, which absl::StrCat and
// absl's hash maps take; this converts.
inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// "PATH.KEY", or KEY alone when PATH is empty.
std::string JsonPath(std::string_view path, std::string_view key);

// "PATH[INDEX]".
std::string JsonPath(std::string_view path, size_t index);

// InvalidArgument "tokenizer.json: PATH: PROBLEM".
absl::Status JsonError(std::string_view path, std::string_view problem);

// InvalidArgument "tokenizer.json: unsupported KIND type 'TYPE'", e.g. KIND
// "pre_tokenizer" for a pre-tokenizer nested at any depth.
absl::Status UnsupportedType(std::string_view kind, std::string_view type);

// The member `key` of `obj` (the object found at `path`). InvalidArgument if
// `obj` is not an object or lacks `key`.
absl::StatusOr<const nlohmann::json*> RequireField(const nlohmann::json& obj,
                                                   std::string_view key,
                                                   std::string_view path);

// The string member `key`. InvalidArgument if missing or not a string.
absl::StatusOr<std::string> RequireString(const nlohmann::json& obj,
                                          std::string_view key,
                                          std::string_view path);

// The integer member `key`. InvalidArgument if missing or not an integer.
absl::StatusOr<int64_t> RequireInt(const nlohmann::json& obj,
                                   std::string_view key, std::string_view path);

// The boolean member `key`, or `fallback` when it is absent or null.
// InvalidArgument if present with another type.
absl::StatusOr<bool> OptionalBool(const nlohmann::json& obj,
                                  std::string_view key, std::string_view path,
                                  bool fallback);

// The "type" string of a component object found at `path`.
absl::StatusOr<std::string> ComponentType(const nlohmann::json& obj,
                                          std::string_view path);

// A {"String": s} or {"Regex": r} pattern (Split, Replace). Sets `*is_regex`.
absl::StatusOr<std::string> PatternField(const nlohmann::json& obj,
                                         std::string_view path, bool* is_regex);

}  // namespace tandem

#endif  // TANDEM_ENGINE_TOKENIZER_JSON_H_
