// A whole cluster in processes (kvstore, router, prefill_node, decode_node)
// over a small random byte-level model, checked against local generation
// (engine/generation.h) in this process: greedy and seeded output token for
// token, prefix reuse through the store, concurrency, bad requests,
// cancellation and a decode worker dying mid-stream.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/generation.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/request_validation.h"
#include "router/router_client.h"
#include "tests/serving_cluster.h"
#include "tests/test_model.h"

namespace tandem::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kContext = 1024;

// What one completion produced, locally or through the cluster.
struct Completion {
  absl::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  std::vector<v1::Logprobs> logprobs;
  v1::Usage usage;
  int replies = 0;
};

// The model directory, written once per process and removed at exit.
class ModelEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("cluster_test_", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    TestModelOptions options;
    options.context = kContext;
    ASSERT_TRUE(WriteTestModel(model_dir(), options).ok());
    absl::StatusOr<std::unique_ptr<Model>> model =
        Model::Load(model_dir(), ModelOptions{.threads = 1});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    tokenizer_ = *LoadTokenizer(model_dir());
  }
  void TearDown() override {
    model_.reset();
    fs::remove_all(dir_);
  }

  fs::path model_dir() const { return dir_ / "tiny"; }

  // Local generation of `request`, the reference the cluster must match.
  Completion Local(const v1::GenerateRequest& request) {
    GenerationRequest local;
    local.prompt_ids = *tokenizer_->Encode(request.text());
    local.sampling = SamplingFromProto(request.sampling());
    local.sampling.num_logprobs = std::max(request.logprobs(), 0);
    local.max_tokens = request.max_tokens();
    local.stop.assign(request.stop().begin(), request.stop().end());
    local.stop_token_ids.assign(request.stop_token_ids().begin(),
                                request.stop_token_ids().end());
    Completion out;
    absl::StatusOr<GenerationResult> result =
        Generate(*model_, *tokenizer_, local, [&](const GeneratedToken& token) {
          out.tokens.push_back(token.token);
          out.text += token.text;
          v1::Logprobs& logprobs = out.logprobs.emplace_back();
          logprobs.mutable_chosen()->set_token_id(token.token);
          logprobs.mutable_chosen()->set_logprob(token.logprob);
          for (const TokenLogprob& alt : token.top_logprobs) {
            v1::TokenLogprob* top = logprobs.add_top();
            top->set_token_id(alt.token);
            top->set_logprob(alt.logprob);
          }
          return absl::OkStatus();
        });
    out.status = result.status();
    if (result.ok()) {
      out.finish = result->finish_reason == FinishReason::kStop
                       ? v1::FINISH_REASON_STOP
                       : v1::FINISH_REASON_LENGTH;
      out.usage.set_prompt_tokens(result->prompt_tokens);
      out.usage.set_completion_tokens(result->completion_tokens);
    }
    return out;
  }

 private:
  fs::path dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

ModelEnvironment* const environment = static_cast<ModelEnvironment*>(
    ::testing::AddGlobalTestEnvironment(new ModelEnvironment()));

Completion Remote(v1::Router::StubInterface& stub,
                  const v1::GenerateRequest& request,
                  absl::Duration timeout = absl::Seconds(60)) {
  Completion out;
  out.status = StreamGenerate(
      stub, request,
      [&](const v1::GenerateResponse& reply) {
        ++out.replies;
        out.tokens.insert(out.tokens.end(), reply.token_ids().begin(),
                          reply.token_ids().end());
        out.text += reply.text();
        out.logprobs.insert(out.logprobs.end(), reply.logprobs().begin(),
                            reply.logprobs().end());
        if (reply.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
          out.finish = reply.finish_reason();
          out.usage = reply.usage();
        }
        return absl::OkStatus();
      },
      timeout);
  return out;
}

v1::GenerateRequest Greedy(const std::string& text, int max_tokens) {
  v1::GenerateRequest request;
  request.set_text(text);
  request.set_max_tokens(max_tokens);
  request.mutable_sampling()->set_temperature(0);
  return request;
}

