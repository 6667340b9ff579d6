#include "bench/serving_report.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::bench {
namespace {

using json = nlohmann::json;

json DistributionJson(const Distribution& d) {
  return {{"count", d.count}, {"mean", d.mean}, {"p50", d.p50}, {"p90", d.p90},
          {"p99", d.p99},     {"min", d.min},   {"max", d.max}};
}

json Optional(const std::optional<int>& value) {
  return value.has_value() ? json(*value) : json(nullptr);
}

json RecordJson(const RequestRecord& r) {
  const std::optional<double> tpot = TpotMs(r);
  return {
      {"index", r.index},
      {"start_ms", r.start_ms},
      {"ttft_ms", r.ttft_ms.has_value() ? json(*r.ttft_ms) : json(nullptr)},
      {"tpot_ms", tpot.has_value() ? json(*tpot) : json(nullptr)},
      {"e2e_ms", r.e2e_ms},
      {"itl_ms", r.itl_ms},
      {"prompt_tokens", r.prompt_tokens},
      {"requested_output_tokens", r.requested_output},
      {"generated_tokens", r.generated_tokens},
      {"wanted_input_tokens", r.wanted_input},
      {"wanted_output_tokens", r.wanted_output},
      {"clipped", r.clipped},
      {"usage_prompt_tokens", Optional(r.usage_prompt_tokens)},
      {"usage_cached_tokens", Optional(r.usage_cached_tokens)},
      {"usage_completion_tokens", Optional(r.usage_completion_tokens)},
      {"router_ttft_ms",
       r.router_ttft_ms.has_value() ? json(*r.router_ttft_ms) : json(nullptr)},
      {"finish", r.finish},
      {"status", absl::StatusCodeToString(r.code)},
      {"error", r.error},
  };
}

std::string DistributionLine(const char* name, const Distribution& d) {
  return absl::StrFormat("%-9s %9.2f %9.2f %9.2f %9.2f %8d\n", name, d.mean,
                         d.p50, d.p90, d.p99, d.count);
}

}  // namespace

std::optional<double> TpotMs(const RequestRecord& record) {
  if (!record.ttft_ms.has_value() || record.generated_tokens < 2) {
    return std::nullopt;
  }
  return (record.e2e_ms - *record.ttft_ms) / (record.generated_tokens - 1);
}

int CompletionTokens(const RequestRecord& record) {
  return record.usage_completion_tokens.value_or(record.generated_tokens);
}

double Percentile(absl::Span<const double> sorted, double p) {
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(rank));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = rank - static_cast<double>(below);
  return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

Distribution Summarize(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  d.count = static_cast<int64_t>(values.size());
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) /
           static_cast<double>(values.size());
  d.p50 = Percentile(values, 50);
  d.p90 = Percentile(values, 90);
  d.p99 = Percentile(values, 99);
  d.min = values.front();
  d.max = values.back();
  return d;
}

bool MeetsSlo(const RequestRecord& record, const Slo& slo) {
  if (record.code != absl::StatusCode::kOk || !record.ttft_ms.has_value()) {
    return false;
  }
  if (slo.ttft_ms > 0 && *record.ttft_ms > slo.ttft_ms) return false;
  const std::optional<double> tpot = TpotMs(record);
  return slo.tpot_ms <= 0 || !tpot.has_value() || *tpot <= slo.tpot_ms;
}

