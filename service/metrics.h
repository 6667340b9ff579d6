// Prometheus metrics of one server. Each server object owns a
// prometheus::Registry (prometheus-cpp) and registers its families there;
// the registry is served as Prometheus text at GET /metrics.
//
// Names follow Prometheus conventions: a `tandem_` prefix, the unit as a
// suffix (`_seconds`, `_bytes`), `_total` on counters.
#ifndef TANDEM_SERVICE_METRICS_H_
#define TANDEM_SERVICE_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "httplib.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "service/http_server.h"

namespace tandem {

// The registry's families in the Prometheus text exposition format 0.0.4.
std::string MetricsText(const prometheus::Registry& registry);

// Called before each scrape, to bring metrics read from elsewhere up to
// date; may run on several of the server's threads at once.
using MetricsRefresh = std::function<void()>;

// Registers GET /metrics on `server`, serving `registry`, which must
// outlive the server. `refresh`, if set, runs before each scrape.
void AddMetricsRoute(httplib::Server& server,
                     const prometheus::Registry& registry,
                     MetricsRefresh refresh = nullptr);

// Starts an HTTP server on `listen` that serves only /metrics for
// `registry` (workers and the store, whose API is gRPC), running `refresh`
// before each scrape if set. An empty `listen` starts nothing and returns
// nullptr. InvalidArgument if `listen` is not host:port; Unavailable if it
// cannot be bound.
absl::StatusOr<std::unique_ptr<HttpServer>> StartMetricsServer(
    const std::string& listen, const prometheus::Registry& registry,
    MetricsRefresh refresh = nullptr);

// A node's /metrics server and the host:port it is bound to; both empty
// when the node serves no metrics.
struct MetricsEndpoint {
  std::unique_ptr<HttpServer> server;
  std::string address;
};

// StartMetricsServer on `listen`, then the bound address written to
// `address_file` (WriteAddressFile; nothing if the path is empty). Errors
// as those two return them.
absl::StatusOr<MetricsEndpoint> ServeMetrics(
    const std::string& listen, const std::string& address_file,
    const prometheus::Registry& registry);

// Histogram bucket bounds in seconds for request-scale latencies: 1 ms to
// 2 minutes, about three per decade.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

// Bucket bounds in seconds for per-step and per-token times: 100 us to 5 s.
const prometheus::Histogram::BucketBoundaries& StepBuckets();

// Bucket bounds for counts such as batch sizes: 1, 2, 4, ... 1024.
const prometheus::Histogram::BucketBoundaries& CountBuckets();

// Registers a family `name` without labels in `registry` and returns its
// one metric, owned by the registry. REQUIRES: `name` is a valid metric
// name not registered with another type.
prometheus::Counter& AddCounter(prometheus::Registry& registry,
                                const std::string& name,
                                const std::string& help);
prometheus::Gauge& AddGauge(prometheus::Registry& registry,
                            const std::string& name, const std::string& help);
prometheus::Histogram& AddHistogram(
    prometheus::Registry& registry, const std::string& name,
    const std::string& help,
    const prometheus::Histogram::BucketBoundaries& buckets);

}  // namespace tandem

#endif  // TANDEM_SERVICE_METRICS_H_
