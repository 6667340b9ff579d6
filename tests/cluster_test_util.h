// What the cluster tests share: a small random model written once per test
// process, local generation with it as the reference the cluster must
// match, streaming a completion from a router, and a fixture that starts a
// ServingCluster over the model.
//
// Not thread-safe, except Remote, which may run on many threads at once.
#ifndef TANDEM_TESTS_CLUSTER_TEST_UTIL_H_
#define TANDEM_TESTS_CLUSTER_TEST_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "gtest/gtest.h"
#include "proto/generate.grpc.pb.h"
#include "tests/serving_cluster.h"

namespace tandem::testing {

// The test model's context (max_position_embeddings).
inline constexpr int kClusterTestContext = 1024;

// What one completion produced, locally or through the cluster.
struct Completion {
  absl::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  std::vector<v1::Logprobs> logprobs;
  v1::Usage usage;  // local: prompt and completion tokens only
  int replies = 0;
};

// Writes the test model into a temporary directory at set-up, loads it for
// local generation, and removes it at tear-down.
class ModelEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override;

  std::filesystem::path model_dir() const { return dir_ / "tiny"; }

  // Local generation of `request` (text prompt), the reference.
  Completion Local(const v1::GenerateRequest& request);

 private:
  std::filesystem::path dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

// Registers the process's ModelEnvironment with GoogleTest (once) and
// returns it. Call at namespace scope, before tests run.
ModelEnvironment* RegisterModelEnvironment();

// Streams `request` from the router behind `stub`.
Completion Remote(v1::Router::StubInterface& stub,
                  const v1::GenerateRequest& request,
                  absl::Duration timeout = absl::Seconds(60));

// A greedy request, and a seeded one with every sampling filter on.
v1::GenerateRequest Greedy(const std::string& text, int max_tokens);
v1::GenerateRequest Seeded(const std::string& text, int max_tokens,
                           uint64_t seed);

// Expects the cluster's completion to equal local generation's: tokens,
// text, finish reason and token counts.
void ExpectSameCompletion(const Completion& remote, const Completion& local);

// A prompt whose greedy completion runs `tokens` tokens without stopping.
std::string LongGreedyPrompt(int tokens);

// A request the router must refuse: Greedy("ok", 8) with `change` applied,
// refused with `code` in a message that contains `names`.
struct RefusedRequest {
  absl::StatusCode code;
  std::string names;
  std::function<void(v1::GenerateRequest&)> change;
};

class ClusterTest : public ::testing::Test {
 protected:
  // Starts a cluster over the test model (options.model_dir is set here).
  void StartCluster(ServingClusterOptions options);

  // Waits until decode worker i holds no sequence and every block is free.
  void ExpectDecodeWorkerIdle(int i);

  // Sends each of `cases` through the router, expecting its code and names
  // and no reply, then expects decode worker 0 idle: a refused request
  // leaves nothing allocated.
  void ExpectRefused(const std::vector<RefusedRequest>& cases);

  // Expects the router's health check to report SERVING within 5 s.
  void ExpectRouterServing();

  // Checks, on the running cluster, that a greedy completion ending at a
  // stop string from the middle of its text, with 3 logprobs per token,
  // equals local generation.
  void ExpectStopStringsAndLogprobsMatchLocal();

  // Starts a long stream, waits until decode worker 0 holds its blocks,
  // cancels it, and expects CANCELLED and the worker idle again.
  void ExpectCancelFreesDecodeWorkerBlocks();

  std::unique_ptr<ServingCluster> cluster_;
  std::unique_ptr<v1::Router::Stub> stub_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_CLUSTER_TEST_UTIL_H_
