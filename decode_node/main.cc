// decode_node: a Tandem decode worker. Flags configure it; RunDecodeNode
// serves until SIGINT or SIGTERM.
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "decode_node/decode_node.h"
#include "kvstore/byte_size.h"
#include "service/node_main.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50081",
          "host:port to serve on; port 0 picks a free port");
ABSL_FLAG(std::string, address_file, "",
          "if set, the bound host:port is written to this file once serving");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port of an HTTP server for Prometheus /metrics; port 0 picks "
          "a free port; empty: no metrics server");
ABSL_FLAG(std::string, metrics_address_file, "",
          "if set, the metrics server's bound host:port is written to this "
          "file once serving");
ABSL_FLAG(std::string, router, "",
          "router host:port to send heartbeats to; empty: none");
ABSL_FLAG(std::string, worker_id, "",
          "this worker's id in heartbeats; empty: decode@<address>");
ABSL_FLAG(std::string, advertise_address, "",
          "host:port the router dials to reach this worker; empty: the "
          "bound address");
ABSL_FLAG(std::string, model, "models/fortune",
          "model directory (config.json, weights, tokenizer.json)");
ABSL_FLAG(std::string, model_name, "",
          "model name reported to the router; empty: the directory's name");
ABSL_FLAG(std::string, kvstore, "",
          "KV store nodes, comma-separated host:port list (required unless "
          "--colocated; a colocated worker with a store reuses and publishes "
          "prompt blocks)");
ABSL_FLAG(absl::Duration, kvstore_timeout, absl::Seconds(5),
          "deadline of each KV store rpc");
ABSL_FLAG(int, threads, 0, "engine threads; 0: one per core");
ABSL_FLAG(int, block_size, 16, "tokens per KV block");
ABSL_FLAG(tandem::ByteSize, kv_cache_bytes,
          tandem::ByteSize{uint64_t{512} << 20},
          "memory for the KV cache, e.g. 512MiB or 2GiB");
ABSL_FLAG(int, max_batch, 32,
          "most sequences decoded together (running or fetching blocks)");
ABSL_FLAG(int, max_waiting, 256,
          "most requests accepted and not yet in the batch; beyond it new "
          "requests get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, fetch_threads, 2, "threads that read blocks from the store");
ABSL_FLAG(bool, colocated, false,
          "serve whole requests (DecodeWorker.Generate): compute each prompt "
          "in the decode loop instead of reading a prefill worker's handoff");
ABSL_FLAG(int, max_prefill_tokens_per_step, 512,
          "with --colocated: most prompt tokens computed per scheduler "
          "iteration, so that a long prompt delays each decode step by one "
          "chunk instead of its whole length");
ABSL_FLAG(int, verbosity, 0,
          "verbose log level: 1 logs every step and preemption");

int main(int argc, char** argv) {
  // --help lists the flags defined in this file.
  tandem::InitServerMain(
      argc, argv, "Serves a Tandem decode worker (tandem.v1.DecodeWorker).",
      "decode_node/main.cc", FLAGS_verbosity);

  tandem::DecodeNodeOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.address_file = absl::GetFlag(FLAGS_address_file);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.metrics_address_file = absl::GetFlag(FLAGS_metrics_address_file);
  options.router = absl::GetFlag(FLAGS_router);
  options.worker_id = absl::GetFlag(FLAGS_worker_id);
  options.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  options.model_dir = absl::GetFlag(FLAGS_model);
  options.model_name = absl::GetFlag(FLAGS_model_name);
  options.kvstore =
      absl::StrSplit(absl::GetFlag(FLAGS_kvstore), ',', absl::SkipWhitespace());
  options.kvstore_timeout = absl::GetFlag(FLAGS_kvstore_timeout);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.block_size = absl::GetFlag(FLAGS_block_size);
  options.kv_cache_bytes = absl::GetFlag(FLAGS_kv_cache_bytes).bytes;
  options.max_batch = absl::GetFlag(FLAGS_max_batch);
  options.max_waiting = absl::GetFlag(FLAGS_max_waiting);
  options.fetch_threads = absl::GetFlag(FLAGS_fetch_threads);
  options.colocated = absl::GetFlag(FLAGS_colocated);
  options.max_prefill_tokens_per_step =
      absl::GetFlag(FLAGS_max_prefill_tokens_per_step);
  return tandem::ServerExitCode("decode node", tandem::RunDecodeNode(options));
}
