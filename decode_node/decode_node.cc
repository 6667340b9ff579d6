#include "decode_node/decode_node.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "decode_node/block_source.h"
#include "decode_node/decode_metrics.h"
#include "decode_node/decode_service.h"
#include "decode_node/scheduler.h"
#include "engine/model.h"
#include "engine/status_macros.h"
#include "engine/tokenizer.h"
#include "glog/logging.h"
#include "kvstore/kvstore_client.h"
#include "prometheus/registry.h"
#include "service/heartbeat.h"
#include "service/metrics.h"
#include "service/node_main.h"
#include "service/server.h"

namespace tandem {
namespace {

// Handoff blocks from the KV store cluster, each read timed for the
// metrics.
class KvStoreBlockSource : public BlockSource {
 public:
  KvStoreBlockSource(std::unique_ptr<KvStoreClient> client,
                     DecodeMetrics* metrics)
      : client_(std::move(client)), metrics_(metrics) {}

  std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys) override {
    const absl::Time start = absl::Now();
    std::vector<absl::StatusOr<std::string>> blocks = client_->GetMany(keys);
    metrics_->RecordFetch(
        std::count_if(blocks.begin(), blocks.end(),
                      [](const auto& block) { return block.ok(); }),
        absl::Now() - start);
    return blocks;
  }
  absl::StatusOr<size_t> LongestPrefix(
      absl::Span<const BlockKey> chain) override {
    return client_->LongestPrefix(chain);
  }
  std::vector<absl::Status> PutMany(
      absl::Span<const std::string> blocks) override {
    const std::vector<absl::string_view> views(blocks.begin(), blocks.end());
    return client_->PutMany(views);
  }

 private:
  const std::unique_ptr<KvStoreClient> client_;
  DecodeMetrics* const metrics_;
};

// A colocated worker without a store: it reads and writes no block.
class NoStoreBlockSource : public BlockSource {
 public:
  std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys) override {
    return std::vector<absl::StatusOr<std::string>>(
        keys.size(), absl::FailedPreconditionError("no KV store configured"));
  }
};

absl::Status CheckOptions(const DecodeNodeOptions& options) {
  if (options.model_dir.empty()) {
    return absl::InvalidArgumentError("--model is required");
  }
  if (options.kvstore.empty() && !options.colocated) {
    return absl::InvalidArgumentError(
        "--kvstore is required (host:port of every store node)");
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads must not be negative, got ", options.threads));
  }
  if (options.max_prefill_tokens_per_step < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_prefill_tokens_per_step must be at least 1, got ",
                     options.max_prefill_tokens_per_step));
  }
  if (options.fetch_threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--fetch_threads must be at least 1, got ", options.fetch_threads));
  }
  if (!options.metrics_address_file.empty() && options.metrics_listen.empty()) {
    return absl::InvalidArgumentError(
        "--metrics_address_file needs --metrics_listen");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BlockSource>> ConnectStore(
    const DecodeNodeOptions& options, DecodeMetrics* metrics) {
  if (options.kvstore.empty()) return std::make_unique<NoStoreBlockSource>();
  KvStoreClientOptions client_options;
  client_options.nodes = options.kvstore;
  client_options.timeout = options.kvstore_timeout;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<KvStoreClient> client,
                          KvStoreClient::Create(client_options));
  return std::make_unique<KvStoreBlockSource>(std::move(client), metrics);
}

SchedulerOptions MakeSchedulerOptions(const DecodeNodeOptions& options,
                                      DecodeMetrics* metrics) {
  SchedulerOptions out;
  out.block_size = options.block_size;
  out.kv_cache_bytes = options.kv_cache_bytes;
  out.max_batch = options.max_batch;
  out.max_waiting = options.max_waiting;
  out.fetch_threads = options.fetch_threads;
  out.max_prefill_tokens_per_step = options.max_prefill_tokens_per_step;
  out.reuse_store = options.colocated && !options.kvstore.empty();
  out.metrics = metrics;
  return out;
}

}  // namespace

absl::Status RunDecodeNode(const DecodeNodeOptions& options) {
  const sigset_t stop_signals = BlockStopSignals();
  TANDEM_RETURN_IF_ERROR(CheckOptions(options));
  prometheus::Registry registry;
  DecodeMetrics metrics(registry);
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<BlockSource> store,
                          ConnectStore(options, &metrics));
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<Model> model,
      Model::Load(options.model_dir, ModelOptions{.threads = options.threads}));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                          LoadTokenizer(options.model_dir));
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<Scheduler> scheduler,
      Scheduler::Create(model.get(), tokenizer.get(), store.get(),
                        MakeSchedulerOptions(options, &metrics)));
  // The gauges start from the empty cache; then each iteration sets them.
  const SchedulerLoad empty = scheduler->Load();
  metrics.RecordLoad(0, 0, empty.free_blocks, empty.total_blocks, 0);
  scheduler->Start();
  TANDEM_ASSIGN_OR_RETURN(MetricsEndpoint metrics_http,
                          ServeMetrics(options.metrics_listen,
                                       options.metrics_address_file, registry));
  const std::string model_name =
      WorkerModelName(options.model_name, options.model_dir);
  DecodeService service(scheduler.get(), tokenizer.get(),
                        DecodeWorkerInfo{.model_name = model_name,
                                         .fingerprint = model->fingerprint(),
                                         .block_size = options.block_size,
                                         .colocated = options.colocated});
  TANDEM_ASSIGN_OR_RETURN(StartedServer server,
                          StartServer(options.listen, {&service}));
  TANDEM_RETURN_IF_ERROR(
      WriteAddressFile(options.address_file, server.address));

  const Fingerprint& fingerprint = model->fingerprint();
  LOG(INFO)
      << "decode node serving address=" << server.address
      << " model=" << model_name
      << absl::StrFormat(" fingerprint=%016x%016x", fingerprint.words[1],
                         fingerprint.words[0])
      << " block_size=" << options.block_size
      << " kv_blocks=" << scheduler->Load().total_blocks
      << " max_batch=" << options.max_batch
      << " max_waiting=" << options.max_waiting
      << " colocated=" << (options.colocated ? "true" : "false")
      << " max_prefill_tokens_per_step=" << options.max_prefill_tokens_per_step
      << " fetch_threads=" << options.fetch_threads
      << " threads=" << options.threads
      << " kv_cache_bytes=" << options.kv_cache_bytes << " kvstore="
      << (options.kvstore.empty() ? "-" : absl::StrJoin(options.kvstore, ","))
      << " kvstore_timeout_s=" << absl::ToDoubleSeconds(options.kvstore_timeout)
      << " router=" << (options.router.empty() ? "-" : options.router)
      << " worker_id=" << (options.worker_id.empty() ? "-" : options.worker_id)
      << " metrics="
      << (metrics_http.address.empty() ? "-" : metrics_http.address);
  std::unique_ptr<HeartbeatSender> heartbeat = StartWorkerHeartbeat(
      options.router, options.worker_id, options.advertise_address,
      server.address, options.colocated ? "colocated" : "decode",
      [&service] { return service.CurrentLoad(); });

  const int signal_number = WaitForStopSignal(stop_signals);
  LOG(INFO) << "decode node stopping signal=" << strsignal(signal_number);
  heartbeat.reset();
  server.server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::seconds(2));
  server.server->Wait();
  scheduler.reset();
  if (metrics_http.server != nullptr) metrics_http.server->Stop();
  return absl::OkStatus();
}

}  // namespace tandem