v1::GenerateRequest Seeded(const std::string& text, int max_tokens,
                           uint64_t seed) {
  v1::GenerateRequest request;
  request.set_text(text);
  request.set_max_tokens(max_tokens);
  v1::SamplingParams* s = request.mutable_sampling();
  s->set_temperature(0.9);
  s->set_top_k(40);
  s->set_top_p(0.95);
  s->set_repetition_penalty(1.1);
  s->set_presence_penalty(0.2);
  s->set_frequency_penalty(0.1);
  s->set_seed(seed);
  return request;
}

// Checks that the cluster's completion equals local generation's.
void ExpectSameCompletion(const Completion& remote, const Completion& local) {
  ASSERT_TRUE(local.status.ok()) << local.status;
  ASSERT_TRUE(remote.status.ok()) << remote.status;
  EXPECT_THAT(remote.tokens, ElementsAreArray(local.tokens));
  EXPECT_EQ(remote.text, local.text);
  EXPECT_EQ(remote.finish, local.finish);
  EXPECT_EQ(remote.usage.prompt_tokens(), local.usage.prompt_tokens());
  EXPECT_EQ(remote.usage.completion_tokens(), local.usage.completion_tokens());
}

// A prompt whose greedy completion runs `tokens` tokens without stopping.
std::string LongGreedyPrompt(int tokens) {
  for (int i = 0; i < 64; ++i) {
    const std::string prompt = absl::StrCat("Once upon a time, ", i);
    if (environment->Local(Greedy(prompt, tokens)).finish ==
        v1::FINISH_REASON_LENGTH) {
      return prompt;
    }
  }
  ADD_FAILURE() << "no prompt runs " << tokens << " greedy tokens";
  return "";
}

class ClusterTest : public ::testing::Test {
 protected:
  void StartCluster(ServingClusterOptions options) {
    options.model_dir = environment->model_dir().string();
    absl::StatusOr<std::unique_ptr<ServingCluster>> cluster =
        ServingCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    stub_ = cluster_->RouterStub();
  }

  // Waits until decode worker i holds no sequence and every block is free.
  void ExpectDecodeWorkerIdle(int i) {
    std::unique_ptr<v1::DecodeWorker::Stub> stub = cluster_->DecodeStub(i);
    absl::StatusOr<v1::WorkerLoad> load;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    do {
      load = DecodeLoad(*stub);
      ASSERT_TRUE(load.ok()) << load.status();
      if (load->running_sequences() == 0 && load->waiting_sequences() == 0 &&
          load->free_blocks() == load->total_blocks()) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    } while (absl::Now() < deadline);
    ADD_FAILURE() << "decode worker " << i
                  << " still busy: " << load->ShortDebugString();
  }

  std::unique_ptr<ServingCluster> cluster_;
  std::unique_ptr<v1::Router::Stub> stub_;
};

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
  const std::string prompt = "Stop here: ";
  const Completion plain = environment->Local(Greedy(prompt, 40));
  // A stop string from the middle of the text, of whole ASCII characters
  // (a random model's text is any UTF-8).
  size_t at = 6;
  while (at + 2 <= plain.text.size() &&
         (plain.text[at] & 0x80 || plain.text[at + 1] & 0x80)) {
    ++at;
  }
  ASSERT_LE(at + 2, plain.text.size()) << "no ASCII pair in the output";
  v1::GenerateRequest request = Greedy(prompt, 40);
  request.add_stop(plain.text.substr(at, 2));
  request.set_logprobs(3);
  const Completion local = environment->Local(request);
  const Completion remote = Remote(*stub_, request);
  ExpectSameCompletion(remote, local);
  EXPECT_EQ(remote.finish, v1::FINISH_REASON_STOP);
  ASSERT_EQ(remote.logprobs.size(), local.logprobs.size());
  for (size_t i = 0; i < local.logprobs.size(); ++i) {
    EXPECT_EQ(remote.logprobs[i].chosen().token_id(),
              local.logprobs[i].chosen().token_id());
    EXPECT_NEAR(remote.logprobs[i].chosen().logprob(),
                local.logprobs[i].chosen().logprob(), 1e-4);
    ASSERT_EQ(remote.logprobs[i].top_size(), 3);
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(remote.logprobs[i].top(k).token_id(),
                local.logprobs[i].top(k).token_id());
    }
  }
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

