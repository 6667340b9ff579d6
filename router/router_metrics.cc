#include "router/router_metrics.h"

#include "absl/strings/ascii.h"
#include "service/metrics.h"

namespace tandem {

std::string RequestOutcome(const absl::Status& status,
                           v1::FinishReason finish) {
  if (!status.ok()) {
    return absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
  }
  switch (finish) {
    case v1::FINISH_REASON_STOP:
      return "ok_stop";
    case v1::FINISH_REASON_LENGTH:
      return "ok_length";
    default:
      return "ok";
  }
}

std::optional<double> TimePerOutputToken(double e2e, double ttft,
                                         int completion_tokens) {
  if (completion_tokens < 2) return std::nullopt;
  return (e2e - ttft) / (completion_tokens - 1);
}

RouterMetrics::RouterMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("tandem_router_requests_total")
                    .Help("Generate requests that ended, by outcome")
                    .Register(registry)),
      ttft_(AddHistogram(registry, "tandem_router_time_to_first_token_seconds",
                         "From arrival to the first token sent",
                         LatencyBuckets())),
      tpot_(AddHistogram(registry,
                         "tandem_router_time_per_output_token_seconds",
                         "Per request: (end to end - time to first token) / "
                         "(completion tokens - 1)",
                         StepBuckets())),
      e2e_(AddHistogram(registry, "tandem_router_request_duration_seconds",
                        "From arrival to the end of the call",
                        LatencyBuckets())),
      queue_(AddHistogram(registry, "tandem_router_queue_time_seconds",
                          "From arrival until the prefill began computing",
                          LatencyBuckets())),
      prompt_tokens_(AddCounter(registry, "tandem_router_prompt_tokens_total",
                                "Prompt tokens of validated requests")),
      cached_tokens_(AddCounter(registry, "tandem_router_cached_tokens_total",
                                "Prompt tokens whose KV came from the store")),
      generated_tokens_(AddCounter(registry,
                                   "tandem_router_generated_tokens_total",
                                   "Completion tokens sent to clients")),
      inflight_(AddGauge(registry, "tandem_router_requests_in_flight",
                         "Generate calls admitted and not yet ended")),
      workers_(prometheus::BuildGauge()
                   .Name("tandem_router_workers")
                   .Help("Workers in rotation, by role")
                   .Register(registry)),
      prefill_workers_(workers_.Add({{"role", "prefill"}})),
      decode_workers_(workers_.Add({{"role", "decode"}})) {
  // Present from the start, so that rates over them are defined.
  requests_.Add({{"outcome", "ok_stop"}});
  requests_.Add({{"outcome", "ok_length"}});
}

void RouterMetrics::RecordRequest(const RequestReport& report) {
  requests_.Add({{"outcome", report.outcome}}).Increment();
  prompt_tokens_.Increment(report.prompt_tokens);
  cached_tokens_.Increment(report.cached_tokens);
  generated_tokens_.Increment(report.completion_tokens);
  e2e_.Observe(report.e2e_ms / 1000);
  if (report.queue_ms.has_value()) queue_.Observe(*report.queue_ms / 1000);
  if (!report.ttft_ms.has_value()) return;
  ttft_.Observe(*report.ttft_ms / 1000);
  const std::optional<double> tpot = TimePerOutputToken(
      report.e2e_ms, *report.ttft_ms, report.completion_tokens);
  if (tpot.has_value()) tpot_.Observe(*tpot / 1000);
}

void RouterMetrics::SetInflight(int requests) { inflight_.Set(requests); }

void RouterMetrics::SetWorkers(int prefill, int decode) {
  prefill_workers_.Set(prefill);
  decode_workers_.Set(decode);
}

}  // namespace tandem
