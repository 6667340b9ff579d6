// The decode worker's scheduler: continuous batching of decode sequences
// over one paged KV cache.
//
// One scheduler thread owns the model, the cache and the running batch, and
// loops over iterations (Step):
//
//   1. take in new requests, cancellations and finished block fetches;
//   2. cancelled sequences leave at once, their blocks freed;
//   3. a sequence whose blocks arrived imports them into the blocks reserved
//      for it and joins the batch; a new one streams its first token (the
//      prefill's) through the same stop and text logic as every other;
//   4. admission: the oldest waiting sequence is admitted while the batch
//      (running plus fetching) is below max_batch and the cache has the
//      blocks for its tokens plus the next one; its blocks are reserved
//      (PagedKvCache::AllocateBlock) and fetched by a fetch thread, so the
//      store's latency never stalls the batch;
//   5. one decode step: every running sequence gets a slot for its newest
//      token, Model::DecodeStep runs over all of them, each row is sampled
//      with its own SequenceSamplingState and accepted (sequence.h), and
//      sequences that finished leave the batch.
//
// Memory pressure. A request waits in a bounded queue (max_waiting counts
// every accepted request not yet running, those being fetched included);
// beyond it Submit returns ResourceExhausted. When the running sequences
// need more slots than the cache has free, the newest admitted sequence is
// preempted: a fetch in progress first, then the newest running one. Its
// blocks are freed and it goes back to the front of the waiting queue with
// its sampling, stop and detokenizer state intact. On re-admission it
// refetches its handoff blocks from the store and recomputes the KV of its
// generated tokens with one Model::Prefill over them; if the store no longer
// has the blocks (or cannot be reached) it recomputes the prompt as well.
// The stream continues where it stopped: no token is sent twice.
//
// Colocated sequences (DecodeInput::compute_prompt, decode_node
// --colocated) have no handoff: the scheduler computes their prompt itself,
// in the same loop and on the same engine threads as the decode batch.
// Admission reserves the blocks of the whole prompt, as for a handoff. With
// options.reuse_store, a fetch thread first asks the store for the prompt's
// longest stored prefix of full blocks and reads them; they are imported
// like handoff blocks (a block that fails its checks ends the prefix), and
// the last prompt token is always computed, for its logits. The rest of the
// prompt is then computed in chunks (state kPrefilling): each iteration
// runs one Model::Prefill over at most options.max_prefill_tokens_per_step
// tokens, shared by the prompts in progress in admission order, before the
// decode step, so a long prompt delays each decode step by one chunk rather
// than by its whole length. When a prompt's last chunk is computed its
// first token is sampled from that chunk's logits with the sequence's own
// sampler, streamed like every later token, the sequence joins the batch,
// and (with reuse_store) the full blocks computed here are written to the
// store by a fetch thread. A preempted colocated sequence recomputes its
// prompt and generated tokens the same way on re-admission.
//
// Outputs go to each sequence's SequenceObserver on the scheduler thread.
// Thread-safety: Submit, Cancel and Load are thread-safe; Step is for tests
// that drive the scheduler without its thread.
#ifndef TANDEM_DECODE_NODE_SCHEDULER_H_
#define TANDEM_DECODE_NODE_SCHEDULER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "decode_node/block_source.h"
#include "decode_node/decode_input.h"
#include "decode_node/decode_metrics.h"
#include "decode_node/sequence.h"
#include "engine/model.h"
#include "engine/paged_kv_cache.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

namespace tandem {

struct SchedulerOptions {
  int block_size = 16;
  // The KV cache's budget: PagedKvCache::BlockStrideBytes(layout) per block.
  size_t kv_cache_bytes = size_t{256} << 20;
  // Most sequences running or fetching at once; at least 1.
  int max_batch = 32;
  // Most accepted requests not yet running; at least 1.
  int max_waiting = 64;
  // Threads that fetch blocks; 0 fetches on the thread running Step (for
  // tests that drive Step themselves).
  int fetch_threads = 2;
  // Colocated sequences: most prompt tokens computed per iteration, over
  // every prompt in progress; at least 1.
  int max_prefill_tokens_per_step = 512;
  // Colocated sequences: import the leading blocks the store holds and
  // write the full blocks computed here (BlockSource::LongestPrefix,
  // GetMany, PutMany).
  bool reuse_store = false;
  // Where steps and sequences are reported; not owned, must outlive the
  // scheduler. Null: no metrics.
  DecodeMetrics* metrics = nullptr;
};

// A snapshot of the scheduler's occupancy.
struct SchedulerLoad {
  int running = 0;  // sequences in the batch
  int waiting = 0;  // accepted, not running (queued or fetching)
  int free_blocks = 0;
  int total_blocks = 0;
  int max_batch = 0;
  // Prompt tokens of colocated sequences still to compute.
  int64_t queued_tokens = 0;
  // Preemptions since the scheduler started.
  int64_t preemptions = 0;
};

class Scheduler {
 public:
  // Creates the KV cache for `model` with options.block_size tokens per
  // block. InvalidArgument for options out of range or a budget that holds
  // no block; ResourceExhausted if the cache cannot be allocated. `model`,
  // `tokenizer` and `blocks` are not owned and must outlive the scheduler.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(
      Model* model, const Tokenizer* tokenizer, BlockSource* blocks,
      const SchedulerOptions& options);

  // Stops the threads (waiting for fetches in flight) and ends every
  // sequence still here with Unavailable.
  ~Scheduler();

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the scheduler thread and the fetch threads. Call at most once.
  void Start();

