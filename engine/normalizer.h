// Normalizers of Hugging Face tokenizer.json files: the text rewrite that
// runs on each stretch of input between added tokens, before
// pre-tokenization.
//
// Supported types: Sequence, NFC, NFD, NFKC, NFKD (Unicode normalization
// forms, by utf8proc), Prepend (adds its text in front of a non-empty
// stretch) and Replace (every match of a String or Regex pattern). A null
// normalizer is no normalizer. Immutable after parsing; thread-safe.
#ifndef TANDEM_ENGINE_NORMALIZER_H_
#define TANDEM_ENGINE_NORMALIZER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem {

class Normalizer {
 public:
  virtual ~Normalizer() = default;

  // Rewrites `*text` in place. REQUIRES: `*text` is valid UTF-8; it stays
  // valid UTF-8. InvalidArgument only if a Replace regex gives up on the
  // input (PCRE2's resource limits).
  virtual absl::Status Normalize(std::string* text) const = 0;
};

// Parses the normalizer at `path` (e.g. "normalizer"). Returns nullptr for
// a JSON null. InvalidArgument naming the field for a malformed one, and
// "tokenizer.json: unsupported normalizer type 'T'" for other types.
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(
    const nlohmann::json& json, std::string_view path);

}  // namespace tandem

#endif  // TANDEM_ENGINE_NORMALIZER_H_
