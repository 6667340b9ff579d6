// A worker's side of membership: a thread that tells the router, every
// interval, that the worker is alive and how loaded it is. The first
// heartbeat registers the worker; a router that stops hearing from it takes
// it out of rotation.
#ifndef TANDEM_SERVICE_HEARTBEAT_H_
#define TANDEM_SERVICE_HEARTBEAT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/worker.grpc.pb.h"

namespace tandem {

class HeartbeatSender {
 public:
  // `load` is called on the sender's thread before each heartbeat and must
  // be thread-safe. `router` is host:port; `address` is what the router
  // dials to reach this worker.
  HeartbeatSender(std::string router, std::string worker_id,
                  std::string address, std::function<v1::WorkerLoad()> load,
                  absl::Duration interval = absl::Seconds(1));
  // Stops the thread.
  ~HeartbeatSender();

  HeartbeatSender(const HeartbeatSender&) = delete;
  HeartbeatSender& operator=(const HeartbeatSender&) = delete;

  // Starts sending. Failures are logged once per change of state and
  // retried at the next interval.
  void Start();

 private:
  void Loop();

  const std::string router_;
  const std::string worker_id_;
  const std::string address_;
  const std::function<v1::WorkerLoad()> load_;
  const absl::Duration interval_;
  std::unique_ptr<v1::Membership::Stub> stub_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Starts heartbeats to `router` for a worker whose server is bound at
// `bound`, and returns the sender (stopping it stops them). Returns nullptr
// and sends nothing when `router` is empty. The router reaches the worker
// at `advertise_address`, or at `bound` if that is empty; the worker's id
// is `worker_id`, or "<kind>@<that address>" if that is empty. `load` is as
// for HeartbeatSender.
std::unique_ptr<HeartbeatSender> StartWorkerHeartbeat(
    const std::string& router, const std::string& worker_id,
    const std::string& advertise_address, const std::string& bound,
    absl::string_view kind, std::function<v1::WorkerLoad()> load);

}  // namespace tandem

#endif  // TANDEM_SERVICE_HEARTBEAT_H_
