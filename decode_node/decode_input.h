// What a decode worker is asked to do for one request, in engine terms: the
// prompt, the first token the prefill worker sampled, where the prompt's KV
// blocks are in the KV store (the handoff) and how to go on sampling and
// stopping. DecodeInputFromProto turns a tandem.v1.DecodeRequest into one.
//
// The handoff (docs/prefill_to_decode_handoff.md): the prompt's
// prompt_tokens / block_size full blocks keyed by the engine's key chain
// (engine/block_key.h ComputeKeyChain), then, when the prompt does not fill
// whole blocks, its trailing partial block keyed by the same chain rule over
// its tokens, and the number of draws the sampler took for the first token.
//
// A colocated worker (decode_node --colocated) is asked for whole requests
// (tandem.v1.ColocatedRequest): ColocatedInputFromProto makes a DecodeInput
// with compute_prompt set, whose handoff carries only the prompt's full
// block keys (for reusing and publishing store blocks) and no first token.
#ifndef TANDEM_DECODE_NODE_DECODE_INPUT_H_
#define TANDEM_DECODE_NODE_DECODE_INPUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/block_key.h"
#include "engine/model_weights.h"
#include "engine/sampler.h"
#include "proto/worker.pb.h"

namespace tandem {

// Where a prompt's KV cache lives once prefilled.
struct KvHandoff {
  Fingerprint model;
  int block_size = 0;
  // One key per full block of the prompt, in token order.
  std::vector<BlockKey> full_blocks;
  // The key of the trailing partial block; absent when the prompt fills
  // whole blocks.
  std::optional<BlockKey> partial_block;
  // SequenceSamplingState::next_draw() after the first token was sampled.
  uint64_t next_draw = 0;
};

struct DecodeInput {
  // For logs only; may be empty.
  std::string request_id;
  // The prompt's token ids; not empty.
  std::vector<int32_t> prompt;
  // Colocated: the worker computes the prompt and samples the first token
  // itself. Then first_token is unused, and the handoff holds this worker's
  // fingerprint and block size, the prompt's full block keys, no partial
  // block and next_draw 0.
  bool compute_prompt = false;
  // The token the prefill worker sampled after the prompt.
  int32_t first_token = 0;
  KvHandoff handoff;
  // sampling.num_logprobs alternatives are reported with each token when
  // `logprobs` is set.
  SamplingParams sampling;
  bool logprobs = false;
  // The most tokens to generate, the first token included; at least 1.
  int max_tokens = 1;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  // EOS does not end the sequence (stop token ids and strings still do).
  bool ignore_eos = false;
};

// Converts `request`, checking what can be checked without the model.
// InvalidArgument naming the field for: an empty prompt_token_ids, a
// negative token id, max_tokens < 1, a missing handoff or handoff.model, a
// block_size that is not positive, handoff.prompt_tokens differing from the
// number of prompt ids, a number of full block keys other than
// prompt_tokens / block_size, a partial block key present or absent against
// prompt_tokens % block_size, a missing sampling.seed, sampling parameters
// outside their ranges (ValidateSamplingParams), logprobs above
// kMaxLogprobs, or an empty stop string. A negative logprobs means none.
absl::StatusOr<DecodeInput> DecodeInputFromProto(
    const v1::DecodeRequest& request);

// Converts a colocated worker's `request` for a worker serving `model` with
// KV blocks of `block_size` tokens. InvalidArgument naming the field as
// DecodeInputFromProto (without the handoff and first_token checks), and
// for a negative cached_blocks_hint. The block keys are checked against the
// prompt later, by Sequence::Create.
absl::StatusOr<DecodeInput> ColocatedInputFromProto(
    const v1::ColocatedRequest& request, const Fingerprint& model,
    int block_size);

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_DECODE_INPUT_H_
