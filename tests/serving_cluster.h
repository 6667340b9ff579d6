// A whole serving cluster as child processes, for cross-process tests:
// KV store nodes, a router, prefill and decode workers, each on a free
// loopback port (--listen 127.0.0.1:0, --address_file; see
// child_process.h), started in dependency order and killed when the
// cluster is destroyed.
//
// Workers either join by heartbeat (they get --router) or are listed on
// the router's command line (--prefill_workers, --decode_workers); in the
// second case they start before the router. Start returns once the router
// reports every worker live (ListModels), so a test can send requests at
// once.
//
// Not thread-safe: one test thread owns a cluster; the addresses may be
// read from any thread.
#ifndef TANDEM_TESTS_SERVING_CLUSTER_H_
#define TANDEM_TESTS_SERVING_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/generate.grpc.pb.h"
#include "proto/worker.grpc.pb.h"
#include "tests/child_process.h"

namespace tandem::testing {

struct ServingClusterOptions {
  // The model directory every node loads (tests/test_model.h writes one).
  std::string model_dir;
  int prefill_workers = 1;
  int decode_workers = 1;
  // The decode workers run with --colocated and serve whole requests (set
  // prefill_workers to 0 for a colocated-only cluster).
  bool colocated = false;
  int store_nodes = 1;
  // Workers join by heartbeat; false: the router lists them statically.
  bool heartbeats = true;
  // Engine threads per worker.
  int threads = 1;
  std::string kv_cache_bytes = "64MiB";
  // Extra flags per kind of node.
  std::vector<std::string> router_flags;
  std::vector<std::string> prefill_flags;
  std::vector<std::string> decode_flags;
  std::vector<std::string> store_flags;
  // How long each node may take to serve, and the router to see workers.
  absl::Duration start_timeout = absl::Seconds(30);
};

class ServingCluster {
 public:
  // Starts every node and waits until the router sees all workers. The
  // first node that fails to start is reported (its stderr is the test's);
  // DeadlineExceeded if the router does not see every worker in time.
  static absl::StatusOr<std::unique_ptr<ServingCluster>> Start(
      const ServingClusterOptions& options);

  // Kills every node still running.
  ~ServingCluster();

  const std::string& router_address() const { return router_->address(); }
  std::vector<std::string> prefill_addresses() const;
  std::vector<std::string> decode_addresses() const;
  std::vector<std::string> store_addresses() const;

  // A stub on a fresh channel to the router, or to worker i.
  std::unique_ptr<v1::Router::Stub> RouterStub() const;
  std::unique_ptr<v1::DecodeWorker::Stub> DecodeStub(int i) const;
  std::unique_ptr<v1::PrefillWorker::Stub> PrefillStub(int i) const;

  // Kills decode worker i with SIGKILL and reaps it.
  absl::Status KillDecodeWorker(int i);

  // Waits up to `timeout` until the router's ListModels reports exactly
  // these numbers of live workers.
  absl::Status AwaitWorkers(int prefill, int decode, absl::Duration timeout,
                            int colocated = 0);

 private:
  ServingCluster() = default;
  absl::Status StartStores(const ServingClusterOptions& options);
  absl::Status StartRouter(const ServingClusterOptions& options);
  absl::Status StartWorkers(const ServingClusterOptions& options);

  std::vector<std::unique_ptr<ChildProcess>> stores_;
  std::unique_ptr<ChildProcess> router_;
  std::vector<std::unique_ptr<ChildProcess>> prefill_;
  std::vector<std::unique_ptr<ChildProcess>> decode_;
};

// The load a worker reports now (PrefillWorker/DecodeWorker Load).
absl::StatusOr<v1::WorkerLoad> DecodeLoad(v1::DecodeWorker::Stub& stub);
absl::StatusOr<v1::WorkerLoad> PrefillLoad(v1::PrefillWorker::Stub& stub);

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_SERVING_CLUSTER_H_
