// The state one router shares between its calls: the served model, the
// worker registry, the channels to workers, the store's prefix lookup and
// the count of requests in flight.
//
// Thread-safe; every member may be used from any thread.
#ifndef TANDEM_ROUTER_ROUTER_CORE_H_
#define TANDEM_ROUTER_ROUTER_CORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/block_key.h"
#include "grpcpp/grpcpp.h"
#include "router/request_validation.h"
#include "router/router_metrics.h"
#include "router/worker_registry.h"

namespace tandem {

// How many leading keys of a key chain the KV store holds.
using PrefixLookup =
    std::function<absl::StatusOr<size_t>(absl::Span<const BlockKey>)>;

struct RouterCoreOptions {
  // Most Generate calls in flight; more get ResourceExhausted.
  int max_inflight = 256;
  // Workers leave rotation this long after their last load report.
  absl::Duration worker_expiry = absl::Seconds(3);
  WorkerRegistry::Clock clock = &absl::Now;
  // Where calls report themselves; not owned, must outlive the core. Null:
  // no metrics.
  RouterMetrics* metrics = nullptr;
};

class RouterCore {
 public:
  // `lookup` may be empty: then no prefix is ever cached.
  RouterCore(ServedModel model, const RouterCoreOptions& options,
             PrefixLookup lookup);

  RouterCore(const RouterCore&) = delete;
  RouterCore& operator=(const RouterCore&) = delete;

  const ServedModel& model() const { return model_; }
  WorkerRegistry& registry() { return registry_; }
  // The metrics calls report to; null when there are none.
  RouterMetrics* metrics() const { return metrics_; }

  // The registry's view (WorkerRegistry::View). Worker calls tracked for a
  // worker that this view finds expired are cancelled: a worker that hangs
  // instead of dying fails its streams within the expiry, not never.
  ClusterView View() ABSL_LOCKS_EXCLUDED(mu_);

  // Tracks `context`, a call to worker `worker_id`, until Untrack. REQUIRES:
  // `context` outlives the tracking.
  void TrackWorkerCall(const std::string& worker_id,
                       grpc::ClientContext* context) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops tracking; returns whether the call was cancelled because its
  // worker left rotation.
  bool UntrackWorkerCall(const std::string& worker_id,
                         grpc::ClientContext* context) ABSL_LOCKS_EXCLUDED(mu_);

  // The channel to the worker at `address`, created on first use and
  // shared afterwards.
  std::shared_ptr<grpc::Channel> Channel(const std::string& address)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Counts a Generate call in. False, counting nothing, when max_inflight
  // calls are already in flight.
  bool TryAdmit() ABSL_LOCKS_EXCLUDED(mu_);
  // Counts a call out; the last thing an admitted call does.
  void Release() ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until no call is in flight.
  void WaitIdle() ABSL_LOCKS_EXCLUDED(mu_);
  int inflight() ABSL_LOCKS_EXCLUDED(mu_);

  // The number of leading blocks of `keys` the store holds; 0 when there
  // is no store or it cannot answer (the prefill worker re-checks anyway).
  size_t CachedBlocks(absl::Span<const BlockKey> keys,
                      const std::string& request_id);

  // 64 random bits, for seeds and request ids.
  uint64_t Random() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const ServedModel model_;
  const int max_inflight_;
  const PrefixLookup lookup_;
  RouterMetrics* const metrics_;
  WorkerRegistry registry_;

  absl::Mutex mu_;
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_
      ABSL_GUARDED_BY(mu_);
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
  // Worker calls in flight by worker id, and those cancelled because their
  // worker left.
  std::multimap<std::string, grpc::ClientContext*> worker_calls_
      ABSL_GUARDED_BY(mu_);
  std::set<grpc::ClientContext*> departed_calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_ROUTER_ROUTER_CORE_H_
