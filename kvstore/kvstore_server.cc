#include "kvstore/kvstore_server.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/kv_block_codec.h"
#include "glog/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "kvstore/byte_size.h"

namespace tandem {
namespace {

absl::Status CheckOptions(const KvStoreServerOptions& options) {
  const size_t colon = options.listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen address \"", options.listen, "\" is not host:port"));
  }
  if (options.chunk_bytes == 0) {
    return absl::InvalidArgumentError("chunk_bytes must be positive");
  }
  if (options.memory_budget_bytes == 0) {
    return absl::InvalidArgumentError("memory_budget must be positive");
  }
  if (options.max_block_bytes < kKvBlockHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_block_bytes must be at least a block header, ",
                     kKvBlockHeaderBytes, " bytes"));
  }
  return absl::OkStatus();
}

// Writes `text` to `path` through a temporary file and a rename, so that a
// reader never sees it half-written.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& text) {
  const std::string temporary = absl::StrCat(path, ".tmp.", getpid());
  FILE* file = std::fopen(temporary.c_str(), "w");
  if (file == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot create ", temporary, ": ", std::strerror(errno)));
  }
  const bool written =
      std::fwrite(text.data(), 1, text.size(), file) == text.size();
  if (std::fclose(file) != 0 || !written ||
      std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return absl::InternalError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Blocks SIGINT and SIGTERM for this thread and the threads it starts later,
// and returns the set to wait on.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

}  // namespace

KvStoreServer::KvStoreServer(const KvStoreServerOptions& options)
    : options_(options),
      store_(BlockStore::Options{
          .memory_budget_bytes = options.memory_budget_bytes,
          .max_block_bytes = options.max_block_bytes}),
      service_(&store_, options.chunk_bytes) {}

absl::StatusOr<std::unique_ptr<KvStoreServer>> KvStoreServer::Start(
    const KvStoreServerOptions& options) {
  const absl::Status valid = CheckOptions(options);
  if (!valid.ok()) return valid;
  std::unique_ptr<KvStoreServer> server(new KvStoreServer(options));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(&server->service_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
  }
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  server->address_ = absl::StrCat(host, ":", server->port_);
  return server;
}

KvStoreServer::~KvStoreServer() { Shutdown(absl::ZeroDuration()); }

void KvStoreServer::Shutdown(absl::Duration grace) {
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
            << " pid=" << getpid();
  if (!options.address_file.empty()) {
    const absl::Status written = WriteFileAtomically(
        options.address_file, absl::StrCat((*server)->address(), "\n"));
    if (!written.ok()) return written;
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  const BlockStoreStats stats = (*server)->store().Stats();
  LOG(INFO) << "kvstore stopping signal=" << strsignal(signal_number)
            << " blocks=" << stats.blocks_stored << " puts=" << stats.puts
            << " gets=" << stats.gets << " evictions=" << stats.evictions;
  (*server)->Shutdown(absl::Seconds(2));
  return absl::OkStatus();
}

}  // namespace tandem
