#include "tests/serving_cluster.h"

#include <signal.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "engine/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "service/grpc_status.h"

namespace tandem::testing {
namespace {

std::vector<std::string> Addresses(
    const std::vector<std::unique_ptr<ChildProcess>>& nodes) {
  std::vector<std::string> out;
  for (const auto& node : nodes) out.push_back(node->address());
  return out;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

// Flags every worker gets.
std::vector<std::string> WorkerFlags(const ServingClusterOptions& options,
                                     const std::string& stores,
                                     const std::string& router) {
  std::vector<std::string> flags = {
      "--listen=127.0.0.1:0",
      absl::StrCat("--model=", options.model_dir),
      absl::StrCat("--kvstore=", stores),
      absl::StrCat("--threads=", options.threads),
      absl::StrCat("--kv_cache_bytes=", options.kv_cache_bytes),
  };
  if (!router.empty()) flags.push_back(absl::StrCat("--router=", router));
  return flags;
}

template <typename Stub>
absl::StatusOr<v1::WorkerLoad> Load(Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::WorkerLoad load;
  const grpc::Status status = stub.Load(&context, v1::LoadRequest(), &load);
  if (!status.ok()) return FromGrpcStatus(status);
  return load;
}

}  // namespace

absl::StatusOr<v1::WorkerLoad> DecodeLoad(v1::DecodeWorker::Stub& stub) {
  return Load(stub);
}

absl::StatusOr<v1::WorkerLoad> PrefillLoad(v1::PrefillWorker::Stub& stub) {
  return Load(stub);
}

absl::StatusOr<std::unique_ptr<ServingCluster>> ServingCluster::Start(
    const ServingClusterOptions& options) {
  std::unique_ptr<ServingCluster> cluster(new ServingCluster());
  TANDEM_RETURN_IF_ERROR(cluster->StartStores(options));
  if (options.heartbeats) {
    TANDEM_RETURN_IF_ERROR(cluster->StartRouter(options));
    TANDEM_RETURN_IF_ERROR(cluster->StartWorkers(options));
  } else {
    TANDEM_RETURN_IF_ERROR(cluster->StartWorkers(options));
    TANDEM_RETURN_IF_ERROR(cluster->StartRouter(options));
  }
  const int colocated = options.colocated ? options.decode_workers : 0;
  TANDEM_RETURN_IF_ERROR(cluster->AwaitWorkers(
      options.prefill_workers, options.decode_workers - colocated,
      options.start_timeout, colocated));
  return cluster;
}

ServingCluster::~ServingCluster() {
  // Workers first, so no heartbeat or call races a dead router or store.
  prefill_.clear();
  decode_.clear();
  router_.reset();
  stores_.clear();
}

absl::Status ServingCluster::StartStores(const ServingClusterOptions& options) {
  for (int i = 0; i < options.store_nodes; ++i) {
    std::vector<std::string> flags = {"--listen=127.0.0.1:0",
                                      "--memory_budget=64MiB"};
    flags.insert(flags.end(), options.store_flags.begin(),
                 options.store_flags.end());
    TANDEM_ASSIGN_OR_RETURN(
        std::unique_ptr<ChildProcess> store,
        ChildProcess::StartServer(TANDEM_KVSTORE_BINARY, flags,
                                  options.start_timeout));
    stores_.push_back(std::move(store));
  }
  return absl::OkStatus();
}

absl::Status ServingCluster::StartRouter(const ServingClusterOptions& options) {
  std::vector<std::string> flags = {
      "--listen=127.0.0.1:0",
      absl::StrCat("--model=", options.model_dir),
      absl::StrCat("--kvstore=", absl::StrJoin(store_addresses(), ",")),
  };
  if (!options.heartbeats) {
    flags.push_back(absl::StrCat("--prefill_workers=",
                                 absl::StrJoin(prefill_addresses(), ",")));
    flags.push_back(absl::StrCat("--decode_workers=",
                                 absl::StrJoin(decode_addresses(), ",")));
  }
  flags.insert(flags.end(), options.router_flags.begin(),
               options.router_flags.end());
  TANDEM_ASSIGN_OR_RETURN(router_,
                          ChildProcess::StartServer(TANDEM_ROUTER_BINARY, flags,
                                                    options.start_timeout));
  return absl::OkStatus();
}

absl::Status ServingCluster::StartWorkers(
    const ServingClusterOptions& options) {
  const std::string stores = absl::StrJoin(store_addresses(), ",");
  const std::string router = options.heartbeats ? router_address() : "";
  for (int i = 0; i < options.prefill_workers; ++i) {
    std::vector<std::string> flags = WorkerFlags(options, stores, router);
    flags.push_back(absl::StrCat("--worker_id=prefill-", i));
    flags.insert(flags.end(), options.prefill_flags.begin(),
                 options.prefill_flags.end());
    TANDEM_ASSIGN_OR_RETURN(
        std::unique_ptr<ChildProcess> worker,
        ChildProcess::StartServer(TANDEM_PREFILL_BINARY, flags,
                                  options.start_timeout));
    prefill_.push_back(std::move(worker));
  }
  for (int i = 0; i < options.decode_workers; ++i) {
    std::vector<std::string> flags = WorkerFlags(options, stores, router);
    flags.push_back(absl::StrCat(
        "--worker_id=", options.colocated ? "colocated-" : "decode-", i));
    if (options.colocated) flags.push_back("--colocated");
    flags.insert(flags.end(), options.decode_flags.begin(),
                 options.decode_flags.end());
    TANDEM_ASSIGN_OR_RETURN(
        std::unique_ptr<ChildProcess> worker,
        ChildProcess::StartServer(TANDEM_DECODE_BINARY, flags,
                                  options.start_timeout));
    decode_.push_back(std::move(worker));
  }
  return absl::OkStatus();
}

std::vector<std::string> ServingCluster::prefill_addresses() const {
  return Addresses(prefill_);
}

std::vector<std::string> ServingCluster::decode_addresses() const {
  return Addresses(decode_);
}

std::vector<std::string> ServingCluster::store_addresses() const {
  return Addresses(stores_);
}

std::unique_ptr<v1::Router::Stub> ServingCluster::RouterStub() const {
  return v1::Router::NewStub(Channel(router_address()));
}

std::unique_ptr<v1::DecodeWorker::Stub> ServingCluster::DecodeStub(
    int i) const {
  return v1::DecodeWorker::NewStub(Channel(decode_.at(i)->address()));
}

std::unique_ptr<v1::PrefillWorker::Stub> ServingCluster::PrefillStub(
    int i) const {
  return v1::PrefillWorker::NewStub(Channel(prefill_.at(i)->address()));
}

absl::Status ServingCluster::KillDecodeWorker(int i) {
  return decode_.at(i)->Stop(SIGKILL).status();
}

absl::Status ServingCluster::AwaitWorkers(int prefill, int decode,
                                          absl::Duration timeout,
                                          int colocated) {
  std::unique_ptr<v1::Router::Stub> stub = RouterStub();
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "no answer";
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::ListModelsResponse models;
    const grpc::Status status =
        stub->ListModels(&context, v1::ListModelsRequest(), &models);
    if (status.ok() && models.models_size() == 1) {
      const v1::ModelInfo& info = models.models(0);
      if (info.prefill_workers() == prefill &&
          info.decode_workers() == decode &&
          info.colocated_workers() == colocated) {
        return absl::OkStatus();
      }
      last = absl::StrCat("prefill_workers=", info.prefill_workers(),
                          " decode_workers=", info.decode_workers(),
                          " colocated_workers=", info.colocated_workers());
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the router did not see ", prefill, " prefill, ", decode,
                   " decode and ", colocated, " colocated workers within ",
                   absl::FormatDuration(timeout), " (last: ", last, ")"));
}

}  // namespace tandem::testing
