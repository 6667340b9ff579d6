// One request on a decode worker: its input, the per-sequence sampling,
// stop and detokenizer state that engine/generation.h keeps for a local
// sequence, the tokens generated so far, and where it stands in the
// scheduler (waiting, fetching its blocks, computing its prompt on a
// colocated worker, running).
//
// Tokens go through Accept exactly as through the local generation loop:
// recorded for the penalties, detokenized (ids the tokenizer does not know
// add no text), checked by the StopChecker, and on a finish not caused by a
// stop string the detokenizer's held-back bytes are flushed. The first
// token, which the prefill worker sampled, is accepted the same way, so the
// decode worker's stream equals `tandem generate` token for token.
//
// Thread-compatible: after Create, only the scheduler thread touches it.
#ifndef TANDEM_DECODE_NODE_SEQUENCE_H_
#define TANDEM_DECODE_NODE_SEQUENCE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "decode_node/decode_input.h"
#include "engine/generation.h"
#include "engine/model_config.h"
#include "engine/paged_kv_cache.h"
#include "engine/sampler.h"
#include "engine/stop_conditions.h"
#include "engine/streaming_detokenizer.h"
#include "engine/tokenizer.h"

namespace tandem {

// Receives one sequence's output. Called on the scheduler thread, so an
// implementation must return quickly and never block (queue the output).
// Thread-safe implementations only: the scheduler may call it while its
// owner is tearing down.
class SequenceObserver {
 public:
  virtual ~SequenceObserver() = default;

  // Token number `index` of the completion; index 0 is the prefill worker's
  // first token, whose logprob and top_logprobs are not known here (zero
  // and empty), except on a colocated worker, which samples it itself. The last
  // token carries token.finish != kNone.
  virtual void OnToken(const GeneratedToken& token, int index) = 0;

  // Colocated sequences only: the prompt was computed here, with the KV of
  // its first `cached_tokens` tokens imported from the store. Called once,
  // just before token 0.
  virtual void OnPromptComputed(int cached_tokens) {}

  // The sequence ended without finishing: NotFound, FailedPrecondition,
  // DataLoss, Unavailable or DeadlineExceeded if its blocks could not be
  // fetched or used, ResourceExhausted if the KV cache cannot hold it,
  // Internal for an engine failure, Unavailable when the worker shuts down.
  // Never called after the last token, nor for a cancelled sequence.
  virtual void OnError(const absl::Status& status) = 0;
};

// Cache blocks that hold `tokens` token slots: ceil(tokens / block_size).
inline int BlocksFor(int tokens, int block_size) {
  return (tokens + block_size - 1) / block_size;
}

class Sequence {
 public:
  // kPrefilling: a colocated sequence whose cache run (CacheRun) is being
  // computed chunk by chunk.
  enum class State { kWaiting, kFetching, kPrefilling, kRunning };

  // Builds the state for `input`, checked against the model and tokenizer.
  // InvalidArgument naming the field for a token id outside the
  // vocabulary, a prompt that leaves no room in the context, a max_tokens
  // that does not fit after the prompt, or a handoff key that does not
  // match the prompt's tokens (block_keys[i] for a colocated input);
  // FailedPrecondition if the handoff is for another model or block size
  // than `block_size`.
  static absl::StatusOr<std::unique_ptr<Sequence>> Create(
      SequenceId id, DecodeInput input, const ModelConfig& config,
      const Fingerprint& model, int block_size, const Tokenizer& tokenizer,
      std::shared_ptr<SequenceObserver> observer);

  SequenceId id() const { return id_; }
  const DecodeInput& input() const { return input_; }
  SequenceObserver& observer() const { return *observer_; }

  // Tokens accepted so far, the first token included.
  const std::vector<int32_t>& generated() const { return generated_; }
  // Why the sequence finished; kNone while it runs.
  FinishReason finish_reason() const { return finish_; }

  // Token slots the cache must hold before the next decode step: the
  // prompt and every accepted token but the newest, which the step feeds.
  int CacheTokens() const;
  // The most token slots the sequence can ever need.
  int MaxCacheTokens() const;
  // The tokens whose KV the cache must hold before the next decode step
  // (CacheTokens() of them): the prompt and every accepted token but the
  // newest.
  std::vector<int32_t> CacheRun() const;

  // The token the next decode step feeds. REQUIRES: generated() not empty.
  int32_t last_token() const { return generated_.back(); }

  SequenceSamplingState& sampling() { return sampling_; }

  // Accepts the first token (from the prefill) and tells the observer.
  // Returns whether the sequence has finished. Internal if the tokenizer
  // rejects the token. REQUIRES: generated() is empty.
  absl::StatusOr<bool> AcceptFirstToken();
  // Accepts a sampled token and tells the observer; as AcceptFirstToken.
  // REQUIRES: the sequence has not finished, and generated() is not empty
  // unless input().compute_prompt.
  absl::StatusOr<bool> AcceptSampled(SampledToken sampled);

  // Scheduler bookkeeping, owned by the scheduler thread.
  State state = State::kWaiting;
  // Blocks allocated for the fetch in progress (state kFetching).
  std::vector<BlockId> reserved;
  // Bumped at each fetch, so a stale fetch result is recognized.
  uint64_t fetch_epoch = 0;
  // Times the sequence was evicted from the batch.
  int preemptions = 0;
  // Colocated, state kPrefilling: the run being computed (CacheRun), how
  // many of its tokens are in the cache, and how many of those came from
  // the store (whole blocks).
  std::vector<int32_t> run;
  int computed = 0;
  int imported_tokens = 0;

 private:
  Sequence(SequenceId id, DecodeInput input, SequenceSamplingState sampling,
           StopChecker stop, const Tokenizer& tokenizer,
           std::shared_ptr<SequenceObserver> observer);

  absl::StatusOr<bool> Accept(GeneratedToken token);

  const SequenceId id_;
  const DecodeInput input_;
  const Tokenizer& tokenizer_;
  const std::shared_ptr<SequenceObserver> observer_;
  SequenceSamplingState sampling_;
  StopChecker stop_;
  StreamingDetokenizer detokenizer_;
  std::vector<int32_t> generated_;
  FinishReason finish_ = FinishReason::kNone;
};

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_SEQUENCE_H_
