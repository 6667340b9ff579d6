// A compiled regular expression for tokenizer.json patterns (Split
// pre-tokenizers, Replace normalizers and decoders), on PCRE2 with UTF and
// Unicode properties (\p{L}, \p{N}, \s as Unicode white space, lookahead,
// inline (?i:...) groups).
//
// Hugging Face compiles these patterns with Oniguruma, whose \s is Unicode
// White_Space; PCRE2's also matches U+180E, so Compile spells \s out as
// that set. One difference remains: character properties follow PCRE2's Unicode
// tables (Unicode 14 in Debian 12's PCRE2 10.42), so letters and digits first
// assigned in Unicode 15 or later count as neither here, while a Hugging Face
// build with newer tables counts them as \p{L} or \p{N}.
//
// Thread-safe: a compiled pattern is immutable and each search uses its own
// match state, so one TokenizerRegex may be shared by any number of threads.
#ifndef TANDEM_ENGINE_TOKENIZER_REGEX_H_
#define TANDEM_ENGINE_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem {

// A [start, end) byte range of a match.
using MatchSpan = std::pair<size_t, size_t>;

class TokenizerRegex {
 public:
  // Compiles `pattern`, or, when `literal`, a pattern matching `pattern`'s
  // text exactly. InvalidArgument naming `path` (the field it came from)
  // if it does not compile.
  static absl::StatusOr<TokenizerRegex> Compile(std::string_view pattern,
                                                bool literal,
                                                std::string_view path);

  // Appends every non-overlapping match of the pattern in `text`, leftmost
  // first, as searching again after the end of each match (after an empty
  // match, one character further on) finds them. Empty matches are
  // included. REQUIRES: `text` is valid UTF-8. InvalidArgument if PCRE2
  // gives up on the input (its resource limits).
  absl::Status FindAll(std::string_view text,
                       std::vector<MatchSpan>* matches) const;

  // Replaces every match in `*text` with `replacement` (taken literally).
  absl::Status ReplaceAll(std::string_view replacement,
                          std::string* text) const;

 private:
  struct Code;
  explicit TokenizerRegex(std::shared_ptr<const Code> code)
      : code_(std::move(code)) {}

  std::shared_ptr<const Code> code_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_TOKENIZER_REGEX_H_
