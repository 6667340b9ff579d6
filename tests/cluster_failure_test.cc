// How a cluster in processes fails: every bad request gets its code and
// leaves nothing allocated, a cancelled stream frees its blocks on the
// decode worker, and a decode worker killed mid-stream fails the stream
// promptly instead of hanging it.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/router_client.h"
#include "tests/cluster_test_util.h"

namespace tandem::testing {
namespace {

using ::testing::HasSubstr;

ModelEnvironment* const environment = RegisterModelEnvironment();
constexpr int kContext = kClusterTestContext;

TEST_F(ClusterTest, BadRequestsGetTheirCodeAndLeaveNothingAllocated) {
  StartCluster({});
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  ExpectRefused({
      {kInvalid, "prompt", [](auto& r) { r.clear_prompt(); }},
      {kInvalid, "prompt.tokens", [](auto& r) { r.mutable_tokens(); }},
      {kInvalid, "prompt.tokens[0]",
       [](auto& r) { r.mutable_tokens()->add_ids(9999); }},
      {kInvalid, "prompt has",
       [](auto& r) { r.set_text(std::string(kContext, 'x')); }},
      {kInvalid, "max_tokens", [](auto& r) { r.set_max_tokens(kContext); }},
      {kInvalid, "max_tokens", [](auto& r) { r.set_max_tokens(-5); }},
      {kInvalid, "temperature",
       [](auto& r) { r.mutable_sampling()->set_temperature(-1); }},
      {kInvalid, "top_p", [](auto& r) { r.mutable_sampling()->set_top_p(0); }},
      {kInvalid, "min_p", [](auto& r) { r.mutable_sampling()->set_min_p(3); }},
      {kInvalid, "presence_penalty",
       [](auto& r) { r.mutable_sampling()->set_presence_penalty(9); }},
      {kInvalid, "logprobs", [](auto& r) { r.set_logprobs(21); }},
      {kInvalid, "stop[0]", [](auto& r) { r.add_stop(""); }},
      {kInvalid, "stop_token_ids[0]",
       [](auto& r) { r.add_stop_token_ids(-1); }},
      {absl::StatusCode::kNotFound, "gpt", [](auto& r) { r.set_model("gpt"); }},
  });
  std::unique_ptr<v1::PrefillWorker::Stub> prefill = cluster_->PrefillStub(0);
  absl::StatusOr<v1::WorkerLoad> load = PrefillLoad(*prefill);
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->queued_requests(), 0);
  EXPECT_EQ(load->running_sequences(), 0);
}

TEST_F(ClusterTest, CancellingAStreamFreesItsBlocksOnTheDecodeWorker) {
  StartCluster({});
  ExpectCancelFreesDecodeWorkerBlocks();
}

TEST_F(ClusterTest, KillingTheOnlyDecodeWorkerGivesUnavailablePromptly) {
  StartCluster({});
  const int kTokens = kContext - 64;
  const v1::GenerateRequest request =
      Greedy(LongGreedyPrompt(kTokens), kTokens);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse reply;
  ASSERT_TRUE(reader->Read(&reply));
  ASSERT_TRUE(cluster_->KillDecodeWorker(0).ok());
  const absl::Time killed = absl::Now();
  while (reader->Read(&reply)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_LT(absl::Now() - killed, absl::Seconds(3));

  // The next request fails fast too, instead of waiting for the worker.
  const absl::Time start = absl::Now();
  const Completion next = Remote(*stub_, Greedy("again", 4));
  EXPECT_EQ(next.status.code(), absl::StatusCode::kUnavailable) << next.status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

}  // namespace
}  // namespace tandem::testing
