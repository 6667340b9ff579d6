// What a serving benchmark measured, per request and in summary, and the
// report `tandem bench` prints and writes (docs/benchmarks.md, "Serving
// benchmark", documents the JSON keys).
//
// Definitions, all from the client's clock:
//   TTFT  send to the first streamed reply that carries a token;
//   ITL   the gap between two successive replies that carry tokens (a
//         reply carrying several tokens is one gap);
//   TPOT  (e2e - TTFT) / (tokens - 1), for requests with 2 or more tokens;
//   e2e   send to the end of the stream.
// Percentiles interpolate linearly between the two nearest ranks: the q-th
// percentile of n sorted values is at rank q / 100 * (n - 1).
//
// Pure computation, thread-compatible.
#ifndef TANDEM_BENCH_SERVING_REPORT_H_
#define TANDEM_BENCH_SERVING_REPORT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"

namespace tandem::bench {

// One request as the client saw it.
struct RequestRecord {
  int64_t index = 0;
  double start_ms = 0;  // since the run's start
  // Unset when no token arrived.
  std::optional<double> ttft_ms;
  double e2e_ms = 0;
  std::vector<double> itl_ms;
  int generated_tokens = 0;  // token ids the client received
  int prompt_tokens = 0;     // sent
  int requested_output = 0;  // max_tokens
  // The lengths the workload wanted before clipping, and whether it was
  // clipped to the context.
  int wanted_input = 0;
  int wanted_output = 0;
  bool clipped = false;
  // From the final reply's usage; unset if the stream ended without one.
  std::optional<int> usage_prompt_tokens;
  std::optional<int> usage_cached_tokens;
  std::optional<int> usage_completion_tokens;
  std::optional<double> router_ttft_ms;  // the router's own measurement
  std::string finish;                    // "stop", "length" or "" (none)
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string error;  // the status message when not OK
};

// TPOT of `record`; unset with fewer than 2 tokens or no TTFT.
std::optional<double> TpotMs(const RequestRecord& record);

// Tokens the request produced: usage's count if present, else the client's.
int CompletionTokens(const RequestRecord& record);

// The p-th percentile (0 to 100) of `sorted` (ascending), interpolating
// linearly. REQUIRES: sorted is not empty.
double Percentile(absl::Span<const double> sorted, double p);

// Summary statistics of a set of values; all 0 when count is 0.
struct Distribution {
  int64_t count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0;
};

Distribution Summarize(std::vector<double> values);

// Service-level objectives; 0 means no bound.
struct Slo {
  double ttft_ms = 0;
  double tpot_ms = 0;
};

// Whether `record` succeeded within `slo` (a request with fewer than two
// tokens has no TPOT and meets any TPOT bound).
bool MeetsSlo(const RequestRecord& record, const Slo& slo);

struct Summary {
  int64_t requests = 0;
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // gRPC code name -> count
  int64_t clipped = 0;
  int64_t slo_met = 0;
  // Seconds from the run's start to the end of its last request.
  double duration_s = 0;
  double request_throughput = 0;       // OK requests per second
  double goodput = 0;                  // requests meeting the SLOs per second
  double output_token_throughput = 0;  // completion tokens per second
  double total_token_throughput = 0;   // prompt + completion tokens per second
  // Totals over OK requests.
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t requested_output_tokens = 0;
  int64_t stopped_early = 0;  // OK requests that ended before max_tokens
  // Over OK requests.
  Distribution ttft_ms, tpot_ms, itl_ms, e2e_ms;
};

// Summarizes `records` measured over `duration_s` seconds (> 0) against
// `slo`.
Summary Summarize(absl::Span<const RequestRecord> records, double duration_s,
                  const Slo& slo);

// The report: {"config": config, "summary": ..., "requests": [...]}.
nlohmann::json ReportJson(const nlohmann::json& config, const Summary& summary,
                          absl::Span<const RequestRecord> records);

// The summary as a human-readable table, one figure per line.
std::string SummaryTable(const Summary& summary);

}  // namespace tandem::bench

#endif  // TANDEM_BENCH_SERVING_REPORT_H_
