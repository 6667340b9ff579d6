#include "router/placement.h"

#include <algorithm>
#include <tuple>

#include "absl/status/status.h"

namespace tandem {
namespace {

// Sequences running or waiting on `worker`, counting those sent since its
// last report.
int64_t ActiveSequences(const WorkerState& worker) {
  return int64_t{worker.load.running_sequences()} +
         worker.load.waiting_sequences() + worker.sent_sequences;
}

}  // namespace

int64_t ExpectedPrefillTokens(const WorkerState& worker,
                              int64_t uncached_tokens) {
  return std::max(worker.load.queued_tokens(), worker.sent_tokens) +
         uncached_tokens;
}

double DecodeHeadroom(const WorkerState& worker, int64_t blocks_needed) {
  const v1::WorkerLoad& load = worker.load;
  const int64_t active = ActiveSequences(worker) + 1;
  // A worker that reports no batch limit or no pool is judged on the other.
  double slots = 1.0;
  if (load.max_batch() > 0) {
    slots = static_cast<double>(load.max_batch() - active) / load.max_batch();
  }
  double blocks = 1.0;
  if (load.total_blocks() > 0) {
    const int64_t free =
        int64_t{load.free_blocks()} - worker.sent_blocks - blocks_needed;
    blocks = static_cast<double>(free) / load.total_blocks();
  }
  return std::min(slots, blocks);
}

absl::StatusOr<size_t> PickPrefillWorker(absl::Span<const WorkerState> workers,
                                         int64_t uncached_tokens) {
  if (workers.empty()) {
    return absl::UnavailableError("no prefill worker is available");
  }
  size_t best = 0;
  for (size_t i = 1; i < workers.size(); ++i) {
    const int64_t cost = ExpectedPrefillTokens(workers[i], uncached_tokens);
    const int64_t best_cost =
        ExpectedPrefillTokens(workers[best], uncached_tokens);
    const int64_t requests =
        int64_t{workers[i].load.queued_requests()} + workers[i].sent_sequences;
    const int64_t best_requests =
        int64_t{workers[best].load.queued_requests()} +
        workers[best].sent_sequences;
    if (cost < best_cost || (cost == best_cost && requests < best_requests)) {
      best = i;
    }
  }
  return best;
}

absl::StatusOr<size_t> PickDecodeWorker(absl::Span<const WorkerState> workers,
                                        int64_t blocks_needed) {
  if (workers.empty()) {
    return absl::UnavailableError("no decode worker is available");
  }
  size_t best = 0;
  for (size_t i = 1; i < workers.size(); ++i) {
    const double headroom = DecodeHeadroom(workers[i], blocks_needed);
    const double best_headroom = DecodeHeadroom(workers[best], blocks_needed);
    if (headroom > best_headroom ||
        (headroom == best_headroom &&
         ActiveSequences(workers[i]) < ActiveSequences(workers[best]))) {
      best = i;
    }
  }
  return best;
}

absl::StatusOr<size_t> PickColocatedWorker(
    absl::Span<const WorkerState> workers, int64_t uncached_tokens,
    int64_t blocks_needed) {
  if (workers.empty()) {
    return absl::UnavailableError("no colocated worker is available");
  }
  // Smaller is better, compared in order.
  auto rank = [&](const WorkerState& worker) {
    const double headroom = DecodeHeadroom(worker, blocks_needed);
    return std::make_tuple(headroom < 0,
                           ExpectedPrefillTokens(worker, uncached_tokens),
                           -headroom);
  };
  size_t best = 0;
  for (size_t i = 1; i < workers.size(); ++i) {
    if (rank(workers[i]) < rank(workers[best])) best = i;
  }
  return best;
}

}  // namespace tandem
