// Tokenizers: text to token ids and back, for the default byte-level model
// and for models shipping a Hugging Face tokenizer.json (Llama 2 and 3,
// Mistral, Qwen2 and later, TinyLlama and others using BPE).
//
// LoadTokenizer reads a model directory (or a tokenizer.json file) and
// returns the tokenizer that serves it:
//   - a ByteTokenizer (engine/byte_tokenizer.h) when tokenizer.json is the
//     default model's shape: a BPE model whose vocabulary is exactly the
//     256 tokens "<0x00>".."<0xFF>" at ids 0-255, no merges, byte_fallback,
//     no normalizer or pre-tokenizer, a ByteFallback (+ Fuse) decoder, and
//     added tokens at ids 256 and above. Bytes are their own ids.
//   - a BpeTokenizer (engine/bpe_tokenizer.h) for any other BPE model. It
//     gives the ids Hugging Face's tokenizers library gives for the same
//     file: added tokens are matched first, then the normalizer, the
//     pre-tokenizer and BPE run on the text between them, then the
//     post-processor adds special tokens. See normalizer.h, pretokenizer.h,
//     bpe_model.h, post_processor.h and token_decoder.h for the supported
//     component types; any other type is an InvalidArgument naming it.
// "truncation" and "padding" in tokenizer.json are ignored: Encode never
// shortens or pads.
//
// Thread-safety: every Tokenizer method is const and safe to call from any
// number of threads at once.
#ifndef TANDEM_ENGINE_TOKENIZER_H_
#define TANDEM_ENGINE_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"

namespace tandem {

// The beginning- and end-of-sequence ids of a model.
struct SpecialTokenIds {
  std::optional<int32_t> bos;
  // Every id that ends generation (a model may have several, e.g. Llama 3
  // instruct's <|end_of_text|> and <|eot_id|>).
  std::vector<int32_t> eos;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Encodes `text` into token ids. With `add_special_tokens`, adds the
  // special tokens the tokenizer's post-processor asks for (e.g. BOS for
  // Llama and Mistral; nothing for Qwen). Special tokens written in the
  // text (e.g. "<|im_start|>") always encode as their ids.
  // InvalidArgument if `text` is not valid UTF-8.
  absl::StatusOr<std::vector<int32_t>> Encode(
      std::string_view text, bool add_special_tokens = true) const;

  // Decodes `ids` into text (valid UTF-8; bytes that do not form UTF-8
  // become U+FFFD). Special tokens appear as their text unless
  // `skip_special_tokens`. InvalidArgument if an id is outside
  // [0, vocab_size()) or names no token.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool skip_special_tokens = false) const;

  // One past the largest token id (model vocabulary and added tokens).
  virtual int32_t vocab_size() const = 0;

  // The model's BOS id, if it has one.
  std::optional<int32_t> bos_id() const { return special_ids_.bos; }

  // The ids that end generation; may be empty.
  const std::vector<int32_t>& eos_ids() const { return special_ids_.eos; }

  // Whether `id` is one of eos_ids().
  bool IsEos(int32_t id) const;

  // Whether `id` is a special token (skipped by skip_special_tokens).
  virtual bool IsSpecialToken(int32_t id) const = 0;

  // The id of the token whose string is exactly `token` (as written in the
  // vocabulary, e.g. "ĠHello" or "<0x0A>", or an added token's content).
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;

  // The raw bytes token `id` contributes to decoded text, for streaming
  // (engine/streaming_detokenizer.h). `first` says whether it is the first
  // token decoded, which some decoders treat differently (Metaspace drops
  // its leading space). The bytes need not be complete UTF-8: a
  // byte-fallback token "<0xE4>" gives the single byte 0xE4. Concatenating
  // the pieces of a sequence, then removing leading_strip_count() leading
  // leading_strip_content() characters, gives Decode's text where that text
  // is valid UTF-8. InvalidArgument as Decode for a bad id.
  virtual absl::StatusOr<std::string> TokenBytes(int32_t id,
                                                 bool first) const = 0;

  // Characters the decoder removes from the start of the whole text (for
  // Llama 2 and Mistral: up to one space).
  virtual std::string leading_strip_content() const { return ""; }
  virtual int leading_strip_count() const { return 0; }

 protected:
  explicit Tokenizer(SpecialTokenIds special_ids)
      : special_ids_(std::move(special_ids)) {}

 private:
  // Encode and Decode after validating their input: `text` is valid UTF-8,
  // each id is in [0, vocab_size()).
  virtual absl::StatusOr<std::vector<int32_t>> EncodeValid(
      std::string_view text, bool add_special_tokens) const = 0;
  virtual absl::StatusOr<std::string> DecodeValid(
      absl::Span<const int32_t> ids, bool skip_special_tokens) const = 0;

  const SpecialTokenIds special_ids_;
};

// Settings that live beside tokenizer.json in a model directory.
struct TokenizerOptions {
  // config.json "bos_token_id" and generation_config.json (else
  // config.json) "eos_token_id". They win over everything below.
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;
  // tokenizer_config.json "bos_token" and "eos_token" (token text).
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  // tokenizer_config.json "add_bos_token" / "add_eos_token". Honoured only
  // when tokenizer.json has no post_processor (as for the default model):
  // Encode with special tokens then adds BOS before / EOS after the text.
  bool add_bos_token = false;
  bool add_eos_token = false;
  // Serve the default model's shape with ByteTokenizer (true) or with the
  // general BpeTokenizer (false; same ids, slower).
  bool allow_byte_tokenizer = true;
};

// Loads the tokenizer at `path`: a model directory holding tokenizer.json,
// or a tokenizer.json file. The directory (the file's directory) may also
// hold config.json, generation_config.json and tokenizer_config.json, read
// into TokenizerOptions. BOS: config.json, else tokenizer_config.json's
// bos_token, else the special token the post-processor puts first, else an
// added token named "<s>", "<|begin_of_text|>" or "<bos>". EOS:
// generation_config.json, else config.json, else tokenizer_config.json's
// eos_token, else the added special tokens among "</s>", "<|end_of_text|>",
// "<|eot_id|>", "<|endoftext|>", "<|im_end|>" and "<eos>".
// NotFound if there is no tokenizer.json; InvalidArgument, naming the file
// and field, for malformed JSON, a missing or mistyped field, merges naming
// unknown tokens, ids out of range, or an unsupported component type.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::filesystem::path& path);

// Builds a tokenizer from the text of a tokenizer.json. Errors as
// LoadTokenizer.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromJson(
    std::string_view json_text, const TokenizerOptions& options = {});

// As above, from parsed JSON.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromParsedJson(
    const nlohmann::json& root, const TokenizerOptions& options = {});

}  // namespace tandem

#endif  // TANDEM_ENGINE_TOKENIZER_H_