TEST_F(ClusterTest, BadRequestsGetTheirCodeAndLeaveNothingAllocated) {
  StartCluster({});
  struct Case {
    v1::GenerateRequest request;
    absl::StatusCode code;
    std::string names;
  };
  std::vector<Case> cases;
  const auto bad = [&](absl::StatusCode code, std::string names,
                       auto&& change) {
    v1::GenerateRequest request = Greedy("ok", 8);
    change(request);
    cases.push_back({request, code, names});
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  bad(kInvalid, "prompt", [](auto& r) { r.clear_prompt(); });
  bad(kInvalid, "prompt.tokens", [](auto& r) { r.mutable_tokens(); });
  bad(kInvalid, "prompt.tokens[0]",
      [](auto& r) { r.mutable_tokens()->add_ids(9999); });
  bad(kInvalid, "prompt has",
      [](auto& r) { r.set_text(std::string(kContext, 'x')); });
  bad(kInvalid, "max_tokens", [](auto& r) { r.set_max_tokens(kContext); });
  bad(kInvalid, "max_tokens", [](auto& r) { r.set_max_tokens(-5); });
  bad(kInvalid, "temperature",
      [](auto& r) { r.mutable_sampling()->set_temperature(-1); });
  bad(kInvalid, "top_p", [](auto& r) { r.mutable_sampling()->set_top_p(0); });
  bad(kInvalid, "min_p", [](auto& r) { r.mutable_sampling()->set_min_p(3); });
  bad(kInvalid, "presence_penalty",
      [](auto& r) { r.mutable_sampling()->set_presence_penalty(9); });
  bad(kInvalid, "logprobs", [](auto& r) { r.set_logprobs(21); });
  bad(kInvalid, "stop[0]", [](auto& r) { r.add_stop(""); });
  bad(kInvalid, "stop_token_ids[0]", [](auto& r) { r.add_stop_token_ids(-1); });
  bad(absl::StatusCode::kNotFound, "gpt", [](auto& r) { r.set_model("gpt"); });
  for (const Case& c : cases) {
    const Completion out = Remote(*stub_, c.request);
    EXPECT_EQ(out.status.code(), c.code) << out.status;
    EXPECT_THAT(out.status.message(), HasSubstr(c.names));
    EXPECT_EQ(out.replies, 0);
  }
  ExpectDecodeWorkerIdle(0);
  std::unique_ptr<v1::PrefillWorker::Stub> prefill = cluster_->PrefillStub(0);
  absl::StatusOr<v1::WorkerLoad> load = PrefillLoad(*prefill);
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->queued_requests(), 0);
  EXPECT_EQ(load->running_sequences(), 0);
}

TEST_F(ClusterTest, CancellingAStreamFreesItsBlocksOnTheDecodeWorker) {
  StartCluster({});
  const int kTokens = kContext - 64;
  const v1::GenerateRequest request =
      Greedy(LongGreedyPrompt(kTokens), kTokens);
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse reply;
  ASSERT_TRUE(reader->Read(&reply));
  // The decode worker publishes its load once per step: wait to see the
  // sequence hold blocks (it has hundreds of tokens left to generate).
  std::unique_ptr<v1::DecodeWorker::Stub> decode = cluster_->DecodeStub(0);
  absl::StatusOr<v1::WorkerLoad> busy;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    busy = DecodeLoad(*decode);
    ASSERT_TRUE(busy.ok()) << busy.status();
  } while ((busy->running_sequences() == 0 ||
            busy->free_blocks() == busy->total_blocks()) &&
           absl::Now() < deadline);
  EXPECT_EQ(busy->running_sequences(), 1);
  EXPECT_LT(busy->free_blocks(), busy->total_blocks());
  context.TryCancel();
  while (reader->Read(&reply)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ExpectDecodeWorkerIdle(0);
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
  absl::StatusOr<HealthState> health;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    health = CheckHealth(cluster_->router_address(), "tandem.v1.Router",
                         absl::Seconds(5));
    ASSERT_TRUE(health.ok()) << health.status();
  } while (*health != HealthState::kServing && absl::Now() < deadline);
  EXPECT_EQ(*health, HealthState::kServing);
}

}  // namespace
}  // namespace tandem::testing
