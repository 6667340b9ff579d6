// A prefill worker as a process: loads the model, connects to the KV store,
// serves tandem.v1.PrefillWorker (with health and reflection) and sends
// heartbeats to the router until told to stop.
#ifndef TANDEM_PREFILL_NODE_PREFILL_NODE_H_
#define TANDEM_PREFILL_NODE_PREFILL_NODE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tandem {

struct PrefillNodeOptions {
  // host:port to serve on; port 0 picks a free port.
  std::string listen = "127.0.0.1:50071";
  // If set, the bound host:port is written here once serving.
  std::string address_file;
  // host:port of the HTTP server for Prometheus /metrics; empty: none.
  std::string metrics_listen;
  // If set, the metrics server's bound host:port is written here.
  std::string metrics_address_file;
  // The router's host:port for heartbeats; empty sends none.
  std::string router;
  // This worker's id in heartbeats; empty: "prefill@<address>".
  std::string worker_id;
  // The address the router dials; empty: the bound address.
  std::string advertise_address;
  // The model directory, and the name reported for it (empty: the
  // directory's last component).
  std::string model_dir;
  std::string model_name;
  // host:port of every KV store node.
  std::vector<std::string> kvstore;
  absl::Duration kvstore_timeout = absl::Seconds(5);
  // Engine threads; 0 keeps the default (one per core).
  int threads = 0;
  int block_size = 16;
  size_t kv_cache_bytes = size_t{512} << 20;
  int max_batch_tokens = 2048;
  int max_batch_sequences = 64;
  int max_queued_requests = 1024;
  int io_threads = 2;
  // Reuse prompt blocks the store already holds (PrefillWorkerOptions).
  bool prefix_reuse = true;
};

// Runs the node until the process gets SIGINT or SIGTERM, then stops
// accepting calls, answers what is pending and returns OK. Returns at once
// with: InvalidArgument for missing or bad options (no model, no store
// nodes, limits below 1, a metrics address file without a metrics server,
// a malformed metrics_listen); the model's load errors; ResourceExhausted
// if the KV cache cannot be allocated; Unavailable if `listen` or
// `metrics_listen` cannot be bound or an address file cannot be written.
// REQUIRES: called from the main thread before any other thread starts (it
// blocks SIGINT and SIGTERM for the whole process and waits for them).
absl::Status RunPrefillNode(const PrefillNodeOptions& options);

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_PREFILL_NODE_H_
