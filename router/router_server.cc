#include "router/router_server.h"

#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/health_check_service_interface.h"
#include "router/openai_api.h"
#include "service/metrics.h"
#include "service/node_main.h"
#include "service/server.h"

namespace tandem {
namespace {

absl::Status CheckOptions(const RouterOptions& options) {
  if (options.max_inflight < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_inflight must be at least 1, got ", options.max_inflight));
  }
  if (options.worker_expiry <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("worker_expiry must be positive");
  }
  if (options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("poll_interval must be positive");
  }
  if (options.http_stream_heartbeat <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("http_stream_heartbeat must be positive");
  }
  if (options.http_threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http_threads must be at least 1, got ", options.http_threads));
  }
  if (options.store_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("store_timeout must be positive");
  }
  for (const std::vector<std::string>* list :
       {&options.kvstore_nodes, &options.prefill_workers,
        &options.decode_workers}) {
    for (const std::string& address : *list) {
      const size_t colon = address.rfind(':');
      if (colon == std::string::npos || colon == 0 ||
          colon + 1 == address.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "worker or store address '", address, "' is not host:port"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KvStoreClient>> MakeStoreClient(
    const RouterOptions& options) {
  if (options.kvstore_nodes.empty()) return nullptr;
  KvStoreClientOptions store;
  store.nodes = options.kvstore_nodes;
  store.timeout = options.store_timeout;
  // The router only asks which keys exist; it never reads a block.
  store.shared_memory = false;
  return KvStoreClient::Create(store);
}

// The HTTP API calls the router's own gRPC service in-process.
OpenAiApiOptions OpenAiOptions(grpc::Server& server, const std::string& model,
                               const RouterOptions& options) {
  OpenAiApiOptions api;
  api.channel = server.InProcessChannel(grpc::ChannelArguments());
  api.model_id = model;
  api.api_key = options.api_key;
  api.stream_heartbeat = options.http_stream_heartbeat;
  return api;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RouterServer>> RouterServer::Start(
    const RouterOptions& options) {
  TANDEM_RETURN_IF_ERROR(CheckOptions(options));
  TANDEM_ASSIGN_OR_RETURN(ServedModel model,
                          LoadServedModel(options.model_dir, options.model_id));
  std::unique_ptr<RouterServer> router(new RouterServer());
  TANDEM_ASSIGN_OR_RETURN(router->store_, MakeStoreClient(options));
  PrefixLookup lookup;
  if (router->store_ != nullptr) {
    KvStoreClient* store = router->store_.get();
    lookup = [store](absl::Span<const BlockKey> chain) {
      return store->LongestPrefix(chain);
    };
  }
  router->router_metrics_ = std::make_unique<RouterMetrics>(router->metrics_);
  RouterCoreOptions core_options;
  core_options.max_inflight = options.max_inflight;
  core_options.worker_expiry = options.worker_expiry;
  core_options.metrics = router->router_metrics_.get();
  router->core_ = std::make_unique<RouterCore>(std::move(model), core_options,
                                               std::move(lookup));
  RouterCore* core = router->core_.get();
  router->router_service_ =
      std::make_unique<RouterService>(core, options.api_key);
  router->membership_service_ = std::make_unique<MembershipService>(core);
  TANDEM_ASSIGN_OR_RETURN(
      StartedServer started,
      StartServer(options.listen, {router->router_service_.get(),
                                   router->membership_service_.get()}));
  router->server_ = std::move(started.server);
  router->address_ = started.address;
  router->server_->GetHealthCheckService()->SetServingStatus(
      kRouterHealthService, false);
  router->poller_ = std::make_unique<WorkerPoller>(
      core, options.prefill_workers, options.decode_workers,
      options.poll_interval);
  router->poller_->Start();
  router->health_thread_ = std::thread([r = router.get()] { r->HealthLoop(); });
  if (!options.http_listen.empty()) {
    HttpServerOptions http;
    http.listen = options.http_listen;
    http.threads = options.http_threads;
    RouterServer* r = router.get();
    const OpenAiApiOptions api =
        OpenAiOptions(*r->server_, r->core_->model().id, options);
    TANDEM_ASSIGN_OR_RETURN(
        router->http_,
        HttpServer::Start(http, [r, &api](httplib::Server& server) {
          AddMetricsRoute(server, r->metrics_, [r] { r->RefreshMetrics(); });
          AddOpenAiRoutes(server, api);
          server.Get("/health", [r](const httplib::Request&,
                                    httplib::Response& response) {
            // 200 once a prefill and a decode worker, or a colocated
            // worker, are in rotation, so
            // that load balancers send traffic only to a router that can
            // serve it.
            if (r->ready()) {
              response.set_content("{\"status\":\"ok\"}\n", "application/json");
            } else {
              response.status = 503;
              response.set_content(
                  "{\"status\":\"unavailable\",\"reason\":\"no prefill or "
                  "no decode worker, and no colocated worker, in "
                  "rotation\"}\n",
                  "application/json");
            }
          });
        }));
  }
  return router;
}

RouterServer::~RouterServer() { Shutdown(absl::ZeroDuration()); }

void RouterServer::RefreshMetrics() {
  const ClusterView view = core_->View();
  router_metrics_->SetWorkers(view.prefill.size(), view.decode.size());
}

void RouterServer::HealthLoop() {
  bool serving = false;
  absl::MutexLock lock(&mu_);
  do {
    mu_.Unlock();
    const ClusterView view = core_->View();
    const bool now_serving = (!view.prefill.empty() && !view.decode.empty()) ||
                             !view.colocated.empty();
    if (now_serving != serving) {
      serving = now_serving;
      ready_.store(serving);
      server_->GetHealthCheckService()->SetServingStatus(kRouterHealthService,
                                                         serving);
      LOG(INFO) << "router " << (serving ? "ready" : "not ready")
                << " prefill_workers=" << view.prefill.size()
                << " decode_workers=" << view.decode.size()
                << " colocated_workers=" << view.colocated.size()
                << " excluded_workers=" << view.excluded;
    }
    mu_.Lock();
  } while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                                 absl::Milliseconds(200)));
}

void RouterServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (health_thread_.joinable()) health_thread_.join();
  // HTTP handlers are gRPC clients of this router: stop them first. A
  // streaming handler ends when the gRPC shutdown below cancels its call.
  std::thread http_stopper;
  if (http_ != nullptr) http_stopper = std::thread([this] { http_->Stop(); });
  poller_.reset();
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
  }
  // Calls cancelled by the shutdown finish their worker calls promptly.
  if (core_ != nullptr) core_->WaitIdle();
  if (http_stopper.joinable()) http_stopper.join();
  server_.reset();
}

absl::Status RunRouter(const RouterOptions& options) {
  const sigset_t stop_signals = BlockStopSignals();
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<RouterServer> router,
                          RouterServer::Start(options));
  const ServedModel& model = router->core().model();
  LOG(INFO) << "router serving address=" << router->address()
            << " model=" << model.id << " context=" << model.context()
            << " vocab=" << model.config.vocab_size << " kvstore="
            << (options.kvstore_nodes.empty()
                    ? "-"
                    : absl::StrJoin(options.kvstore_nodes, ","))
            << " static_prefill=" << options.prefill_workers.size()
            << " static_decode=" << options.decode_workers.size()
            << " worker_expiry_s="
            << absl::ToDoubleSeconds(options.worker_expiry)
            << " poll_interval_s="
            << absl::ToDoubleSeconds(options.poll_interval)
            << " store_timeout_s="
            << absl::ToDoubleSeconds(options.store_timeout)
            << " max_inflight=" << options.max_inflight
            << " model_dir=" << options.model_dir << " pid=" << getpid();
  if (!router->http_address().empty()) {
    LOG(INFO) << "router http serving address=" << router->http_address()
              << " threads=" << options.http_threads << " metrics=http://"
              << router->http_address() << "/metrics";
  }
  TANDEM_RETURN_IF_ERROR(
      WriteAddressFile(options.address_file, router->address()));
  TANDEM_RETURN_IF_ERROR(
      WriteAddressFile(options.http_address_file, router->http_address()));
  const int signal_number = WaitForStopSignal(stop_signals);
  LOG(INFO) << "router stopping signal=" << strsignal(signal_number)
            << " inflight=" << router->core().inflight();
  router->Shutdown(absl::Seconds(2));
  return absl::OkStatus();
}

}  // namespace tandem
