// The prefill worker: takes prefill jobs and runs each through three stages,
// each on its own threads, so that the store's network round trips never
// stall the forward passes:
//
//   fetch    asks the store how much of the prompt's key chain it holds and
//            reads those blocks (io_threads threads);
//   compute  the PrefillEngine: batched, chunked prefill under a per-step
//            token budget, first-token sampling, block export (one thread);
//   publish  writes the new blocks to the store, then answers
//            (io_threads threads).
//
// A cancelled job (Cancel, or its deadline passing) leaves whichever stage
// holds it at the next chance, freeing its cache blocks; its answer is then
// CANCELLED or DEADLINE_EXCEEDED.
#ifndef TANDEM_PREFILL_NODE_PREFILL_WORKER_H_
#define TANDEM_PREFILL_NODE_PREFILL_WORKER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prefill_node/block_store_link.h"
#include "prefill_node/prefill_engine.h"
#include "prefill_node/prefill_job.h"
#include "prefill_node/prefill_metrics.h"

namespace tandem {

struct PrefillWorkerOptions {
  // Jobs accepted and not yet answered, at most.
  int max_queued_requests = 1024;
  // Threads of the fetch stage, and as many of the publish stage.
  int io_threads = 2;
  // Where the stages report; not owned, must outlive the worker. Null: no
  // metrics.
  PrefillMetrics* metrics = nullptr;
  // Whether the fetch stage looks up the prompt's leading blocks in the
  // store and imports them. false computes every prompt in full (new
  // blocks are still published: the decode worker reads them).
  bool prefix_reuse = true;
};

// A snapshot of the worker's load.
struct PrefillLoad {
  int queued_requests = 0;    // accepted, first token not yet sampled
  int64_t queued_tokens = 0;  // prompt tokens of those still to compute
  int running_sequences = 0;  // in the cache now
  int waiting_sequences = 0;  // accepted, not yet in the cache
  int free_blocks = 0;
  int total_blocks = 0;
};

// Thread-safe.
class PrefillWorker {
 public:
  // Called exactly once per accepted job, from a worker thread, with the
  // result or the reason there is none: the store's codes (Unavailable
  // naming the node), Cancelled, DeadlineExceeded, Unavailable when the
  // worker shuts down first, Internal for our own faults.
  using Done = std::function<void(absl::StatusOr<PrefillResult>)>;

  // Starts the stages. `store` is not owned and must outlive the worker.
  // InvalidArgument for options below 1.
  static absl::StatusOr<std::unique_ptr<PrefillWorker>> Create(
      std::unique_ptr<PrefillEngine> engine, BlockStoreLink* store,
      const PrefillWorkerOptions& options);

  // Stops the stages; jobs not yet answered are answered Unavailable.
  ~PrefillWorker();

  PrefillWorker(const PrefillWorker&) = delete;
  PrefillWorker& operator=(const PrefillWorker&) = delete;

  const ServedModel& served() const { return served_; }

  // Accepts `job` and returns its ticket for Cancel; `done` runs later.
  // Rejects it, without calling `done`: InvalidArgument as
  // ValidatePrefillJob; ResourceExhausted if the prompt needs more blocks
  // than the cache holds or max_queued_requests jobs are pending;
  // Unavailable while shutting down.
  absl::StatusOr<uint64_t> Submit(PrefillJob job, Done done);

  // Abandons the job with `ticket`: its answer becomes Cancelled. Does
  // nothing for an unknown or already answered ticket.
  void Cancel(uint64_t ticket);

  PrefillLoad Load() const;

 private:
  struct Pending;
  using PendingPtr = std::shared_ptr<Pending>;
  // A prompt the compute stage finished, on its way to the store.
  struct Publication {
    PendingPtr pending;
    PrefillResult result;
    std::vector<std::string> blocks;
  };

  // A job that ends without a result, to be answered.
  struct Failure {
    PendingPtr pending;
    absl::Status status;
  };

  PrefillWorker(std::unique_ptr<PrefillEngine> engine, BlockStoreLink* store,
                const PrefillWorkerOptions& options);

  void FetchLoop();
  void ComputeLoop();
  void PublishLoop();

  // The fetch stage's work for one job.
  absl::StatusOr<std::vector<std::string>> FetchStoredBlocks(
      const PrefillJob& job);
  void Publish(Publication& publication);
  // Hands the compute thread's new jobs to the engine and drops cancelled
  // ones, adding the jobs to answer to `failures`. Runs on the compute
  // thread.
  void SyncEngine(std::vector<FetchedPrompt> arrived,
                  std::vector<Failure>& failures);
  // Refreshes the load snapshot (and the metrics' gauges) after a step.
  void PublishLoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether each stage's threads have anything to do.
  bool FetchHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ComputeHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool PublishHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers `pending` unless it was answered already.
  void Answer(const PendingPtr& pending, absl::StatusOr<PrefillResult> result)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The status a cancelled or expired job ends with; OK if it is live.
  static absl::Status Abandoned(const Pending& pending);

  const PrefillWorkerOptions options_;
  const ServedModel served_;
  BlockStoreLink* const store_;
  // Used only by the compute thread, except for its constant parts
  // (served(), layout(), CheckFits) and idle() read under mu_ by the
  // compute thread's own wait.
  std::unique_ptr<PrefillEngine> engine_;
  absl::flat_hash_map<SequenceId, PendingPtr> in_engine_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, PendingPtr> live_ ABSL_GUARDED_BY(mu_);
  std::deque<PendingPtr> to_fetch_ ABSL_GUARDED_BY(mu_);
  std::vector<FetchedPrompt> to_compute_ ABSL_GUARDED_BY(mu_);
  std::deque<Publication> to_publish_ ABSL_GUARDED_BY(mu_);
  bool cancel_pending_ ABSL_GUARDED_BY(mu_) = false;
  // Tokens of jobs not yet in the engine, and the engine's last snapshot.
  int64_t tokens_before_engine_ ABSL_GUARDED_BY(mu_) = 0;
  int jobs_before_engine_ ABSL_GUARDED_BY(mu_) = 0;
  PrefillLoad engine_load_ ABSL_GUARDED_BY(mu_);

  std::vector<std::thread> threads_;
};

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_PREFILL_WORKER_H_
