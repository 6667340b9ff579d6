// A prefill request as the prefill worker runs it, what it produces, and the
// checks a request must pass against the served model before it is queued.
// Plain values; the checks are pure functions, thread-safe.
#ifndef TANDEM_PREFILL_NODE_PREFILL_JOB_H_
#define TANDEM_PREFILL_NODE_PREFILL_JOB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/block_key.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "engine/sampler.h"

namespace tandem {

// What the worker serves: the model and the block size it keys blocks by.
struct ServedModel {
  ModelConfig config;
  Fingerprint fingerprint;
  int block_size = 16;
};

struct PrefillJob {
  // For logs; may be empty.
  std::string request_id;
  std::vector<int32_t> prompt;
  // The key chain of the prompt's full blocks (engine/block_key.h), as the
  // router computed it.
  std::vector<BlockKey> block_keys;
  // Leading blocks the router saw in the store; informational only, the
  // worker asks the store itself.
  int cached_blocks_hint = 0;
  // The seed is always set by the router.
  SamplingParams sampling;
  // Whether to report the first token's logprob (and
  // sampling.num_logprobs alternatives).
  bool logprobs = false;
  // The request is abandoned once this passes.
  absl::Time deadline = absl::InfiniteFuture();
};

// Where the prompt's KV cache is in the store once prefilled: the contract
// with the decode worker (docs/prefill_to_decode_handoff.md).
struct PrefillHandoff {
  Fingerprint model;
  int block_size = 0;
  int prompt_tokens = 0;
  // The key of every full block of the prompt, in token order.
  std::vector<BlockKey> full_blocks;
  // The trailing partial block's key; absent when the prompt fills whole
  // blocks.
  std::optional<BlockKey> partial_block;
  // Draws the request's sampler has taken (one, for the first token).
  uint64_t next_draw = 0;
};

struct PrefillResult {
  // The first sampled token, its logprob and alternatives (those only when
  // the job asked for logprobs).
  SampledToken first;
  PrefillHandoff handoff;
  // Prompt tokens computed here, and those whose KV came from the store.
  int computed_tokens = 0;
  int cached_tokens = 0;
  // From the worker accepting the job until the step that admitted the
  // prompt into the cache and computed its first chunk.
  absl::Duration queue_time;
};

// Checks `job` against `model`. InvalidArgument naming the field for: an
// empty prompt; a prompt_token_ids entry outside the vocabulary; a prompt
// that leaves no room for a generated token within max_position_embeddings;
// block_keys that differ from the key chain this worker computes from the
// prompt, the model fingerprint and block size (count or any key); a
// negative cached_blocks_hint; sampling parameters ValidateSamplingParams
// rejects.
absl::Status ValidatePrefillJob(const PrefillJob& job,
                                const ServedModel& model);

// The key of the trailing partial block of `prompt` (prompt.size() %
// block_size tokens): ComputeBlockKey over those tokens with the prompt's
// last full block as parent (none for a prompt shorter than a block).
// nullopt when the prompt fills whole blocks.
// REQUIRES: block_size >= 1 and full_keys is the prompt's key chain.
std::optional<BlockKey> PartialBlockKey(const Fingerprint& model,
                                        absl::Span<const BlockKey> full_keys,
                                        absl::Span<const int32_t> prompt,
                                        int block_size);

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_PREFILL_JOB_H_
