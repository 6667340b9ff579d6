// Turns generated token ids into text one id at a time, releasing text as
// soon as it is complete UTF-8.
//
// A character may span several tokens (byte-fallback "<0xF0>" "<0x9F>" ...
// or byte-level tokens holding part of an emoji's bytes); the detokenizer
// holds such bytes back until the character is complete, so every piece it
// releases is valid UTF-8 and never splits a character. Bytes that can
// never become a character (a stray continuation byte, a sequence broken
// by another byte) are released as U+FFFD at once, one per maximal invalid
// subsequence; Flush releases an incomplete trailing sequence as one
// U+FFFD. It also applies the decoder's rules for the start of the text
// (Metaspace drops the first token's leading space; Llama 2 and Mistral
// strip one leading space from the whole text).
//
// Where the ids decode to valid UTF-8, the pieces released by Add and Flush
// concatenate to exactly Tokenizer::Decode's text for the same ids and the
// same skip_special_tokens. For invalid bytes they may differ in the number
// of U+FFFD: Decode follows the model's decoder (a ByteFallback decoder
// replaces every byte of an invalid run), the detokenizer the rule above.
//
// Not thread-safe: one detokenizer per sequence, used by one thread at a
// time. The tokenizer must outlive it.
#ifndef TANDEM_ENGINE_STREAMING_DETOKENIZER_H_
#define TANDEM_ENGINE_STREAMING_DETOKENIZER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/tokenizer.h"

namespace tandem {

class StreamingDetokenizer {
 public:
  // Decodes with `tokenizer`, which must outlive this object. With
  // `skip_special_tokens`, special tokens (BOS, EOS, chat markers) add no
  // text, as with Decode's flag.
  explicit StreamingDetokenizer(const Tokenizer* tokenizer,
                                bool skip_special_tokens = true);

  // Takes the next id and returns the text it completes (often empty; may
  // include text held back by earlier ids). InvalidArgument, with nothing
  // changed, if `id` is outside the vocabulary.
  absl::StatusOr<std::string> Add(int32_t id);

  // Ends the sequence: returns what is still held back (an incomplete
  // character as U+FFFD) and starts over as for a new sequence.
  std::string Flush();

  // Bytes held back, waiting for the rest of a character (at most 3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  // Applies the leading strip to `text`, released at the start of output.
  void StripLeading(std::string* text);

  const Tokenizer* tokenizer_;
  const bool skip_special_tokens_;
  const std::string strip_content_;
  const int strip_count_;

  bool first_token_ = true;  // no token decoded yet
  int strip_left_;           // leading strip characters still to look for
  std::string pending_;      // bytes not yet released
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_STREAMING_DETOKENIZER_H_
