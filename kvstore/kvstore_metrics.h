// A KV store node's Prometheus metrics (docs/metrics.md): what it holds
// (bytes and blocks, from BlockStore::Stats at each scrape), evictions,
// calls by rpc, bytes transferred in and out, and each transfer's
// duration.
//
// KvStoreServer creates one over its own registry; the service's reactors
// report their calls, and the metrics server refreshes the store's figures
// before each scrape.
//
// Thread-safe.
#ifndef TANDEM_KVSTORE_KVSTORE_METRICS_H_
#define TANDEM_KVSTORE_KVSTORE_METRICS_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kvstore/block_store.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace tandem {

class KvStoreMetrics {
 public:
  // Registers the node's families in `registry`, which must outlive this
  // object.
  explicit KvStoreMetrics(prometheus::Registry& registry);

  KvStoreMetrics(const KvStoreMetrics&) = delete;
  KvStoreMetrics& operator=(const KvStoreMetrics&) = delete;

  // A Put call that ended after `elapsed`, having stored `bytes` (0 if the
  // block was already there or the put failed).
  void RecordPut(uint64_t bytes, absl::Duration elapsed);
  // A Get call that ended after `elapsed`, having sent `bytes` of block
  // data, into the client's shared memory or streamed.
  void RecordGet(uint64_t bytes, bool shared_memory, absl::Duration elapsed);
  // An Exists call (a prefix lookup).
  void RecordExists();
  void RecordRemove();

  // Sets the gauges from `stats` and advances the evictions counter to
  // stats.evictions.
  void Refresh(const BlockStoreStats& stats) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Counter& put_calls_;
  prometheus::Counter& get_calls_;
  prometheus::Counter& exists_calls_;
  prometheus::Counter& remove_calls_;
  prometheus::Counter& bytes_in_;
  prometheus::Family<prometheus::Counter>& bytes_out_;
  prometheus::Counter& bytes_out_stream_;
  prometheus::Counter& bytes_out_shared_memory_;
  prometheus::Family<prometheus::Histogram>& transfer_;
  prometheus::Histogram& put_seconds_;
  prometheus::Histogram& get_seconds_;
  prometheus::Gauge& bytes_stored_;
  prometheus::Gauge& blocks_stored_;
  prometheus::Gauge& budget_bytes_;
  prometheus::Counter& evictions_;

  absl::Mutex mu_;
  uint64_t evictions_seen_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem

#endif  // TANDEM_KVSTORE_KVSTORE_METRICS_H_
