// The compute stage of the prefill worker: the model, its paged KV cache,
// the sampler and the scheduler. Prompts arrive with the leading blocks the
// store already had; each Step admits the prompts whose blocks fit, imports
// their stored blocks, runs one batched forward pass over the scheduled
// chunks, samples the first token of every prompt that completes, encodes
// that prompt's new blocks for the store and frees its cache blocks.
#ifndef TANDEM_PREFILL_NODE_PREFILL_ENGINE_H_
#define TANDEM_PREFILL_NODE_PREFILL_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/model.h"
#include "engine/paged_kv_cache.h"
#include "engine/sampler.h"
#include "prefill_node/prefill_job.h"
#include "prefill_node/prefill_scheduler.h"

namespace tandem {

// A validated job and the encoded leading full blocks the store holds for
// it: blocks[i] is block i of the prompt, keyed job->block_keys[i], already
// checked with CheckStoredBlock.
struct FetchedPrompt {
  SequenceId seq = 0;
  std::shared_ptr<const PrefillJob> job;
  std::vector<std::string> blocks;
  // When the worker accepted the job; its result's queue_time counts from
  // here.
  absl::Time accepted = absl::Now();
};

// A prompt that left the engine: its result, and on success the encoded
// blocks to write to the store (every full block computed here, then the
// trailing partial block).
struct FinishedPrompt {
  SequenceId seq = 0;
  absl::StatusOr<PrefillResult> result;
  std::vector<std::string> new_blocks;
};

// Checks that `bytes` is an intact encoded block of `model`'s layout and
// fingerprint, keyed `key`, holding a full block. The codec's codes:
// DataLoss, InvalidArgument, FailedPrecondition.
absl::Status CheckStoredBlock(absl::string_view bytes, const ServedModel& model,
                              const KvLayout& layout, const BlockKey& key);

// Not thread-safe: one thread drives an engine.
class PrefillEngine {
 public:
  // An engine over `model` (owned) with a KV cache of as many blocks of
  // `limits.block_size` tokens as fit in `kv_cache_bytes`. InvalidArgument
  // for invalid limits or a budget without room for one block;
  // ResourceExhausted if the cache cannot be allocated.
  static absl::StatusOr<std::unique_ptr<PrefillEngine>> Create(
      std::unique_ptr<Model> model, size_t kv_cache_bytes,
      const PrefillSchedulerLimits& limits);

  PrefillEngine(const PrefillEngine&) = delete;
  PrefillEngine& operator=(const PrefillEngine&) = delete;
  ~PrefillEngine();

  const ServedModel& served() const { return served_; }
  const KvLayout& layout() const { return cache_->layout(); }
  int total_blocks() const { return cache_->num_blocks(); }
  int free_blocks() const { return cache_->num_free_blocks(); }

  // ResourceExhausted if a prompt of `prompt_tokens` tokens needs more
  // blocks than the whole cache holds (it could never run). Reads only
  // what is constant after construction, so any thread may call it, as it
  // may served() and layout().
  absl::Status CheckFits(int prompt_tokens) const;

  // Queues a prompt behind the others. InvalidArgument if its sequence id
  // is in use or its blocks do not match its job; ResourceExhausted as
  // CheckFits. REQUIRES: prompt.job passed ValidatePrefillJob.
  absl::Status Add(FetchedPrompt prompt);

  // Drops a queued or running prompt, freeing its cache blocks. False if
  // `seq` is not in the engine.
  bool Remove(SequenceId seq);

  // Admits what fits, runs one forward pass and returns the prompts that
  // left the engine during it: completed ones, and failed ones with their
  // status (Internal for our own faults). Does nothing when idle().
  std::vector<FinishedPrompt> Step();

  // True when no prompt is queued or running.
  bool idle() const { return scheduler_.empty(); }
  // True if the last Step, though not idle, could neither admit nor compute
  // anything; only new prompts or removals change that. (It cannot happen
  // while every queued prompt passes CheckFits.)
  bool stalled() const { return stalled_; }
  int num_queued() const { return scheduler_.num_queued(); }
  int num_running() const { return scheduler_.num_admitted(); }
  // Prompt tokens still to compute.
  int64_t pending_tokens() const { return scheduler_.pending_tokens(); }
  // Prompt tokens the last Step computed; 0 if it computed nothing.
  int last_step_tokens() const { return last_step_tokens_; }

 private:
  struct Prompt {
    std::shared_ptr<const PrefillJob> job;
    std::vector<std::string> fetched;  // dropped once imported
    int imported_blocks = 0;
    int computed_from = 0;
    absl::Time accepted;
    absl::Duration queue_time;  // set at admission
  };

  PrefillEngine(std::unique_ptr<Model> model,
                std::unique_ptr<PagedKvCache> cache,
                const PrefillSchedulerLimits& limits);

  // Puts a just-admitted prompt's stored blocks into the cache.
  absl::Status Import(SequenceId seq, Prompt& prompt);
  // Appends the chunks' slots and runs the forward pass into logits_.
  absl::Status Compute(absl::Span<const ScheduledChunk> plan);
  // A prompt's first token and its sampler's draw count after it.
  struct FirstToken {
    SampledToken token;
    uint64_t next_draw = 0;
  };

  // Samples the first token of each prompt whose last chunk is plan[i] for
  // i in `rows`, and finishes those prompts into `out`.
  void FinishPrompts(absl::Span<const ScheduledChunk> plan,
                     absl::Span<const size_t> rows,
                     std::vector<FinishedPrompt>& out);
  // Samples seqs[r] from row rows[r] of logits_, with a fresh sampling
  // state per prompt that has recorded the prompt.
  absl::StatusOr<std::vector<FirstToken>> SampleFirstTokens(
      absl::Span<const SequenceId> seqs, absl::Span<const size_t> rows);
  // The result of a sampled prompt and its blocks to write.
  FinishedPrompt Finish(SequenceId seq, FirstToken first);
  absl::StatusOr<std::vector<std::string>> ExportNewBlocks(
      SequenceId seq, const Prompt& prompt);
  // Forgets `seq` everywhere, freeing its cache blocks.
  void Drop(SequenceId seq);

  std::unique_ptr<Model> model_;
  std::unique_ptr<PagedKvCache> cache_;
  const ServedModel served_;
  PrefillScheduler scheduler_;
  Sampler sampler_;
  absl::flat_hash_map<SequenceId, Prompt> prompts_;
  bool stalled_ = false;
  int last_step_tokens_ = 0;
  std::vector<float> logits_;         // [chunks, vocab]
  std::vector<float> sample_logits_;  // [completed prompts, vocab]
};

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_PREFILL_ENGINE_H_
