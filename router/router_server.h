// A running router: the model's config and tokenizer, the worker registry,
// the KV store client for prefix lookups, the static-worker poller and the
// gRPC server (Router, Membership, health, reflection), and the function
// that runs it as a process.
//
// Health: the server's overall status ("") is SERVING while it runs; the
// service name "tandem.v1.Router" is SERVING only while at least one
// prefill and one decode worker, or one colocated worker, are in rotation,
// so readiness probes and
// scripts can wait for a router that can actually serve.
#ifndef TANDEM_ROUTER_ROUTER_SERVER_H_
#define TANDEM_ROUTER_ROUTER_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvstore/kvstore_client.h"
#include "prometheus/registry.h"
#include "router/router_core.h"
#include "router/router_metrics.h"
#include "router/router_service.h"
#include "router/worker_poller.h"
#include "service/http_server.h"

namespace tandem {

// The health service name that reports whether the router can serve.
inline constexpr char kRouterHealthService[] = "tandem.v1.Router";

struct RouterOptions {
  // host:port to listen on; port 0 picks a free port.
  std::string listen = "127.0.0.1:50051";
  // If set, the bound address is written here once serving.
  std::string address_file;
  // host:port of the HTTP server (OpenAI-compatible API, /health,
  // /metrics); empty: no HTTP server.
  std::string http_listen;
  // If set, the bound HTTP address is written here once serving.
  std::string http_address_file;
  // HTTP requests handled at once (a streamed completion holds one).
  int http_threads = 64;
  // How often a quiet streamed completion sends an SSE comment (see
  // router/openai_api.h).
  absl::Duration http_stream_heartbeat = absl::Seconds(2);
  // The key clients must send (`Authorization: Bearer <key>`) to the
  // Router service and the HTTP API's /v1/*; empty: none. Membership,
  // /health and /metrics stay open.
  std::string api_key;
  // The model directory: only config.json and the tokenizer are read.
  std::string model_dir = "models/fortune";
  // The model's name in the API; empty: the directory's base name.
  std::string model_id;
  // KV store nodes (host:port) for prefix lookups; empty: none.
  std::vector<std::string> kvstore_nodes;
  // Workers polled with Load besides those that send heartbeats.
  std::vector<std::string> prefill_workers;
  std::vector<std::string> decode_workers;
  absl::Duration worker_expiry = absl::Seconds(3);
  absl::Duration poll_interval = absl::Seconds(1);
  int max_inflight = 256;
  // Deadline of a prefix lookup in the store.
  absl::Duration store_timeout = absl::Seconds(2);
};

class RouterServer {
 public:
  // Loads the model's config and tokenizer and starts serving.
  // InvalidArgument for options that cannot work (no port, a non-positive
  // limit or duration, a malformed node list); NotFound or InvalidArgument
  // from loading the model directory; Unavailable if the address cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<RouterServer>> Start(
      const RouterOptions& options);

  // Shuts down without grace if Shutdown was not called.
  ~RouterServer();

  RouterServer(const RouterServer&) = delete;
  RouterServer& operator=(const RouterServer&) = delete;

  // The bound address ("127.0.0.1:50051").
  const std::string& address() const { return address_; }
  // The bound HTTP address; empty when there is no HTTP server.
  std::string http_address() const {
    return http_ == nullptr ? "" : http_->address();
  }
  // Whether at least one prefill and one decode worker, or one colocated
  // worker, are in rotation.
  bool ready() const { return ready_.load(); }
  prometheus::Registry& metrics() { return metrics_; }
  RouterCore& core() { return *core_; }

  // Stops accepting calls, waits up to `grace` for calls in progress, then
  // cancels the rest and waits for their threads. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  RouterServer() = default;
  // Keeps the "tandem.v1.Router" health status in step with the registry.
  void HealthLoop();
  // Brings the gauges read from the registry up to date (before a scrape).
  void RefreshMetrics();

  // Declared first so that it outlives everything that registers in it.
  prometheus::Registry metrics_;
  std::unique_ptr<RouterMetrics> router_metrics_;
  std::unique_ptr<KvStoreClient> store_;
  std::unique_ptr<RouterCore> core_;
  std::unique_ptr<RouterService> router_service_;
  std::unique_ptr<MembershipService> membership_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<WorkerPoller> poller_;
  std::unique_ptr<HttpServer> http_;
  std::string address_;
  std::atomic<bool> ready_{false};

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread health_thread_;
};

// Runs a router until the process gets SIGINT or SIGTERM: starts it, logs
// the effective configuration, writes options.address_file, serves, then
// shuts down with a short grace period. Returns Start's errors, or
// Unavailable if the address file cannot be written. REQUIRES: called from
// the main thread before any other thread starts (it blocks both signals
// for the whole process and waits for them).
absl::Status RunRouter(const RouterOptions& options);

}  // namespace tandem

#endif  // TANDEM_ROUTER_ROUTER_SERVER_H_
