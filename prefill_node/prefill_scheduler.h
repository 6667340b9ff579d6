// The prefill worker's scheduler: which queued prompts enter the KV cache
// (admission by free blocks, first come first served) and which of their
// tokens each forward pass computes (a per-step token budget, long prompts
// chunked across steps).
//
// A prompt of n tokens takes ceil(n / block_size) blocks of the cache: its
// leading blocks imported from the KV store, the rest appended as its
// chunks are computed. Admission reserves all of them at once, so an
// admitted prompt never waits for blocks and admitted prompts cannot starve
// each other. Steps take admitted prompts in admission order, each getting
// as many of its remaining tokens as the budget has left; a prompt longer
// than the budget runs over several steps (chunked prefill: the cache keeps
// the positions computed before).
//
// Pure bookkeeping, no model and no cache. Thread-compatible.
#ifndef TANDEM_PREFILL_NODE_PREFILL_SCHEDULER_H_
#define TANDEM_PREFILL_NODE_PREFILL_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/paged_kv_cache.h"

namespace tandem {

struct PrefillSchedulerLimits {
  int block_size = 16;
  // Most prompt tokens one forward pass computes.
  int max_batch_tokens = 2048;
  // Most sequences one forward pass computes tokens of.
  int max_batch_sequences = 64;
};

// InvalidArgument naming the field unless every limit is at least 1.
absl::Status ValidatePrefillSchedulerLimits(
    const PrefillSchedulerLimits& limits);

// Tokens [begin, begin + length) of one prompt, computed in one step.
struct ScheduledChunk {
  SequenceId seq = 0;
  int begin = 0;
  int length = 0;
  // The chunk ends the prompt: its last token's logits give the first
  // sampled token.
  bool last = false;

  friend bool operator==(const ScheduledChunk&,
                         const ScheduledChunk&) = default;
};

class PrefillScheduler {
 public:
  // REQUIRES: ValidatePrefillSchedulerLimits(limits).ok().
  explicit PrefillScheduler(const PrefillSchedulerLimits& limits);

  PrefillScheduler(const PrefillScheduler&) = delete;
  PrefillScheduler& operator=(const PrefillScheduler&) = delete;

  // The first prompt position to compute for a prompt of `prompt_tokens`
  // tokens whose first `imported_blocks` full blocks come from the store:
  // the end of those blocks, except that the last token is always
  // computed (its logits give the first token), even when the store held
  // the whole prompt.
  static int ComputeFrom(int prompt_tokens, int imported_blocks,
                         int block_size);

  // The blocks a prompt of `prompt_tokens` tokens holds once prefilled.
  int BlocksFor(int prompt_tokens) const;

  // Queues a prompt behind the others. InvalidArgument, queuing nothing,
  // if `seq` is already known, `prompt_tokens` < 1, or `imported_blocks`
  // is negative or more than the prompt's full blocks.
  absl::Status Enqueue(SequenceId seq, int prompt_tokens, int imported_blocks);

  // Admits queued prompts in arrival order while each one's blocks fit in
  // `free_blocks` less the blocks already promised to admitted prompts, and
  // returns them in order. Stops at the first prompt that does not fit, so
  // that a large prompt is not overtaken forever.
  // REQUIRES: before the next call, the caller takes each admitted prompt's
  // imported blocks from the cache's free blocks, and later appends cache
  // slots only for planned chunks.
  std::vector<SequenceId> Admit(int free_blocks);

  // The chunks of the next step over the admitted prompts: in admission
  // order, at most limits.max_batch_sequences chunks of at most
  // limits.max_batch_tokens tokens together. Empty if nothing is admitted.
  std::vector<ScheduledChunk> PlanStep() const;

  // Records that `chunks` (from the last PlanStep) were computed. Prompts
  // whose last chunk was among them leave the scheduler. Chunks of unknown
  // sequences are skipped.
  void Complete(absl::Span<const ScheduledChunk> chunks);

  // Forgets `seq`, queued or admitted (a cancelled request), releasing its
  // reservation. Returns false if it was not known.
  bool Remove(SequenceId seq);

  bool empty() const { return queued_.empty() && admitted_.empty(); }
  int num_queued() const { return static_cast<int>(queued_.size()); }
  int num_admitted() const { return static_cast<int>(admitted_.size()); }
  // Tokens still to compute, queued and admitted prompts together.
  int64_t pending_tokens() const;
  // Blocks admitted prompts will still take from the free blocks.
  int reserved_blocks() const;

 private:
  struct Prompt {
    SequenceId seq = 0;
    int tokens = 0;           // prompt length
    int imported_blocks = 0;  // leading full blocks from the store
    int next = 0;             // first position not yet computed
  };

  // Blocks `prompt` holds in the cache after its computed positions.
  int HeldBlocks(const Prompt& prompt) const;

  const PrefillSchedulerLimits limits_;
  std::deque<Prompt> queued_;
  std::vector<Prompt> admitted_;  // in admission order
};

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_PREFILL_SCHEDULER_H_
