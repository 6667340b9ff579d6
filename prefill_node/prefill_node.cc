#include "prefill_node/prefill_node.h"

#include <chrono>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/model.h"
#include "engine/status_macros.h"
#include "glog/logging.h"
#include "kvstore/kvstore_client.h"
#include "prefill_node/block_store_link.h"
#include "prefill_node/prefill_engine.h"
#include "prefill_node/prefill_metrics.h"
#include "prefill_node/prefill_service.h"
#include "prefill_node/prefill_worker.h"
#include "prometheus/registry.h"
#include "service/heartbeat.h"
#include "service/metrics.h"
#include "service/node_main.h"
#include "service/server.h"

namespace tandem {
namespace {

absl::Status CheckOptions(const PrefillNodeOptions& options) {
  if (options.model_dir.empty()) {
    return absl::InvalidArgumentError("--model is required");
  }
  if (options.kvstore.empty()) {
    return absl::InvalidArgumentError(
        "--kvstore is required (host:port of every store node)");
  }
  if (!options.metrics_address_file.empty() && options.metrics_listen.empty()) {
    return absl::InvalidArgumentError(
        "--metrics_address_file needs --metrics_listen");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PrefillEngine>> LoadEngine(
    const PrefillNodeOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<Model> model,
      Model::Load(options.model_dir, ModelOptions{.threads = options.threads}));
  return PrefillEngine::Create(
      std::move(model), options.kv_cache_bytes,
      PrefillSchedulerLimits{
          .block_size = options.block_size,
          .max_batch_tokens = options.max_batch_tokens,
          .max_batch_sequences = options.max_batch_sequences});
}

absl::StatusOr<std::unique_ptr<BlockStoreLink>> ConnectStore(
    const PrefillNodeOptions& options) {
  KvStoreClientOptions client_options;
  client_options.nodes = options.kvstore;
  client_options.timeout = options.kvstore_timeout;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<KvStoreClient> client,
                          KvStoreClient::Create(client_options));
  return LinkKvStoreClient(std::move(client));
}

}  // namespace

absl::Status RunPrefillNode(const PrefillNodeOptions& options) {
  const sigset_t stop_signals = BlockStopSignals();
  TANDEM_RETURN_IF_ERROR(CheckOptions(options));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<BlockStoreLink> store,
                          ConnectStore(options));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<PrefillEngine> engine,
                          LoadEngine(options));
  prometheus::Registry registry;
  PrefillMetrics metrics(registry);
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<PrefillWorker> worker,
      PrefillWorker::Create(
          std::move(engine), store.get(),
          PrefillWorkerOptions{
              .max_queued_requests = options.max_queued_requests,
              .io_threads = options.io_threads,
              .metrics = &metrics,
              .prefix_reuse = options.prefix_reuse}));
  TANDEM_ASSIGN_OR_RETURN(MetricsEndpoint metrics_http,
                          ServeMetrics(options.metrics_listen,
                                       options.metrics_address_file, registry));
  const std::string model_name =
      WorkerModelName(options.model_name, options.model_dir);
  PrefillService service(worker.get(), model_name, options.max_batch_sequences);
  TANDEM_ASSIGN_OR_RETURN(StartedServer server,
                          StartServer(options.listen, {&service}));
  TANDEM_RETURN_IF_ERROR(
      WriteAddressFile(options.address_file, server.address));

  const Fingerprint& fingerprint = worker->served().fingerprint;
  const v1::WorkerLoad load = service.CurrentLoad();
  LOG(INFO) << "prefill node serving address=" << server.address
            << " model=" << model_name
            << absl::StrFormat(" fingerprint=%016x%016x", fingerprint.words[1],
                               fingerprint.words[0])
            << " block_size=" << options.block_size
            << " kv_blocks=" << load.total_blocks()
            << " max_batch_tokens=" << options.max_batch_tokens
            << " max_batch_sequences=" << options.max_batch_sequences
            << " max_queued_requests=" << options.max_queued_requests
            << " io_threads=" << options.io_threads
            << " threads=" << options.threads
            << " kv_cache_bytes=" << options.kv_cache_bytes
            << " kvstore=" << absl::StrJoin(options.kvstore, ",")
            << " kvstore_timeout_s="
            << absl::ToDoubleSeconds(options.kvstore_timeout)
            << " router=" << (options.router.empty() ? "-" : options.router)
            << " worker_id="
            << (options.worker_id.empty() ? "-" : options.worker_id)
            << " metrics="
            << (metrics_http.address.empty() ? "-" : metrics_http.address);

  std::unique_ptr<HeartbeatSender> heartbeat = StartWorkerHeartbeat(
      options.router, options.worker_id, options.advertise_address,
      server.address, "prefill", [&service] { return service.CurrentLoad(); });

  const int signal_number = WaitForStopSignal(stop_signals);
  LOG(INFO) << "prefill node stopping signal=" << strsignal(signal_number);
  heartbeat.reset();
  server.server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::seconds(2));
  server.server->Wait();
  worker.reset();
  if (metrics_http.server != nullptr) metrics_http.server->Stop();
  return absl::OkStatus();
}

}  // namespace tandem
