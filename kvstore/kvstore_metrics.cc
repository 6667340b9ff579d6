#include "kvstore/kvstore_metrics.h"

#include "service/metrics.h"

namespace tandem {

KvStoreMetrics::KvStoreMetrics(prometheus::Registry& registry)
    : calls_(prometheus::BuildCounter()
                 .Name("tandem_kvstore_calls_total")
                 .Help("Calls served, by rpc (exists: prefix lookups)")
                 .Register(registry)),
      put_calls_(calls_.Add({{"rpc", "put"}})),
      get_calls_(calls_.Add({{"rpc", "get"}})),
      exists_calls_(calls_.Add({{"rpc", "exists"}})),
      remove_calls_(calls_.Add({{"rpc", "remove"}})),
      bytes_in_(AddCounter(registry, "tandem_kvstore_bytes_in_total",
                           "Block bytes stored by Put calls")),
      bytes_out_(prometheus::BuildCounter()
                     .Name("tandem_kvstore_bytes_out_total")
                     .Help("Block bytes sent by Get calls, by path")
                     .Register(registry)),
      bytes_out_stream_(bytes_out_.Add({{"path", "stream"}})),
      bytes_out_shared_memory_(bytes_out_.Add({{"path", "shared_memory"}})),
      transfer_(prometheus::BuildHistogram()
                    .Name("tandem_kvstore_transfer_seconds")
                    .Help("Duration of each Put or Get call, by rpc")
                    .Register(registry)),
      put_seconds_(transfer_.Add({{"rpc", "put"}}, StepBuckets())),
      get_seconds_(transfer_.Add({{"rpc", "get"}}, StepBuckets())),
      bytes_stored_(AddGauge(registry, "tandem_kvstore_bytes_stored",
                             "Bytes of stored blocks")),
      blocks_stored_(
          AddGauge(registry, "tandem_kvstore_blocks_stored", "Blocks stored")),
      budget_bytes_(AddGauge(registry, "tandem_kvstore_memory_budget_bytes",
                             "Bytes the node may hold")),
      evictions_(AddCounter(registry, "tandem_kvstore_evictions_total",
                            "Blocks evicted to make room")) {}

void KvStoreMetrics::RecordPut(uint64_t bytes, absl::Duration elapsed) {
  put_calls_.Increment();
  bytes_in_.Increment(bytes);
  put_seconds_.Observe(absl::ToDoubleSeconds(elapsed));
}

void KvStoreMetrics::RecordGet(uint64_t bytes, bool shared_memory,
                               absl::Duration elapsed) {
  get_calls_.Increment();
  (shared_memory ? bytes_out_shared_memory_ : bytes_out_stream_)
      .Increment(bytes);
  get_seconds_.Observe(absl::ToDoubleSeconds(elapsed));
}

void KvStoreMetrics::RecordExists() { exists_calls_.Increment(); }

void KvStoreMetrics::RecordRemove() { remove_calls_.Increment(); }

void KvStoreMetrics::Refresh(const BlockStoreStats& stats) {
  bytes_stored_.Set(stats.bytes_stored);
  blocks_stored_.Set(stats.blocks_stored);
  budget_bytes_.Set(stats.memory_budget_bytes);
  absl::MutexLock lock(&mu_);
  if (stats.evictions > evictions_seen_) {
    evictions_.Increment(stats.evictions - evictions_seen_);
    evictions_seen_ = stats.evictions;
  }
}

}  // namespace tandem
