#include "bench/serving_report.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::bench {
namespace {

using ::testing::HasSubstr;

// An OK request: TTFT, then `tokens` tokens ending at `e2e`.
RequestRecord Ok(double ttft, double e2e, int tokens) {
  RequestRecord r;
  r.ttft_ms = ttft;
  r.e2e_ms = e2e;
  r.generated_tokens = tokens;
  r.usage_completion_tokens = tokens;
  r.usage_prompt_tokens = 10;
  r.usage_cached_tokens = 4;
  r.prompt_tokens = 10;
  r.requested_output = tokens;
  for (int i = 1; i < tokens; ++i) {
    r.itl_ms.push_back((e2e - ttft) / (tokens - 1));
  }
  return r;
}

TEST(PercentileTest, InterpolatesBetweenRanks) {
  const std::vector<double> values = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(Percentile(values, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(values, 50), 2.5);   // rank 1.5
  EXPECT_DOUBLE_EQ(Percentile(values, 90), 3.7);   // rank 2.7
  EXPECT_DOUBLE_EQ(Percentile(values, 99), 3.97);  // rank 2.97
  EXPECT_DOUBLE_EQ(Percentile(values, 100), 4);
  const std::vector<double> one = {5};
  EXPECT_DOUBLE_EQ(Percentile(one, 99), 5);
}

TEST(PercentileTest, SummarizeSortsFirst) {
  const Distribution d = Summarize(std::vector<double>{30, 10, 20, 40, 0});
  EXPECT_EQ(d.count, 5);
  EXPECT_DOUBLE_EQ(d.mean, 20);
  EXPECT_DOUBLE_EQ(d.p50, 20);
  EXPECT_DOUBLE_EQ(d.p90, 36);    // rank 3.6: 30 + 0.6 * 10
  EXPECT_DOUBLE_EQ(d.p99, 39.6);  // rank 3.96
  EXPECT_DOUBLE_EQ(d.min, 0);
  EXPECT_DOUBLE_EQ(d.max, 40);
  EXPECT_EQ(Summarize(std::vector<double>{}).count, 0);
}

TEST(TpotTest, ExcludesTheFirstToken) {
  EXPECT_DOUBLE_EQ(*TpotMs(Ok(100, 190, 10)), 10);  // 90 ms over 9 gaps
  EXPECT_FALSE(TpotMs(Ok(100, 100, 1)).has_value());
  RequestRecord none;
  EXPECT_FALSE(TpotMs(none).has_value());
}

TEST(GoodputTest, CountsRequestsMeetingBothSlos) {
  std::vector<RequestRecord> records = {
      Ok(100, 190, 10),   // TTFT 100, TPOT 10: meets both
      Ok(300, 390, 10),   // TTFT too slow
      Ok(100, 1000, 10),  // TPOT 100: too slow
      Ok(150, 150, 1),    // no TPOT: meets the TPOT bound
  };
  RequestRecord failed;
  failed.code = absl::StatusCode::kUnavailable;
  failed.error = "no worker";
  records.push_back(failed);
  failed.code = absl::StatusCode::kResourceExhausted;
  records.push_back(failed);
  records.push_back(failed);
  const Slo slo{.ttft_ms = 200, .tpot_ms = 50};
  const Summary s = Summarize(records, 2.0, slo);
  EXPECT_EQ(s.requests, 7);
  EXPECT_EQ(s.ok, 4);
  EXPECT_EQ(s.slo_met, 2);
  EXPECT_DOUBLE_EQ(s.goodput, 1.0);             // 2 over 2 s
  EXPECT_DOUBLE_EQ(s.request_throughput, 2.0);  // 4 over 2 s
  EXPECT_EQ(s.completion_tokens, 31);
  EXPECT_DOUBLE_EQ(s.output_token_throughput, 15.5);
  EXPECT_DOUBLE_EQ(s.total_token_throughput, (40 + 31) / 2.0);
  EXPECT_EQ(s.cached_tokens, 16);
  EXPECT_EQ(s.errors.at("UNAVAILABLE"), 1);
  EXPECT_EQ(s.errors.at("RESOURCE_EXHAUSTED"), 2);
  // TTFTs 100, 300, 100, 150 sorted: 100 100 150 300.
  EXPECT_DOUBLE_EQ(s.ttft_ms.p50, 125);
  EXPECT_DOUBLE_EQ(s.ttft_ms.mean, 162.5);
  EXPECT_EQ(s.tpot_ms.count, 3);
  EXPECT_EQ(s.itl_ms.count, 27);
  // No bounds: every OK request counts.
  EXPECT_EQ(Summarize(records, 2.0, Slo{}).slo_met, 4);
}

TEST(ReportTest, JsonHoldsConfigSummaryAndRequests) {
  const std::vector<RequestRecord> records = {Ok(100, 190, 10)};
  const Summary s = Summarize(records, 1.0, Slo{});
  const nlohmann::json report = ReportJson({{"label", "x"}}, s, records);
  EXPECT_EQ(report["config"]["label"], "x");
  EXPECT_EQ(report["summary"]["ok"], 1);
  EXPECT_EQ(report["summary"]["ttft_ms"]["p50"], 100.0);
  ASSERT_EQ(report["requests"].size(), 1u);
  EXPECT_EQ(report["requests"][0]["status"], "OK");
  EXPECT_EQ(report["requests"][0]["tpot_ms"], 10.0);
  EXPECT_EQ(report["requests"][0]["itl_ms"].size(), 9u);
  EXPECT_THAT(SummaryTable(s), HasSubstr("TTFT"));
}

}  // namespace
}  // namespace tandem::bench
