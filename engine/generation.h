// Local generation for one sequence: the prompt's ids are prefilled, then
// tokens are sampled and fed back one decode step at a time until a stop
// condition (engine/stop_conditions.h) ends the sequence. Each token and the
// text it releases are streamed through a callback as they are produced.
//
// This is the single-process path used by the `tandem` command-line tool
// and by tests; the cluster's workers split the same steps between prefill
// and decode nodes.
#ifndef TANDEM_ENGINE_GENERATION_H_
#define TANDEM_ENGINE_GENERATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/stop_conditions.h"
#include "engine/tokenizer.h"

namespace tandem {

struct GenerationRequest {
  // The prompt as token ids, special tokens included (Tokenizer::Encode
  // with add_special_tokens gives them). Empty: generation starts from the
  // model's BOS alone (for the default model, a fresh fortune).
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  // The most tokens to generate, an ending EOS included; at least 1. The
  // prompt plus max_tokens must fit in the model's context
  // (max_position_embeddings).
  int max_tokens = 128;
  // Strings that end generation; the text stops before them.
  std::vector<std::string> stop;
  // Ids that end generation besides the EOS ids.
  std::vector<int32_t> stop_token_ids;
  // Keep generating past EOS ids (benchmarks, tests); stop_token_ids still
  // apply.
  bool ignore_eos = false;
};

// One generated token, as streamed to the callback.
struct GeneratedToken {
  int32_t token = 0;
  // log p(token) under the model's distribution (see SampledToken).
  float logprob = 0.0f;
  // The sampling.num_logprobs most probable alternatives; empty if none
  // were asked for.
  std::vector<TokenLogprob> top_logprobs;
  // Text released with this token: complete UTF-8, possibly empty, possibly
  // including text of earlier tokens that was held back. Special tokens add
  // no text. The pieces of all tokens concatenate to the generated text.
  std::string text;
  // kNone except on the last token.
  FinishReason finish = FinishReason::kNone;
};

struct GenerationResult {
  int prompt_tokens = 0;      // ids prefilled (BOS alone for an empty prompt)
  int completion_tokens = 0;  // tokens sampled, an ending EOS included
  FinishReason finish_reason = FinishReason::kNone;
  std::vector<int32_t> tokens;  // the generated ids
  std::string text;             // the generated text, as streamed
  double prefill_seconds = 0;   // prefill and the first token's sampling
  double decode_seconds = 0;    // every later decode step and sample
};

// Called once per generated token, in order. A non-OK status stops
// generation and is returned by Generate.
using GenerationCallback =
    absl::FunctionRef<absl::Status(const GeneratedToken&)>;

// Checks `request` against the model and tokenizer without running
// anything. Returns the InvalidArgument errors Generate returns for a bad
// request (see below), or OK.
absl::Status ValidateGenerationRequest(const ModelConfig& config,
                                       const Tokenizer& tokenizer,
                                       const GenerationRequest& request);

// InvalidArgument unless a prompt of `prompt_tokens` tokens leaves room in
// a context of `context` tokens ("prompt has N tokens ...") and `max_tokens`
// more tokens fit after it ("max_tokens=... does not fit ..."). These are
// Generate's context limits, for callers that run the steps themselves.
absl::Status CheckFitsContext(int prompt_tokens, int max_tokens, int context);

// Generates a continuation of request.prompt_ids with `model`, decoding
// text with `tokenizer` (ids the tokenizer does not know, such as padding
// rows of a larger model vocabulary, add no text). EOS ids are the model
// config's eos_token_ids and the tokenizer's eos_ids().
//
// Returns InvalidArgument naming the field for sampling parameters that
// ValidateSamplingParams rejects, max_tokens < 1, an empty stop string, a
// prompt id outside the model's vocabulary, an empty prompt for a model
// with no BOS, a prompt that does not fit in the context
// ("prompt has N tokens ...") or a max_tokens that does not fit after the
// prompt ("max_tokens ..."); ResourceExhausted if the KV cache cannot be
// allocated; any error the callback returns.
//
// Not thread-safe for one `model` (see Model); the tokenizer may be shared.
absl::StatusOr<GenerationResult> Generate(Model& model,
                                          const Tokenizer& tokenizer,
                                          const GenerationRequest& request,
                                          GenerationCallback on_token);

}  // namespace tandem

#endif  // TANDEM_ENGINE_GENERATION_H_