  // Accepts a request; its output goes to `observer`. Returns the id to
  // Cancel it with. InvalidArgument or FailedPrecondition as
  // Sequence::Create; ResourceExhausted if the waiting queue is full or the
  // whole cache cannot hold the prompt plus max_tokens. Thread-safe.
  absl::StatusOr<SequenceId> Submit(DecodeInput input,
                                    std::shared_ptr<SequenceObserver> observer);

  // Ends sequence `id` without further output; its blocks are freed at the
  // scheduler's next iteration (after the decode step in progress, if any).
  // Unknown or finished ids are ignored. Thread-safe.
  void Cancel(SequenceId id);

  // Occupancy as of the last iteration, plus requests submitted since.
  // Thread-safe.
  SchedulerLoad Load() const;

  const KvLayout& layout() const { return cache_->layout(); }

  // One iteration (see the top of this file). REQUIRES: Start was not
  // called.
  void Step();

 private:
  struct FetchResult {
    SequenceId id;
    uint64_t epoch;
    std::vector<absl::StatusOr<std::string>> blocks;
  };
  struct FetchJob {
    enum class Kind {
      kHandoff,  // read `keys`
      kPrefix,   // read the longest stored prefix of `keys`
      kPublish,  // write `blocks`; no result
    };
    Kind kind = Kind::kHandoff;
    SequenceId id = 0;
    uint64_t epoch = 0;
    std::vector<BlockKey> keys;
    std::vector<std::string> blocks;
    std::string request_id;  // for logs
  };

  Scheduler(Model* model, const Tokenizer* tokenizer, BlockSource* blocks,
            const SchedulerOptions& options,
            std::unique_ptr<PagedKvCache> cache);

  void Loop();
  void FetchLoop();
  // Runs `job` on the calling thread; the result to Join, if any.
  std::optional<FetchResult> RunFetchJob(const FetchJob& job);
  // Hands `job` to the fetch threads, or runs it inline without any.
  void QueueFetchJob(FetchJob job);
  // Whether Step has work without news from other threads.
  bool HasLocalWork() const;

  // Iteration stages, on the scheduler thread.
  void TakeInbox(std::vector<SequenceId>* cancelled,
                 std::vector<FetchResult>* fetched);
  void Drop(SequenceId id);
  void Admit();
  void StartFetch(Sequence* seq);
  void Join(FetchResult result);
  void DecodeStep();
  void PublishLoad();

  // Block import and recomputation, on the scheduler thread.
  absl::Status ImportHandoff(Sequence* seq,
                             std::vector<absl::StatusOr<std::string>> blocks);
  absl::Status RecomputeAll(Sequence* seq);
  absl::Status PrefillTokens(Sequence* seq, absl::Span<const int32_t> tokens);
  void ReleaseReserved(Sequence* seq);

  // Colocated prompts, on the scheduler thread (scheduler_prompt.cc).
  // Imports the stored leading blocks `blocks` and starts computing the
  // rest of seq's cache run.
  void StartPrompt(Sequence* seq,
                   std::vector<absl::StatusOr<std::string>> blocks);
  absl::Status ImportPrefix(Sequence* seq,
                            std::vector<absl::StatusOr<std::string>> blocks);
  // One chunked prefill pass over the prompts in progress.
  void PrefillChunks();
  // Appends the cache slots of seq's next `tokens` run tokens, taking the
  // blocks from its reservation.
  absl::Status GrowForChunk(Sequence* seq, int tokens);
  // Samples the first tokens of `done` (rows `rows` of logits_) and moves
  // every sequence of `done` into the batch.
  void EndPrompts(absl::Span<Sequence* const> done,
                  absl::Span<const size_t> rows);
  void JoinBatch(Sequence* seq, std::optional<SampledToken> first);
  // Writes the full prompt blocks computed here to the store.
  void Publish(Sequence* seq);
  int64_t QueuedPromptTokens() const;

  // Leaving the batch, on the scheduler thread.
  bool MakeRoom();
  void Preempt(Sequence* seq);
  void Finish(Sequence* seq);
  void Fail(Sequence* seq, const absl::Status& status);
  void FailRunning(const absl::Status& status);
  void Forget(Sequence* seq);

  // Constant after construction.
  Model& model_;
  const Tokenizer& tokenizer_;
  BlockSource& blocks_;
  const SchedulerOptions options_;
  const int total_blocks_;

  // Owned by the scheduler thread (or the thread calling Step).
  std::unique_ptr<PagedKvCache> cache_;
  Sampler sampler_;
  std::vector<float> logits_;         // [batch, vocab]
  std::vector<float> sample_logits_;  // [prompts ending, vocab]
  absl::flat_hash_map<SequenceId, std::unique_ptr<Sequence>> sequences_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> fetching_;    // in admission order
  std::vector<Sequence*> prefilling_;  // in admission order
  std::vector<Sequence*> running_;     // in admission order
  int64_t preemptions_ = 0;

  mutable absl::Mutex mu_;
  absl::CondVar work_;   // news for the scheduler thread
  absl::CondVar fetch_;  // news for the fetch threads
  std::vector<std::unique_ptr<Sequence>> incoming_ ABSL_GUARDED_BY(mu_);
  std::vector<SequenceId> cancelled_ ABSL_GUARDED_BY(mu_);
  std::vector<FetchResult> fetched_ ABSL_GUARDED_BY(mu_);
  std::deque<FetchJob> fetch_jobs_ ABSL_GUARDED_BY(mu_);
  SchedulerLoad load_ ABSL_GUARDED_BY(mu_);
  SequenceId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;
  std::vector<std::thread> fetch_threads_;
};

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_SCHEDULER_H_
