#include "service/metrics.h"

#include <utility>

#include "prometheus/text_serializer.h"
#include "service/server.h"

namespace tandem {

std::string MetricsText(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

void AddMetricsRoute(httplib::Server& server,
                     const prometheus::Registry& registry,
                     MetricsRefresh refresh) {
  server.Get("/metrics",
             [&registry, refresh = std::move(refresh)](
                 const httplib::Request&, httplib::Response& response) {
               if (refresh) refresh();
               response.set_content(MetricsText(registry),
                                    "text/plain; version=0.0.4; charset=utf-8");
             });
}

absl::StatusOr<std::unique_ptr<HttpServer>> StartMetricsServer(
    const std::string& listen, const prometheus::Registry& registry,
    MetricsRefresh refresh) {
  if (listen.empty()) return nullptr;
  HttpServerOptions options;
  options.listen = listen;
  options.threads = 2;
  return HttpServer::Start(
      options, [&registry, &refresh](httplib::Server& server) {
        AddMetricsRoute(server, registry, std::move(refresh));
      });
}

absl::StatusOr<MetricsEndpoint> ServeMetrics(
    const std::string& listen, const std::string& address_file,
    const prometheus::Registry& registry) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      StartMetricsServer(listen, registry);
  if (!server.ok()) return server.status();
  MetricsEndpoint endpoint;
  endpoint.server = std::move(server).value();
  if (endpoint.server != nullptr) endpoint.address = endpoint.server->address();
  absl::Status written = WriteAddressFile(address_file, endpoint.address);
  if (!written.ok()) return written;
  return endpoint;
}

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const buckets =
      new prometheus::Histogram::BucketBoundaries{
          0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.5,   1,      2.5,   5,    10,    25,   60,  120};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& StepBuckets() {
  static const auto* const buckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& CountBuckets() {
  static const auto* const buckets =
      new prometheus::Histogram::BucketBoundaries{1,  2,   4,   8,   16,  32,
                                                  64, 128, 256, 512, 1024};
  return *buckets;
}

prometheus::Counter& AddCounter(prometheus::Registry& registry,
                                const std::string& name,
                                const std::string& help) {
  return prometheus::BuildCounter()
      .Name(name)
      .Help(help)
      .Register(registry)
      .Add({});
}

prometheus::Gauge& AddGauge(prometheus::Registry& registry,
                            const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(
      {});
}

prometheus::Histogram& AddHistogram(
    prometheus::Registry& registry, const std::string& name,
    const std::string& help,
    const prometheus::Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram()
      .Name(name)
      .Help(help)
      .Register(registry)
      .Add({}, buckets);
}

}  // namespace tandem
