#include "router/router_metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "service/metrics.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RequestOutcomeTest, NamesFinishedCompletionsByFinishReason) {
  EXPECT_EQ(RequestOutcome(absl::OkStatus(), v1::FINISH_REASON_STOP),
            "ok_stop");
  EXPECT_EQ(RequestOutcome(absl::OkStatus(), v1::FINISH_REASON_LENGTH),
            "ok_length");
  EXPECT_EQ(RequestOutcome(absl::OkStatus(), v1::FINISH_REASON_UNSPECIFIED),
            "ok");
}

TEST(RequestOutcomeTest, NamesFailuresByLowerCaseCode) {
  EXPECT_EQ(RequestOutcome(absl::InvalidArgumentError("x"),
                           v1::FINISH_REASON_UNSPECIFIED),
            "invalid_argument");
  EXPECT_EQ(
      RequestOutcome(absl::DeadlineExceededError("x"), v1::FINISH_REASON_STOP),
      "deadline_exceeded");
  EXPECT_EQ(RequestOutcome(absl::ResourceExhaustedError("x"),
                           v1::FINISH_REASON_UNSPECIFIED),
            "resource_exhausted");
  EXPECT_EQ(RequestOutcome(absl::UnauthenticatedError("x"),
                           v1::FINISH_REASON_UNSPECIFIED),
            "unauthenticated");
}

TEST(TimePerOutputTokenTest, SpreadsTimeAfterFirstTokenOverTheRest) {
  EXPECT_DOUBLE_EQ(*TimePerOutputToken(1.0, 0.2, 5), 0.2);
  EXPECT_DOUBLE_EQ(*TimePerOutputToken(0.5, 0.1, 2), 0.4);
}

TEST(TimePerOutputTokenTest, IsUndefinedBelowTwoTokens) {
  EXPECT_FALSE(TimePerOutputToken(1.0, 0.2, 1).has_value());
  EXPECT_FALSE(TimePerOutputToken(1.0, 0.0, 0).has_value());
}

TEST(RouterMetricsTest, RecordsOutcomeTokensAndLatencies) {
  prometheus::Registry registry;
  RouterMetrics metrics(registry);
  metrics.RecordRequest({.outcome = "ok_stop",
                         .prompt_tokens = 10,
                         .cached_tokens = 4,
                         .completion_tokens = 5,
                         .ttft_ms = 200,
                         .queue_ms = 10,
                         .e2e_ms = 1000});
  RequestReport failed;
  failed.outcome = "unavailable";
  failed.e2e_ms = 3;
  metrics.RecordRequest(failed);
  metrics.SetInflight(3);
  metrics.SetWorkers(2, 1);
  const std::string text = MetricsText(registry);
  EXPECT_THAT(text,
              HasSubstr("tandem_router_requests_total{outcome=\"ok_stop\"} 1"));
  EXPECT_THAT(
      text, HasSubstr("tandem_router_requests_total{outcome=\"ok_length\"} 0"));
  EXPECT_THAT(
      text,
      HasSubstr("tandem_router_requests_total{outcome=\"unavailable\"} 1"));
  EXPECT_THAT(text, HasSubstr("tandem_router_prompt_tokens_total 10"));
  EXPECT_THAT(text, HasSubstr("tandem_router_cached_tokens_total 4"));
  EXPECT_THAT(text, HasSubstr("tandem_router_generated_tokens_total 5"));
  // The failed request has no first token: one TTFT, two durations.
  EXPECT_THAT(text,
              HasSubstr("tandem_router_time_to_first_token_seconds_count 1"));
  EXPECT_THAT(text,
              HasSubstr("tandem_router_request_duration_seconds_count 2"));
  EXPECT_THAT(text, HasSubstr("tandem_router_queue_time_seconds_count 1"));
  // (1.0 - 0.2) / 4 = 0.2 s per token, within the 0.25 s bucket only.
  EXPECT_THAT(
      text,
      HasSubstr(
          "tandem_router_time_per_output_token_seconds_bucket{le=\"0.25\"}"
          " 1"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "tandem_router_time_per_output_token_seconds_bucket{le=\"0.1\"} 0"));
  EXPECT_THAT(text, HasSubstr("tandem_router_requests_in_flight 3"));
  EXPECT_THAT(text, HasSubstr("tandem_router_workers{role=\"prefill\"} 2"));
  EXPECT_THAT(text, HasSubstr("tandem_router_workers{role=\"decode\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("outcome=\"ok\"")));
}

}  // namespace
}  // namespace tandem
