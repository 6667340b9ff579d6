// Pre-tokenizers of Hugging Face tokenizer.json files: they cut normalized
// text into the words that BPE then encodes one at a time.
//
// Supported types:
//   Split      String or Regex pattern; behavior Removed, Isolated,
//              MergedWithPrevious, MergedWithNext or Contiguous; invert.
//   ByteLevel  optional prefix space (add_prefix_space), optional split by
//              the GPT-2 regex (use_regex), then every byte becomes its
//              byte-level character (engine/byte_level.h).
//   Metaspace  spaces become the replacement character (normally U+2581
//              '▁'), which is prepended per prepend_scheme ("always";
//              "first": only to the stretch that starts the input; "never")
//              and, with split, starts each word.
//   Sequence   each of "pretokenizers" in turn.
// A null pre-tokenizer leaves each stretch whole. Immutable after parsing;
// thread-safe.
#ifndef TANDEM_ENGINE_PRETOKENIZER_H_
#define TANDEM_ENGINE_PRETOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem {

// A stretch of text between added tokens, or a word cut from one.
struct PreToken {
  std::string text;
  // Whether it begins at the first byte of the input text.
  bool at_input_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;

  // Replaces `*pieces` by the words cut from them, in order, dropping empty
  // words. REQUIRES: every piece is valid UTF-8 (ByteLevel's output is too).
  // InvalidArgument only if a regex gives up on the input.
  virtual absl::Status PreTokenize(std::vector<PreToken>* pieces) const = 0;
};

// Parses the pre-tokenizer at `path` (e.g. "pre_tokenizer"). Returns nullptr
// for a JSON null. InvalidArgument naming the field for a malformed one, and
// "tokenizer.json: unsupported pre_tokenizer type 'T'" for other types.
absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(
    const nlohmann::json& json, std::string_view path);

}  // namespace tandem

#endif  // TANDEM_ENGINE_PRETOKENIZER_H_
