// The decode worker's Prometheus metrics (docs/metrics.md): its batch and
// waiting queue, KV cache occupancy, the size and duration of each decode
// step, tokens generated, sequences finished by reason, and the handoff
// blocks it reads from the KV store.
//
// RunDecodeNode creates one over the node's registry; the Scheduler reports
// steps and sequences, the node's block source reports fetches.
//
// Thread-safe: prometheus-cpp metrics are atomic. RecordLoad keeps the
// preemption count it last saw, so only one thread (the scheduler's) may
// call it.
#ifndef TANDEM_DECODE_NODE_DECODE_METRICS_H_
#define TANDEM_DECODE_NODE_DECODE_METRICS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tandem {

class DecodeMetrics {
 public:
  // Registers the worker's families in `registry`, which must outlive this
  // object.
  explicit DecodeMetrics(prometheus::Registry& registry);

  DecodeMetrics(const DecodeMetrics&) = delete;
  DecodeMetrics& operator=(const DecodeMetrics&) = delete;

  // A decode step over `batch` sequences that took `elapsed` (forward pass
  // and sampling); each sequence got one token.
  void RecordStep(int batch, absl::Duration elapsed);
  // Tokens streamed outside a step (a sequence's first token, sampled by
  // the prefill worker).
  void RecordTokens(int tokens);
  // A sequence left: `reason` is "stop", "length", "cancelled" or "error".
  void RecordFinished(const std::string& reason);
  // Occupancy after a scheduler iteration, and the preemptions since the
  // scheduler started. Scheduler thread only.
  void RecordLoad(int running, int waiting, int free_blocks, int total_blocks,
                  int64_t preemptions);
  // One read of handoff blocks from the store: `blocks` arrived intact
  // (misses and errors excluded), in `elapsed`.
  void RecordFetch(int blocks, absl::Duration elapsed);

 private:
  prometheus::Gauge& running_;
  prometheus::Gauge& waiting_;
  prometheus::Gauge& used_blocks_;
  prometheus::Gauge& free_blocks_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& step_seconds_;
  prometheus::Counter& generated_tokens_;
  prometheus::Family<prometheus::Counter>& finished_;
  prometheus::Counter& preemptions_;
  prometheus::Counter& fetched_blocks_;
  prometheus::Histogram& fetch_seconds_;
  int64_t preemptions_seen_ = 0;  // scheduler thread only
};

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_DECODE_METRICS_H_
