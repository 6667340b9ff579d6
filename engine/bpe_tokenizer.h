// The general tokenizer for Hugging Face tokenizer.json BPE models (Llama
// 3, Qwen2, Mistral, Llama 2, TinyLlama, ...).
//
// Encode: added tokens are cut out of the text first; each stretch between
// them is normalized, pre-tokenized into words, and each word is encoded
// by the BPE model; the post-processor then adds special tokens. Decode:
// ids become token strings (added tokens' content, else the vocabulary's
// string) and the decoder chain turns them into text. Both follow Hugging
// Face's tokenizers library step by step, so ids and text agree with it.
//
// Built by LoadTokenizer (engine/tokenizer.h). Immutable apart from the BPE
// model's internal cache; thread-safe.
#ifndef TANDEM_ENGINE_BPE_TOKENIZER_H_
#define TANDEM_ENGINE_BPE_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/added_vocabulary.h"
#include "engine/bpe_model.h"
#include "engine/normalizer.h"
#include "engine/post_processor.h"
#include "engine/pretokenizer.h"
#include "engine/token_decoder.h"
#include "engine/tokenizer.h"

namespace tandem {

// The parts of a tokenizer.json, parsed. `normalizer` and `pre_tokenizer`
// may be null (none).
struct TokenizerParts {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;  // never null
  AddedVocabulary added;
  PostProcessor post_processor;
  TokenDecoder decoder;
};

class BpeTokenizer : public Tokenizer {
 public:
  // REQUIRES: parts.model is not null; `ids` lie in [0, vocab size).
  BpeTokenizer(TokenizerParts parts, SpecialTokenIds ids);

  int32_t vocab_size() const override { return vocab_size_; }
  bool IsSpecialToken(int32_t id) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  absl::StatusOr<std::string> TokenBytes(int32_t id, bool first) const override;
  std::string leading_strip_content() const override {
    return parts_.decoder.text_strip_content();
  }
  int leading_strip_count() const override {
    return parts_.decoder.text_strip_count();
  }

 private:
  absl::StatusOr<std::vector<int32_t>> EncodeValid(
      std::string_view text, bool add_special_tokens) const override;
  absl::StatusOr<std::string> DecodeValid(
      absl::Span<const int32_t> ids, bool skip_special_tokens) const override;

  // The string of token `id`; InvalidArgument if no token has it.
  absl::StatusOr<std::string_view> TokenString(int32_t id) const;

  TokenizerParts parts_;
  int32_t vocab_size_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_BPE_TOKENIZER_H_
