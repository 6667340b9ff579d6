// decode_node: a Tandem decode worker. Flags configure it; RunDecodeNode
// serves until SIGINT or SIGTERM.
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "decode_node/decode_node.h"
#include "glog/logging.h"
#include "kvstore/byte_size.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50081",
          "host:port to serve on; port 0 picks a free port");
ABSL_FLAG(std::string, address_file, "",
          "if set, the bound host:port is written to this file once serving");
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
          "KV store nodes, comma-separated host:port list (required)");
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
ABSL_FLAG(int, verbosity, 0,
          "verbose log level: 1 logs every step and preemption");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves a Tandem decode worker (tandem.v1.DecodeWorker).");
  // --help lists the flags defined in this file.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "decode_node/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  FLAGS_v = absl::GetFlag(FLAGS_verbosity);
  google::InitGoogleLogging(argv[0]);

  tandem::DecodeNodeOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.address_file = absl::GetFlag(FLAGS_address_file);
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
  const absl::Status status = tandem::RunDecodeNode(options);
  if (!status.ok()) {
    LOG(ERROR) << "decode node failed status=" << status;
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
