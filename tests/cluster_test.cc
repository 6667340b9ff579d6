// A whole cluster in processes (kvstore, router, prefill_node, decode_node)
// over a small random byte-level model, checked against local generation
// (engine/generation.h) in this process: greedy and seeded output token for
// token, stop strings and logprobs, prefix reuse through the store, and
// concurrent streams over two of each node.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/router_client.h"
#include "tests/cluster_test_util.h"

namespace tandem::testing {
namespace {

using ::testing::ElementsAreArray;

ModelEnvironment* const environment = RegisterModelEnvironment();
constexpr int kContext = kClusterTestContext;

TEST_F(ClusterTest, GreedyOutputMatchesLocalGenerationTokenForToken) {
  StartCluster({});
  const std::vector<std::string> prompts = {
      "", "Hello",
      "Q: Why is the sky blue?\nA:", std::string(70, 'z') + " and then"};
  for (const std::string& prompt : prompts) {
    SCOPED_TRACE(prompt);
    const v1::GenerateRequest request = Greedy(prompt, 48);
    const Completion remote = Remote(*stub_, request);
    ExpectSameCompletion(remote, environment->Local(request));
    EXPECT_GT(remote.usage.time_to_first_token_ms(), 0.0);
  }
}

TEST_F(ClusterTest, SeededSamplingIsReproducibleAndMatchesLocal) {
  StartCluster({});
  const v1::GenerateRequest request = Seeded("A fortune: ", 64, 42);
  const Completion first = Remote(*stub_, request);
  const Completion second = Remote(*stub_, request);
  ExpectSameCompletion(first, environment->Local(request));
  EXPECT_EQ(first.tokens, second.tokens);
  EXPECT_EQ(first.usage.seed(), 42u);
}

TEST_F(ClusterTest, UnsetSeedIsReportedAndRepeatsTheCompletion) {
  StartCluster({});
  v1::GenerateRequest request = Seeded("Luck: ", 32, 0);
  request.mutable_sampling()->clear_seed();
  const Completion first = Remote(*stub_, request);
  ASSERT_TRUE(first.status.ok()) << first.status;
  request.mutable_sampling()->set_seed(first.usage.seed());
  const Completion again = Remote(*stub_, request);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.tokens, first.tokens);
}

TEST_F(ClusterTest, StopStringsAndLogprobsMatchLocal) {
  StartCluster({});
  ExpectStopStringsAndLogprobsMatchLocal();
}

TEST_F(ClusterTest, SharedLongPrefixReusesStoredBlocks) {
  StartCluster({});
  const std::string prefix(95, 'p');  // BOS + 95 bytes = 6 full blocks
  const v1::GenerateRequest first = Greedy(prefix, 16);
  const Completion cold = Remote(*stub_, first);
  ASSERT_TRUE(cold.status.ok()) << cold.status;
  EXPECT_EQ(cold.usage.cached_tokens(), 0);

  const v1::GenerateRequest second = Greedy(prefix + " and more", 16);
  const Completion warm = Remote(*stub_, second);
  ExpectSameCompletion(warm, environment->Local(second));
  EXPECT_GT(warm.usage.cached_tokens(), 0);
  EXPECT_LE(warm.usage.cached_tokens(), 96);
  EXPECT_EQ(warm.usage.cached_tokens() % 16, 0);

  const Completion repeat = Remote(*stub_, first);
  EXPECT_GT(repeat.usage.cached_tokens(), 0);
  EXPECT_EQ(repeat.tokens, cold.tokens);
}

TEST_F(ClusterTest, ConcurrentStreamsOverTwoOfEachNodeAllComplete) {
  ServingClusterOptions options;
  options.prefill_workers = 2;
  options.decode_workers = 2;
  options.store_nodes = 2;
  options.heartbeats = false;  // the router lists the workers itself
  StartCluster(options);
  constexpr int kStreams = 32;
  std::vector<v1::GenerateRequest> requests;
  std::vector<Completion> expected;
  for (int i = 0; i < kStreams; ++i) {
    const std::string prompt =
        absl::StrCat("Shared opening of every request, then #", i % 8);
    requests.push_back(i % 2 == 0 ? Greedy(prompt, 24)
                                  : Seeded(prompt, 24, 1000 + i));
    expected.push_back(environment->Local(requests.back()));
  }
  std::vector<Completion> results(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] { results[i] = Remote(*stub_, requests[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kStreams; ++i) {
    SCOPED_TRACE(absl::StrCat("stream ", i));
    ExpectSameCompletion(results[i], expected[i]);
  }
  ExpectDecodeWorkerIdle(0);
  ExpectDecodeWorkerIdle(1);
}

TEST_F(ClusterTest, ListModelsAndTokenizeThroughTheRouter) {
  StartCluster({});
  grpc::ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(
      stub_->ListModels(&list_context, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).id(), "tiny");
  EXPECT_EQ(models.models(0).max_context(), kContext);
  grpc::ClientContext tokenize_context;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("ok");
  v1::TokenizeResponse ids;
  ASSERT_TRUE(stub_->Tokenize(&tokenize_context, tokenize, &ids).ok());
  EXPECT_THAT(ids.token_ids(), ElementsAreArray({'o', 'k'}));
  // The router's readiness follows its registry within a fraction of a
  // second.
  ExpectRouterServing();
}

}  // namespace
}  // namespace tandem::testing
