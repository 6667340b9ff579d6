// The prefill worker's Prometheus metrics (docs/metrics.md): its queue and
// KV cache occupancy, the size and duration of each forward pass, prefix
// reuse through the KV store and the blocks it publishes there.
//
// RunPrefillNode creates one over the node's registry and hands it to the
// PrefillWorker, whose stages report to it.
//
// Thread-safe: prometheus-cpp metrics are atomic, so every stage's threads
// may report at once.
#ifndef TANDEM_PREFILL_NODE_PREFILL_METRICS_H_
#define TANDEM_PREFILL_NODE_PREFILL_METRICS_H_

#include <cstdint>

#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tandem {

class PrefillMetrics {
 public:
  // Registers the worker's families in `registry`, which must outlive this
  // object.
  explicit PrefillMetrics(prometheus::Registry& registry);

  PrefillMetrics(const PrefillMetrics&) = delete;
  PrefillMetrics& operator=(const PrefillMetrics&) = delete;

  // A forward pass that computed `tokens` prompt tokens in `elapsed`.
  void RecordStep(int tokens, absl::Duration elapsed);
  // Occupancy after a step: requests accepted and not yet sampled, their
  // prompt tokens still to compute, and the KV cache's blocks.
  void SetLoad(int queued_requests, int64_t queued_tokens, int free_blocks,
               int total_blocks);
  // A prompt with at least one full block asked the store for its prefix:
  // `hit` if at least one stored block was usable.
  void RecordLookup(bool hit);
  // A prompt answered with its first token: tokens whose KV came from the
  // store, tokens computed here, and its time before its first chunk ran.
  void RecordPrompt(int cached_tokens, int computed_tokens,
                    absl::Duration queue_time);
  // Blocks written to the store (new or already there).
  void RecordPublished(int blocks);

 private:
  prometheus::Gauge& queued_requests_;
  prometheus::Gauge& queued_tokens_;
  prometheus::Gauge& used_blocks_;
  prometheus::Gauge& free_blocks_;
  prometheus::Histogram& step_tokens_;
  prometheus::Histogram& step_seconds_;
  prometheus::Histogram& queue_seconds_;
  prometheus::Counter& cached_tokens_;
  prometheus::Counter& computed_tokens_;
  prometheus::Counter& lookup_hits_;
  prometheus::Counter& lookup_misses_;
  prometheus::Counter& published_blocks_;
};

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_PREFILL_METRICS_H_
