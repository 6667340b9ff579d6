// kvstore: one node of Tandem's KV store. Flags configure it; RunKvStore
// serves until SIGINT or SIGTERM.
#include <string>

#include "absl/flags/flag.h"
#include "kvstore/byte_size.h"
#include "kvstore/kvstore_server.h"
#include "service/node_main.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50061",
          "host:port to serve on; port 0 picks a free port");
ABSL_FLAG(tandem::ByteSize, memory_budget, tandem::ByteSize{uint64_t{1} << 30},
          "bytes of blocks to keep in memory, e.g. 512MiB or 2GiB; least "
          "recently used blocks are evicted beyond it");
ABSL_FLAG(tandem::ByteSize, max_block_bytes,
          tandem::ByteSize{uint64_t{64} << 20},
          "largest block a Put may store");
ABSL_FLAG(std::string, address_file, "",
          "if set, the bound host:port is written to this file once serving");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port of an HTTP server for Prometheus /metrics; port 0 picks "
          "a free port; empty: no metrics server");
ABSL_FLAG(std::string, metrics_address_file, "",
          "if set, the metrics server's bound host:port is written to this "
          "file once serving");
ABSL_FLAG(int, verbosity, 0,
          "verbose log level: 1 logs refused requests, 2 every block");

int main(int argc, char** argv) {
  // --help lists the flags defined in this file.
  tandem::InitServerMain(
      argc, argv, "Serves one node of Tandem's KV store (tandem.v1.KvStore).",
      "kvstore/main.cc", FLAGS_verbosity);

  tandem::KvStoreServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.memory_budget_bytes = absl::GetFlag(FLAGS_memory_budget).bytes;
  options.max_block_bytes = absl::GetFlag(FLAGS_max_block_bytes).bytes;
  options.address_file = absl::GetFlag(FLAGS_address_file);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.metrics_address_file = absl::GetFlag(FLAGS_metrics_address_file);
  return tandem::ServerExitCode("kvstore", tandem::RunKvStore(options));
}
