// The decoder of a Hugging Face tokenizer.json: turns token strings back
// into text.
//
// Supported types, applied in order as a chain over the list of token
// strings exactly as Hugging Face's decoders are:
//   ByteLevel     byte-level characters back to bytes, all tokens joined,
//                 invalid UTF-8 replaced by U+FFFD (maximal subparts).
//   ByteFallback  runs of "<0xNN>" tokens back to bytes; a run that is not
//                 valid UTF-8 becomes one U+FFFD per byte.
//   Fuse          joins all tokens into one.
//   Strip         removes up to `start` leading and `stop` trailing
//                 `content` characters from each token.
//   Replace       replaces a String or Regex pattern in each token.
//   Metaspace     the replacement character ('▁') becomes a space, except
//                 in the first token, where it is dropped (unless
//                 prepend_scheme is "never").
//   Sequence      each of "decoders" in turn.
// A null decoder joins the tokens with single spaces.
//
// For streaming, DecodePiece gives one token's contribution as raw bytes;
// see engine/streaming_detokenizer.h. Immutable; thread-safe.
#ifndef TANDEM_ENGINE_TOKEN_DECODER_H_
#define TANDEM_ENGINE_TOKEN_DECODER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem {

// One decoder of the chain (internal to token_decoder.cc).
class DecoderStep;

class TokenDecoder {
 public:
  // A null decoder: joins token strings with single spaces.
  TokenDecoder();

  // Parses the "decoder" at `path`. InvalidArgument naming the field for a
  // malformed one; "tokenizer.json: unsupported decoder type 'T'" for
  // other types.
  static absl::StatusOr<TokenDecoder> FromJson(const nlohmann::json& json,
                                               std::string_view path);

  TokenDecoder(TokenDecoder&&);
  TokenDecoder& operator=(TokenDecoder&&);
  ~TokenDecoder();

  // The text of `tokens` (token strings in order), valid UTF-8.
  std::string Decode(std::vector<std::string> tokens) const;

  // The bytes `token` contributes to the text when decoded as part of a
  // sequence (`first`: as its first token), before any conversion of
  // invalid UTF-8: "<0xE4>" under ByteFallback gives the byte 0xE4 alone,
  // "ĠHello" under ByteLevel gives " Hello". The whole text additionally
  // loses up to text_strip_count() leading text_strip_content() characters
  // (a Strip that runs after tokens are joined, as Llama 2 and Mistral
  // drop the space before the first word); trailing strips are not
  // reflected.
  std::string DecodePiece(std::string_view token, bool first) const;

  const std::string& text_strip_content() const { return strip_content_; }
  int text_strip_count() const { return strip_count_; }

 private:
  // The flattened chain; empty for a null decoder.
  std::vector<std::unique_ptr<DecoderStep>> steps_;
  // Whether steps_[i] runs after tokens are joined into one.
  std::vector<bool> after_join_;
  std::string strip_content_;
  int strip_count_ = 0;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_TOKEN_DECODER_H_
