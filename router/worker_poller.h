// Statically listed workers: a thread that asks each listed worker for its
// load (PrefillWorker.Load or DecodeWorker.Load) every interval and reports
// it to the registry as a heartbeat would. A worker that does not answer
// simply expires like a silent heartbeat sender.
#ifndef TANDEM_ROUTER_WORKER_POLLER_H_
#define TANDEM_ROUTER_WORKER_POLLER_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "router/router_core.h"

namespace tandem {

class WorkerPoller {
 public:
  // `core` is not owned and must outlive the poller. Addresses are
  // host:port; a worker's id is its address.
  WorkerPoller(RouterCore* core, std::vector<std::string> prefill,
               std::vector<std::string> decode, absl::Duration interval);
  // Stops the thread.
  ~WorkerPoller();

  WorkerPoller(const WorkerPoller&) = delete;
  WorkerPoller& operator=(const WorkerPoller&) = delete;

  // Polls every listed worker once, now, then keeps polling on a thread.
  void Start();

 private:
  void PollAll();
  void Loop();

  RouterCore* const core_;
  const std::vector<std::string> prefill_;
  const std::vector<std::string> decode_;
  const absl::Duration interval_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tandem

#endif  // TANDEM_ROUTER_WORKER_POLLER_H_
