// Prometheus metrics of one server. Each server object owns a
// prometheus::Registry (prometheus-cpp) and registers its families there;
// the registry is served as Prometheus text at GET /metrics.
//
// Names follow Prometheus conventions: a `tandem_` prefix, the unit as a
// suffix (`_seconds`, `_bytes`), `_total` on counters.
#ifndef TANDEM_SERVICE_METRICS_H_
#define TANDEM_SERVICE_METRICS_H_

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

// Registers GET /metrics on `server`, serving `registry`, which must
// outlive the server.
void AddMetricsRoute(httplib::Server& server,
                     const prometheus::Registry& registry);

// Starts an HTTP server on `listen` that serves only /metrics for
// `registry` (workers and the store, whose API is gRPC). An empty `listen`
// starts nothing and returns nullptr.
absl::StatusOr<std::unique_ptr<HttpServer>> StartMetricsServer(
    const std::string& listen, const prometheus::Registry& registry);

// Histogram bucket bounds in seconds for request-scale latencies: 1 ms to
// 2 minutes, about three per decade.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

// Bucket bounds in seconds for per-step and per-token times: 100 us to 5 s.
const prometheus::Histogram::BucketBoundaries& StepBuckets();

// Bucket bounds for counts such as batch sizes: 1, 2, 4, ... 1024.
const prometheus::Histogram::BucketBoundaries& CountBuckets();

}  // namespace tandem

#endif  // TANDEM_SERVICE_METRICS_H_
