// A colocated cluster in processes (kvstore, router, decode_node
// --colocated) over a small random byte-level model: whole requests on one
// worker match local generation token for token (greedy, seeded, stop
// strings, logprobs, prompts chunked over several steps), repeated prefixes
// come from the store, bad requests get their code, and a cancelled stream
// frees the worker's blocks.
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

// One store, the router and one colocated worker computing at most
// `budget` prompt tokens per step.
ServingClusterOptions Colocated(int budget = 512) {
  ServingClusterOptions options;
  options.prefill_workers = 0;
  options.decode_workers = 1;
  options.colocated = true;
  options.decode_flags = {
      absl::StrCat("--max_prefill_tokens_per_step=", budget)};
  return options;
}

TEST_F(ClusterTest, ColocatedGreedyAndSeededOutputMatchLocalGeneration) {
  // A 16-token budget: the longer prompts take several steps.
  StartCluster(Colocated(16));
  const std::vector<std::string> prompts = {
      "", "Hello",
      "Q: Why is the sky blue?\nA:", std::string(70, 'z') + " and then"};
  for (const std::string& prompt : prompts) {
    SCOPED_TRACE(prompt);
    const v1::GenerateRequest greedy = Greedy(prompt, 40);
    const Completion remote = Remote(*stub_, greedy);
    ExpectSameCompletion(remote, environment->Local(greedy));
    EXPECT_GT(remote.usage.time_to_first_token_ms(), 0.0);
    const v1::GenerateRequest seeded = Seeded(prompt, 40, 77);
    ExpectSameCompletion(Remote(*stub_, seeded), environment->Local(seeded));
  }
  ExpectDecodeWorkerIdle(0);
}

TEST_F(ClusterTest, ColocatedStopStringsAndLogprobsMatchLocal) {
  StartCluster(Colocated());
  ExpectStopStringsAndLogprobsMatchLocal();
}

TEST_F(ClusterTest, ColocatedWorkerReusesPrefixesThroughTheStore) {
  StartCluster(Colocated());
  const std::string prefix(95, 'p');  // BOS + 95 bytes = 6 full blocks
  const Completion cold = Remote(*stub_, Greedy(prefix, 16));
  ASSERT_TRUE(cold.status.ok()) << cold.status;
  EXPECT_EQ(cold.usage.cached_tokens(), 0);
  // The worker writes the blocks after the first token; give it a moment.
  const v1::GenerateRequest second = Greedy(prefix + " and more", 16);
  Completion warm;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    warm = Remote(*stub_, second);
    ASSERT_TRUE(warm.status.ok()) << warm.status;
  } while (warm.usage.cached_tokens() == 0 && absl::Now() < deadline);
  ExpectSameCompletion(warm, environment->Local(second));
  EXPECT_EQ(warm.usage.cached_tokens(), 96);
}

TEST_F(ClusterTest, ColocatedBadRequestsGetTheirCodeAndLeaveNothingAllocated) {
  StartCluster(Colocated());
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  ExpectRefused({
      {kInvalid, "prompt.tokens[0]",
       [](auto& r) { r.mutable_tokens()->add_ids(9999); }},
      {kInvalid, "max_tokens", [](auto& r) { r.set_max_tokens(kContext); }},
      {kInvalid, "temperature",
       [](auto& r) { r.mutable_sampling()->set_temperature(-1); }},
      {kInvalid, "logprobs", [](auto& r) { r.set_logprobs(21); }},
      {kInvalid, "stop[0]", [](auto& r) { r.add_stop(""); }},
      {absl::StatusCode::kNotFound, "gpt", [](auto& r) { r.set_model("gpt"); }},
  });
}

TEST_F(ClusterTest, ColocatedWorkerRefusesRequestsMeantForOtherKinds) {
  StartCluster(Colocated());
  std::unique_ptr<v1::DecodeWorker::Stub> worker = cluster_->DecodeStub(0);
  grpc::ClientContext context;
  v1::DecodeRequest request;
  request.add_prompt_token_ids(1);
  request.set_max_tokens(1);
  auto reader = worker->Decode(&context, request);
  v1::DecodeResponse reply;
  EXPECT_FALSE(reader->Read(&reply));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("colocated"));
  absl::StatusOr<v1::WorkerLoad> load = DecodeLoad(*worker);
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->kind(), v1::WORKER_KIND_COLOCATED);
}

TEST_F(ClusterTest, CancellingAColocatedStreamFreesItsBlocks) {
  StartCluster(Colocated());
  ExpectCancelFreesDecodeWorkerBlocks();
}

TEST_F(ClusterTest, RouterWithOnlyAColocatedWorkerIsReady) {
  StartCluster(Colocated());
  grpc::ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(
      stub_->ListModels(&list_context, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).colocated_workers(), 1);
  EXPECT_EQ(models.models(0).prefill_workers(), 0);
  EXPECT_EQ(models.models(0).decode_workers(), 0);
  ExpectRouterServing();
}

}  // namespace
}  // namespace tandem::testing