Summary Summarize(absl::Span<const RequestRecord> records, double duration_s,
                  const Slo& slo) {
  Summary s;
  s.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  for (const RequestRecord& r : records) {
    ++s.requests;
    if (r.clipped) ++s.clipped;
    if (r.code != absl::StatusCode::kOk) {
      ++s.errors[absl::StatusCodeToString(r.code)];
      continue;
    }
    ++s.ok;
    if (MeetsSlo(r, slo)) ++s.slo_met;
    s.prompt_tokens += r.usage_prompt_tokens.value_or(r.prompt_tokens);
    s.cached_tokens += r.usage_cached_tokens.value_or(0);
    s.completion_tokens += CompletionTokens(r);
    s.requested_output_tokens += r.requested_output;
    if (CompletionTokens(r) < r.requested_output) ++s.stopped_early;
    if (r.ttft_ms.has_value()) ttft.push_back(*r.ttft_ms);
    if (std::optional<double> t = TpotMs(r); t.has_value()) tpot.push_back(*t);
    itl.insert(itl.end(), r.itl_ms.begin(), r.itl_ms.end());
    e2e.push_back(r.e2e_ms);
  }
  if (duration_s > 0) {
    s.request_throughput = s.ok / duration_s;
    s.goodput = s.slo_met / duration_s;
    s.output_token_throughput = s.completion_tokens / duration_s;
    s.total_token_throughput =
        (s.prompt_tokens + s.completion_tokens) / duration_s;
  }
  s.ttft_ms = Summarize(std::move(ttft));
  s.tpot_ms = Summarize(std::move(tpot));
  s.itl_ms = Summarize(std::move(itl));
  s.e2e_ms = Summarize(std::move(e2e));
  return s;
}

json ReportJson(const json& config, const Summary& s,
                absl::Span<const RequestRecord> records) {
  json summary = {
      {"requests", s.requests},
      {"ok", s.ok},
      {"errors", s.errors},
      {"clipped", s.clipped},
      {"slo_met", s.slo_met},
      {"duration_s", s.duration_s},
      {"request_throughput", s.request_throughput},
      {"goodput", s.goodput},
      {"output_token_throughput", s.output_token_throughput},
      {"total_token_throughput", s.total_token_throughput},
      {"prompt_tokens", s.prompt_tokens},
      {"cached_tokens", s.cached_tokens},
      {"completion_tokens", s.completion_tokens},
      {"requested_output_tokens", s.requested_output_tokens},
      {"stopped_early", s.stopped_early},
      {"ttft_ms", DistributionJson(s.ttft_ms)},
      {"tpot_ms", DistributionJson(s.tpot_ms)},
      {"itl_ms", DistributionJson(s.itl_ms)},
      {"e2e_ms", DistributionJson(s.e2e_ms)},
  };
  json requests = json::array();
  for (const RequestRecord& r : records) requests.push_back(RecordJson(r));
  return {{"config", config},
          {"summary", std::move(summary)},
          {"requests", std::move(requests)}};
}

std::string SummaryTable(const Summary& s) {
  std::string out = absl::StrFormat(
      "requests           %d ok, %d failed, %d clipped to the context\n", s.ok,
      s.requests - s.ok, s.clipped);
  for (const auto& [code, count] : s.errors) {
    absl::StrAppendFormat(&out, "  %-16s %d\n", code, count);
  }
  absl::StrAppendFormat(
      &out,
      "duration           %.2f s\n"
      "throughput         %.3f req/s, %.1f output tok/s, %.1f total tok/s\n"
      "goodput            %.3f req/s (%d of %d OK requests met the SLOs)\n"
      "tokens             prompt %d (cached %d), output %d of %d requested"
      " (%d requests ended early)\n",
      s.duration_s, s.request_throughput, s.output_token_throughput,
      s.total_token_throughput, s.goodput, s.slo_met, s.ok, s.prompt_tokens,
      s.cached_tokens, s.completion_tokens, s.requested_output_tokens,
      s.stopped_early);
  absl::StrAppendFormat(&out, "%-9s %9s %9s %9s %9s %8s\n", "ms", "mean", "p50",
                        "p90", "p99", "count");
  absl::StrAppend(&out, DistributionLine("TTFT", s.ttft_ms),
                  DistributionLine("TPOT", s.tpot_ms),
                  DistributionLine("ITL", s.itl_ms),
                  DistributionLine("e2e", s.e2e_ms));
  return out;
}

}  // namespace tandem::bench
