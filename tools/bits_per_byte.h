// Bits per byte of texts under a model: how well it predicts them, in a
// unit that compares models with different tokenizers.
//
// Each document is tokenized as BOS (if the model has one) + the ids of its
// text (Tokenizer::Encode without special tokens) + EOS (the first EOS id,
// if the model has one). Every token after the first is predicted from the
// tokens before it, and
//
//   bits per byte = sum of -log2 p(token) over the predicted tokens
//                   / (UTF-8 bytes of the documents + predicted EOS tokens)
//
// For the default byte-level model this is exactly the held-out figure of
// tools/train_default_model.py: every byte and the EOS of each document is
// predicted, and the count divided by is bytes + 1 per document.
//
// A document longer than the context is scored in windows: the first
// covers positions [0, context), each next one starts `stride` tokens
// later, and each window predicts only the tokens no earlier window did,
// so every token is predicted exactly once and, after the first window,
// with at least context - stride tokens before it. Short documents and
// windows are batched into one prefill.
#ifndef TANDEM_TOOLS_BITS_PER_BYTE_H_
#define TANDEM_TOOLS_BITS_PER_BYTE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace tandem {

struct ScoreOptions {
  // Tokens from one window's start to the next; 0: half the context.
  // Range [0, context].
  int stride = 0;
  // Most tokens per prefill (at least the context is allowed).
  int max_batch_tokens = 4096;
};

struct ScoreResult {
  double total_bits = 0;
  int64_t predicted_tokens = 0;
  int64_t documents = 0;
  int64_t bytes = 0;       // UTF-8 bytes of the documents
  int64_t eos_tokens = 0;  // predicted EOS tokens, one per document
  int64_t windows = 0;     // windows scored, each a context or less

  double bits_per_byte() const {
    return total_bits / static_cast<double>(bytes + eos_tokens);
  }
};

// Called after each batch with the tokens predicted so far and in all.
using ScoreProgress = absl::FunctionRef<void(int64_t done, int64_t total)>;

// Scores `documents` (see the file comment). InvalidArgument if a document
// is not valid UTF-8 (naming its index), if they hold no byte to score, or
// if options are out of range; errors of the forward pass otherwise.
// Not thread-safe for one `model`.
absl::StatusOr<ScoreResult> ScoreDocuments(
    Model& model, const Tokenizer& tokenizer,
    absl::Span<const std::string> documents, const ScoreOptions& options,
    ScoreProgress progress);

// Splits a fortune file into documents as tools/train_default_model.py
// does: fortunes are separated by lines holding only '%'; each loses its
// leading and trailing newlines; fortunes that are empty or only
// whitespace are dropped.
std::vector<std::string> SplitFortunes(std::string_view text);

}  // namespace tandem

#endif  // TANDEM_TOOLS_BITS_PER_BYTE_H_
