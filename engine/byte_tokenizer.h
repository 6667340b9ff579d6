// The byte tokenizer of Tandem's default model: ids 0-255 are the bytes of
// the UTF-8 text, and special tokens (for the default model "<s>" = 256,
// BOS, and "</s>" = 257, EOS) follow them.
//
// Special tokens written in the text encode as their ids, matched as
// engine/added_vocabulary.h describes; every other byte is its own id.
// Encode with special tokens adds the post-processor's tokens (BOS for the
// default model, whose tokenizer_config.json sets add_bos_token). Decode
// follows the default model's ByteFallback + Fuse decoder: a run of byte
// ids that is valid UTF-8 is that text, a run that is not becomes one
// U+FFFD per byte, and special tokens read as their text unless skipped.
//
// LoadTokenizer (engine/tokenizer.h) builds one for a tokenizer.json of the
// default model's shape; Create builds one directly. Immutable; thread-safe.
#ifndef TANDEM_ENGINE_BYTE_TOKENIZER_H_
#define TANDEM_ENGINE_BYTE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/added_vocabulary.h"
#include "engine/post_processor.h"
#include "engine/tokenizer.h"

namespace tandem {

class ByteTokenizer : public Tokenizer {
 public:
  // A tokenizer with special tokens "<s>" = `bos_id` and "</s>" = `eos_id`
  // whose Encode adds BOS when asked for special tokens (the default model:
  // Create(256, 257), vocabulary size 258). InvalidArgument unless both ids
  // are at least 256 and differ.
  static absl::StatusOr<std::unique_ptr<ByteTokenizer>> Create(int32_t bos_id,
                                                               int32_t eos_id);

  // REQUIRES: every added token's id is at least 256, `added` was built
  // without a normalizer, and `ids` lie in [0, vocab size).
  ByteTokenizer(AddedVocabulary added, PostProcessor post_processor,
                SpecialTokenIds ids);

  int32_t vocab_size() const override { return vocab_size_; }
  bool IsSpecialToken(int32_t id) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  absl::StatusOr<std::string> TokenBytes(int32_t id, bool first) const override;

 private:
  absl::StatusOr<std::vector<int32_t>> EncodeValid(
      std::string_view text, bool add_special_tokens) const override;
  absl::StatusOr<std::string> DecodeValid(
      absl::Span<const int32_t> ids, bool skip_special_tokens) const override;

  AddedVocabulary added_;
  PostProcessor post_processor_;
  int32_t vocab_size_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_BYTE_TOKENIZER_H_
