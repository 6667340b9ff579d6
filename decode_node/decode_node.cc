#include "decode_node/decode_node.h"

#include <signal.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "decode_node/block_source.h"
#include "decode_node/decode_service.h"
#include "decode_node/scheduler.h"
#include "engine/model.h"
#include "engine/status_macros.h"
#include "engine/tokenizer.h"
#include "glog/logging.h"
#include "kvstore/kvstore_client.h"
#include "service/heartbeat.h"
#include "service/server.h"

namespace tandem {
namespace {

// Handoff blocks from the KV store cluster.
class KvStoreBlockSource : public BlockSource {
 public:
  explicit KvStoreBlockSource(std::unique_ptr<KvStoreClient> client)
      : client_(std::move(client)) {}

  std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys) override {
    return client_->GetMany(keys);
  }

 private:
  const std::unique_ptr<KvStoreClient> client_;
};

absl::Status CheckOptions(const DecodeNodeOptions& options) {
  if (options.model_dir.empty()) {
    return absl::InvalidArgumentError("--model is required");
  }
  if (options.kvstore.empty()) {
    return absl::InvalidArgumentError(
        "--kvstore is required (host:port of every store node)");
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads must not be negative, got ", options.threads));
  }
  if (options.fetch_threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--fetch_threads must be at least 1, got ", options.fetch_threads));
  }
  return absl::OkStatus();
}

std::string ModelName(const DecodeNodeOptions& options) {
  if (!options.model_name.empty()) return options.model_name;
  std::filesystem::path dir(options.model_dir);
  if (!dir.has_filename()) dir = dir.parent_path();
  return dir.filename().string();
}

// Blocks SIGINT and SIGTERM for this thread and those it starts later, and
// returns the set to wait on.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

absl::StatusOr<std::unique_ptr<BlockSource>> ConnectStore(
    const DecodeNodeOptions& options) {
  KvStoreClientOptions client_options;
  client_options.nodes = options.kvstore;
  client_options.timeout = options.kvstore_timeout;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<KvStoreClient> client,
                          KvStoreClient::Create(client_options));
  return std::make_unique<KvStoreBlockSource>(std::move(client));
}

SchedulerOptions MakeSchedulerOptions(const DecodeNodeOptions& options) {
  SchedulerOptions out;
  out.block_size = options.block_size;
  out.kv_cache_bytes = options.kv_cache_bytes;
  out.max_batch = options.max_batch;
  out.max_waiting = options.max_waiting;
  out.fetch_threads = options.fetch_threads;
  return out;
}

std::unique_ptr<HeartbeatSender> StartHeartbeat(
    const DecodeNodeOptions& options, const std::string& bound,
    const DecodeService& service) {
  if (options.router.empty()) return nullptr;
  const std::string address =
      options.advertise_address.empty() ? bound : options.advertise_address;
  const std::string id = options.worker_id.empty()
                             ? absl::StrCat("decode@", address)
                             : options.worker_id;
  auto heartbeat = std::make_unique<HeartbeatSender>(
      options.router, id, address,
      [&service] { return service.CurrentLoad(); });
  heartbeat->Start();
  return heartbeat;
}

}  // namespace

absl::Status RunDecodeNode(const DecodeNodeOptions& options) {
  const sigset_t stop_signals = BlockStopSignals();
  TANDEM_RETURN_IF_ERROR(CheckOptions(options));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<BlockSource> store,
                          ConnectStore(options));
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<Model> model,
      Model::Load(options.model_dir, ModelOptions{.threads = options.threads}));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                          LoadTokenizer(options.model_dir));
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<Scheduler> scheduler,
      Scheduler::Create(model.get(), tokenizer.get(), store.get(),
                        MakeSchedulerOptions(options)));
  scheduler->Start();
  const std::string model_name = ModelName(options);
  DecodeService service(scheduler.get(), tokenizer.get(),
                        DecodeWorkerInfo{.model_name = model_name,
                                         .fingerprint = model->fingerprint(),
                                         .block_size = options.block_size});
  TANDEM_ASSIGN_OR_RETURN(StartedServer server,
                          StartServer(options.listen, {&service}));
  TANDEM_RETURN_IF_ERROR(
      WriteAddressFile(options.address_file, server.address));

  const Fingerprint& fingerprint = model->fingerprint();
  LOG(INFO) << "decode node serving address=" << server.address
            << " model=" << model_name
            << absl::StrFormat(" fingerprint=%016x%016x", fingerprint.words[1],
                               fingerprint.words[0])
            << " block_size=" << options.block_size
            << " kv_blocks=" << scheduler->Load().total_blocks
            << " max_batch=" << options.max_batch
            << " max_waiting=" << options.max_waiting
            << " kvstore=" << absl::StrJoin(options.kvstore, ",")
            << " router=" << (options.router.empty() ? "-" : options.router);
  std::unique_ptr<HeartbeatSender> heartbeat =
      StartHeartbeat(options, server.address, service);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LOG(INFO) << "decode node stopping signal=" << strsignal(signal_number);
  heartbeat.reset();
  server.server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::seconds(2));
  server.server->Wait();
  scheduler.reset();
  return absl::OkStatus();
}

}  // namespace tandem
