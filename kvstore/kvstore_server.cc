#include "kvstore/kvstore_server.h"

#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/kv_block_codec.h"
#include "engine/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/health_check_service_interface.h"
#include "kvstore/byte_size.h"
#include "service/metrics.h"
#include "service/node_main.h"
#include "service/server.h"

namespace tandem {
namespace {

absl::Status CheckOptions(const KvStoreServerOptions& options) {
  if (options.chunk_bytes == 0 || options.chunk_bytes > kMaxChunkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk_bytes must be in [1, ", kMaxChunkBytes, "]"));
  }
  if (options.memory_budget_bytes == 0) {
    return absl::InvalidArgumentError("memory_budget must be positive");
  }
  if (options.max_block_bytes < kKvBlockHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_block_bytes must be at least a block header, ",
                     kKvBlockHeaderBytes, " bytes"));
  }
  if (!options.metrics_address_file.empty() && options.metrics_listen.empty()) {
    return absl::InvalidArgumentError(
        "metrics_address_file needs metrics_listen");
  }
  return absl::OkStatus();
}

}  // namespace

KvStoreServer::KvStoreServer(const KvStoreServerOptions& options)
    : options_(options),
      metrics_(registry_),
      store_(BlockStore::Options{
          .memory_budget_bytes = options.memory_budget_bytes,
          .max_block_bytes = options.max_block_bytes}),
      service_(&store_, options.chunk_bytes, &metrics_) {}

absl::StatusOr<std::unique_ptr<KvStoreServer>> KvStoreServer::Start(
    const KvStoreServerOptions& options) {
  const absl::Status valid = CheckOptions(options);
  if (!valid.ok()) return valid;
  std::unique_ptr<KvStoreServer> server(new KvStoreServer(options));

  TANDEM_ASSIGN_OR_RETURN(
      StartedServer started,
      StartServer(options.listen, {&server->service_}, kMaxMessageBytes));
  server->server_ = std::move(started.server);
  server->server_->GetHealthCheckService()->SetServingStatus(
      v1::KvStore::service_full_name(), true);
  server->address_ = std::move(started.address);
  server->port_ = started.port;
  KvStoreServer* s = server.get();
  TANDEM_ASSIGN_OR_RETURN(
      server->metrics_server_,
      StartMetricsServer(options.metrics_listen, server->registry_,
                         [s] { s->metrics_.Refresh(s->store_.Stats()); }));
  return server;
}

KvStoreServer::~KvStoreServer() { Shutdown(absl::ZeroDuration()); }

void KvStoreServer::Shutdown(absl::Duration grace) {
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  if (server_ == nullptr) return;
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  server_.reset();
}

absl::Status RunKvStore(const KvStoreServerOptions& options) {
  const sigset_t stop_signals = BlockStopSignals();
  absl::StatusOr<std::unique_ptr<KvStoreServer>> server =
      KvStoreServer::Start(options);
  if (!server.ok()) return server.status();
  LOG(INFO) << "kvstore serving address=" << (*server)->address()
            << " memory_budget=" << FormatByteSize(options.memory_budget_bytes)
            << " max_block_bytes=" << FormatByteSize(options.max_block_bytes)
            << " chunk_bytes=" << FormatByteSize(options.chunk_bytes)
            << " metrics="
            << ((*server)->metrics_address().empty()
                    ? "-"
                    : (*server)->metrics_address())
            << " pid=" << getpid();
  TANDEM_RETURN_IF_ERROR(WriteAddressFile(options.metrics_address_file,
                                          (*server)->metrics_address()));
  TANDEM_RETURN_IF_ERROR(
      WriteAddressFile(options.address_file, (*server)->address()));

  const int signal_number = WaitForStopSignal(stop_signals);
  const BlockStoreStats stats = (*server)->store().Stats();
  LOG(INFO) << "kvstore stopping signal=" << strsignal(signal_number)
            << " blocks=" << stats.blocks_stored << " puts=" << stats.puts
            << " gets=" << stats.gets << " evictions=" << stats.evictions;
  (*server)->Shutdown(absl::Seconds(2));
  return absl::OkStatus();
}

}  // namespace tandem
