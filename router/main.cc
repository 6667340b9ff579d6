// router: the public entry point of a Tandem cluster. Flags configure it;
// RunRouter serves until SIGINT or SIGTERM.
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "router/api_key.h"
#include "router/router_server.h"
#include "service/node_main.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port to serve the Router and Membership services on; port 0 "
          "picks a free port");
ABSL_FLAG(std::string, address_file, "",
          "if set, the bound host:port is written to this file once serving");
ABSL_FLAG(std::string, http_listen, "",
          "host:port of the HTTP server: the OpenAI-compatible API, /health "
          "and /metrics; empty: no HTTP server; port 0 picks a free port");
ABSL_FLAG(std::string, http_address_file, "",
          "if set, the bound HTTP host:port is written to this file once "
          "serving");
ABSL_FLAG(int, http_threads, 64,
          "HTTP requests handled at once; a streamed completion holds one "
          "until it ends");
ABSL_FLAG(std::string, api_key, "",
          "if set, clients must send 'Authorization: Bearer <key>' (gRPC "
          "metadata `authorization`) to the Router service and the HTTP "
          "API's /v1/*; /health, /metrics and worker membership stay open. "
          "Prefer --api_key_file: flags show in the process list");
ABSL_FLAG(std::string, api_key_file, "",
          "file holding the API key (surrounding whitespace ignored); "
          "exclusive with --api_key");
ABSL_FLAG(std::string, model, "models/fortune",
          "model directory; only config.json and the tokenizer are read");
ABSL_FLAG(std::string, model_id, "",
          "the model's name in the API; empty: the directory's base name");
ABSL_FLAG(std::vector<std::string>, kvstore, {},
          "comma-separated host:port of every KV store node, for prefix "
          "lookups");
ABSL_FLAG(std::vector<std::string>, prefill_workers, {},
          "comma-separated host:port of prefill workers to poll with Load "
          "(besides those that send heartbeats)");
ABSL_FLAG(std::vector<std::string>, decode_workers, {},
          "comma-separated host:port of decode workers (or colocated ones) "
          "to poll with Load (besides those that send heartbeats)");
ABSL_FLAG(absl::Duration, worker_expiry, absl::Seconds(3),
          "a worker not heard from for this long leaves rotation");
ABSL_FLAG(absl::Duration, poll_interval, absl::Seconds(1),
          "how often listed workers are polled");
ABSL_FLAG(int, max_inflight, 256,
          "most Generate requests in flight; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(absl::Duration, store_timeout, absl::Seconds(2),
          "deadline of a prefix lookup in the KV store");
ABSL_FLAG(int, verbosity, 0,
          "verbose log level: 1 logs failed store lookups and worker polls");

int main(int argc, char** argv) {
  // --help lists the flags defined in this file.
  tandem::InitServerMain(
      argc, argv,
      "Serves Tandem's public API (tandem.v1.Router) and worker membership "
      "(tandem.v1.Membership), placing each request's prefill and decode on "
      "workers.",
      "router/main.cc", FLAGS_verbosity);

  tandem::RouterOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.address_file = absl::GetFlag(FLAGS_address_file);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.http_address_file = absl::GetFlag(FLAGS_http_address_file);
  options.http_threads = absl::GetFlag(FLAGS_http_threads);
  options.model_dir = absl::GetFlag(FLAGS_model);
  options.model_id = absl::GetFlag(FLAGS_model_id);
  options.kvstore_nodes = absl::GetFlag(FLAGS_kvstore);
  options.prefill_workers = absl::GetFlag(FLAGS_prefill_workers);
  options.decode_workers = absl::GetFlag(FLAGS_decode_workers);
  options.worker_expiry = absl::GetFlag(FLAGS_worker_expiry);
  options.poll_interval = absl::GetFlag(FLAGS_poll_interval);
  options.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  options.store_timeout = absl::GetFlag(FLAGS_store_timeout);
  absl::StatusOr<std::string> api_key = tandem::LoadApiKey(
      absl::GetFlag(FLAGS_api_key), absl::GetFlag(FLAGS_api_key_file));
  if (!api_key.ok()) {
    return tandem::ServerExitCode("router", api_key.status());
  }
  options.api_key = *std::move(api_key);
  return tandem::ServerExitCode("router", tandem::RunRouter(options));
}
