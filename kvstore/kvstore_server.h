// One KV store node: a BlockStore served over gRPC (tandem.v1.KvStore), with
// the standard gRPC health service (SERVING for "" and "tandem.v1.KvStore"
// while it runs) and server reflection, and the function that runs a node
// as a process until it is told to stop.
#ifndef TANDEM_KVSTORE_KVSTORE_SERVER_H_
#define TANDEM_KVSTORE_KVSTORE_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvstore/block_store.h"
#include "kvstore/kvstore_metrics.h"
#include "kvstore/kvstore_service.h"
#include "prometheus/registry.h"
#include "service/http_server.h"

namespace tandem {

struct KvStoreServerOptions {
  // host:port to listen on; port 0 picks a free port.
  std::string listen = "127.0.0.1:50061";
  uint64_t memory_budget_bytes = uint64_t{1} << 30;
  uint64_t max_block_bytes = uint64_t{64} << 20;
  // Block bytes per Get reply message.
  size_t chunk_bytes = size_t{1} << 20;
  // If not empty, RunKvStore writes the bound address ("host:port") to this
  // file once the node serves, replacing the file atomically.
  std::string address_file;
  // host:port of the HTTP server for Prometheus /metrics; port 0 picks a
  // free port; empty: none.
  std::string metrics_listen;
  // If not empty, RunKvStore writes the metrics server's bound address
  // here, before the address file.
  std::string metrics_address_file;
};

// A running node. Thread-safe.
class KvStoreServer {
 public:
  // Starts serving. InvalidArgument for options that cannot work (an
  // address without a port, a chunk size of 0 or above kMaxChunkBytes, a
  // zero budget, max_block_bytes below a block header, a metrics address
  // file without metrics_listen); Unavailable if the address or the
  // metrics address cannot be bound.
  static absl::StatusOr<std::unique_ptr<KvStoreServer>> Start(
      const KvStoreServerOptions& options);

  // Shuts down (without grace, if Shutdown was not called) and frees the
  // store.
  ~KvStoreServer();

  // The address it listens on, with the bound port ("127.0.0.1:41234").
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  const KvStoreServerOptions& options() const { return options_; }
  BlockStore& store() { return store_; }
  // The metrics server's bound address; empty when there is none.
  std::string metrics_address() const {
    return metrics_server_ == nullptr ? "" : metrics_server_->address();
  }
  prometheus::Registry& metrics() { return registry_; }

  // Stops accepting calls and waits up to `grace` for calls in progress,
  // then cancels them. Returns once every call has finished.
  void Shutdown(absl::Duration grace);

 private:
  explicit KvStoreServer(const KvStoreServerOptions& options);

  const KvStoreServerOptions options_;
  // Declared before everything that reports to it.
  prometheus::Registry registry_;
  KvStoreMetrics metrics_;
  BlockStore store_;
  KvStoreService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> metrics_server_;
  std::string address_;
  int port_ = 0;
};

// Runs a node until the process gets SIGINT or SIGTERM: starts it, logs the
// effective configuration, writes options.address_file if set, waits, then
// shuts down with a short grace period. Returns Start's errors, or Internal
// if the address file cannot be written. REQUIRES: called from the main
// thread before any other thread starts (it blocks the two signals for the
// whole process and waits for them).
absl::Status RunKvStore(const KvStoreServerOptions& options);

}  // namespace tandem

#endif  // TANDEM_KVSTORE_KVSTORE_SERVER_H_
