// The router's view of its workers: who is alive, how loaded each one is,
// and which of them agree on how KV blocks are keyed.
//
// Workers enter by reporting their load (a Membership heartbeat, or a Load
// poll of a statically listed worker) and leave when no report arrived for
// `expiry`, or at once when a call to them fails as unreachable. Between
// reports the router counts the work it sent to each worker itself, so
// that a burst of requests spreads out instead of piling onto the worker
// that looked idle at its last report.
//
// Blocks are keyed by the model fingerprint and block size the workers
// report. The registry keys with the pair most live workers report (ties:
// the pair of the worker that joined first); workers reporting another pair
// are left out of every view and logged once.
//
// Thread-safe. Time comes from an injected clock, so tests need no sleeps.
#ifndef TANDEM_ROUTER_WORKER_REGISTRY_H_
#define TANDEM_ROUTER_WORKER_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/model_weights.h"
#include "proto/worker.pb.h"

namespace tandem {

// How the workers of one model key their KV blocks.
struct BlockKeying {
  Fingerprint fingerprint;
  int block_size = 0;

  friend bool operator==(const BlockKeying&, const BlockKeying&) = default;
};

// One live worker as a view shows it.
struct WorkerState {
  std::string id;
  std::string address;  // host:port the router dials
  v1::WorkerLoad load;  // as last reported
  // Work the router sent to it since that report.
  // prefill and colocated: prompt tokens to compute
  int64_t sent_tokens = 0;
  // decode and colocated: sequences started, and the KV blocks they may fill
  int sent_sequences = 0;
  int64_t sent_blocks = 0;
};

// A consistent snapshot of the workers that can serve requests together.
struct ClusterView {
  // Meaningful only when a worker list is non-empty.
  BlockKeying keying;
  std::vector<WorkerState> prefill;    // live and agreeing, ordered by id
  std::vector<WorkerState> decode;     // live and agreeing, ordered by id
  std::vector<WorkerState> colocated;  // live and agreeing, ordered by id
  int excluded = 0;  // live workers left out for another keying
  // Workers this View call found expired and removed.
  std::vector<std::string> departed;
};

class WorkerRegistry {
 public:
  using Clock = std::function<absl::Time()>;

  // Workers expire `expiry` after their last report. `clock` gives the
  // current time; it is called with the registry's lock held.
  explicit WorkerRegistry(absl::Duration expiry, Clock clock = &absl::Now);

  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;

  // Records a load report from worker `id` at `address`: registers a new
  // worker (logged as joining) or refreshes a known one, and clears the
  // work counted as sent since its previous report. InvalidArgument, naming
  // the field, for an empty id or address or a kind that is not prefill,
  // decode or colocated.
  absl::Status Report(const std::string& id, const std::string& address,
                      const v1::WorkerLoad& load) ABSL_LOCKS_EXCLUDED(mu_);

  // Takes worker `id` out of rotation now (a call to it found it
  // unreachable); its next report brings it back. Unknown ids are ignored.
  void Remove(const std::string& id, const absl::Status& reason)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Counts work sent to worker `id` until its next report. Unknown ids are
  // ignored.
  void RecordSent(const std::string& id, int64_t tokens, int sequences,
                  int64_t blocks) ABSL_LOCKS_EXCLUDED(mu_);

  // Drops expired workers (logging each, and listing them in `departed`)
  // and returns the live workers that agree on the keying.
  ClusterView View() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Duration expiry() const { return expiry_; }

 private:
  struct Entry {
    WorkerState state;
    absl::Time joined;
    absl::Time last_report;
    bool warned_excluded = false;
  };

  // Removes expired workers, appending their ids to `departed`.
  void ExpireLocked(std::vector<std::string>& departed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The keying of most live workers, ties to the earliest joined.
  BlockKeying MajorityKeyingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration expiry_;
  const Clock clock_;

  absl::Mutex mu_;
  std::map<std::string, Entry> workers_ ABSL_GUARDED_BY(mu_);  // by id
};

// The keying a worker reports in its load.
BlockKeying KeyingOf(const v1::WorkerLoad& load);

}  // namespace tandem

#endif  // TANDEM_ROUTER_WORKER_REGISTRY_H_
