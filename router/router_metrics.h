// The router's Prometheus metrics (docs/metrics.md): requests by outcome,
// their latencies (time to first token, time per output token, queue time,
// end to end), token counts, requests in flight and workers in rotation.
//
// RouterServer creates one over its own registry and hands it to the
// RouterCore; each Generate call reports itself once, when it ends.
//
// Thread-safe: prometheus-cpp metrics are atomic.
#ifndef TANDEM_ROUTER_ROUTER_METRICS_H_
#define TANDEM_ROUTER_ROUTER_METRICS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "proto/generate.pb.h"

namespace tandem {

// What one finished Generate call reports.
struct RequestReport {
  // RequestOutcome's label value.
  std::string outcome;
  int prompt_tokens = 0;
  int cached_tokens = 0;
  int completion_tokens = 0;
  // Milliseconds; a missing value is not observed (a request that failed
  // before its first token has no time to first token).
  std::optional<double> ttft_ms;
  std::optional<double> queue_ms;
  double e2e_ms = 0;
};

// The `outcome` label of a request that ended with `status` and `finish`:
// "ok_stop" or "ok_length" for a finished completion ("ok" if OK without
// a finish reason), else the status code's lower-case name
// ("invalid_argument", "unavailable", "deadline_exceeded", ...).
std::string RequestOutcome(const absl::Status& status, v1::FinishReason finish);

// Time per generated token after the first, (e2e - ttft) / (tokens - 1),
// in the unit of `e2e` and `ttft`. nullopt for fewer than two tokens.
std::optional<double> TimePerOutputToken(double e2e, double ttft,
                                         int completion_tokens);

class RouterMetrics {
 public:
  // Registers the router's families in `registry`, which must outlive
  // this object.
  explicit RouterMetrics(prometheus::Registry& registry);

  RouterMetrics(const RouterMetrics&) = delete;
  RouterMetrics& operator=(const RouterMetrics&) = delete;

  // Counts a finished request: its outcome, tokens and latencies.
  void RecordRequest(const RequestReport& report);
  // The number of Generate calls in flight now.
  void SetInflight(int requests);
  // Workers in rotation now, by role.
  void SetWorkers(int prefill, int decode);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Histogram& ttft_;
  prometheus::Histogram& tpot_;
  prometheus::Histogram& e2e_;
  prometheus::Histogram& queue_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& cached_tokens_;
  prometheus::Counter& generated_tokens_;
  prometheus::Gauge& inflight_;
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Gauge& prefill_workers_;
  prometheus::Gauge& decode_workers_;
};

}  // namespace tandem

#endif  // TANDEM_ROUTER_ROUTER_METRICS_H_
