#include "tests/cluster_test_util.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/generation.h"
#include "gmock/gmock.h"
#include "router/request_validation.h"
#include "router/router_client.h"
#include "tests/test_model.h"

namespace tandem::testing {

namespace fs = std::filesystem;
using ::testing::ElementsAreArray;

void ModelEnvironment::SetUp() {
  dir_ =
      fs::path(::testing::TempDir()) / absl::StrCat("cluster_test_", getpid());
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  TestModelOptions options;
  options.context = kClusterTestContext;
  ASSERT_TRUE(WriteTestModel(model_dir(), options).ok());
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Load(model_dir(), ModelOptions{.threads = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  model_ = *std::move(model);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(model_dir());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  tokenizer_ = *std::move(tokenizer);
}

void ModelEnvironment::TearDown() {
  model_.reset();
  fs::remove_all(dir_);
}

Completion ModelEnvironment::Local(const v1::GenerateRequest& request) {
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

ModelEnvironment* RegisterModelEnvironment() {
  static ModelEnvironment* const environment = static_cast<ModelEnvironment*>(
      ::testing::AddGlobalTestEnvironment(new ModelEnvironment()));
  return environment;
}

Completion Remote(v1::Router::StubInterface& stub,
                  const v1::GenerateRequest& request, absl::Duration timeout) {
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

void ExpectSameCompletion(const Completion& remote, const Completion& local) {
  ASSERT_TRUE(local.status.ok()) << local.status;
  ASSERT_TRUE(remote.status.ok()) << remote.status;
  EXPECT_THAT(remote.tokens, ElementsAreArray(local.tokens));
  EXPECT_EQ(remote.text, local.text);
  EXPECT_EQ(remote.finish, local.finish);
  EXPECT_EQ(remote.usage.prompt_tokens(), local.usage.prompt_tokens());
  EXPECT_EQ(remote.usage.completion_tokens(), local.usage.completion_tokens());
}

std::string LongGreedyPrompt(int tokens) {
  for (int i = 0; i < 64; ++i) {
    const std::string prompt = absl::StrCat("Once upon a time, ", i);
    if (RegisterModelEnvironment()->Local(Greedy(prompt, tokens)).finish ==
        v1::FINISH_REASON_LENGTH) {
      return prompt;
    }
  }
  ADD_FAILURE() << "no prompt runs " << tokens << " greedy tokens";
  return "";
}

void ClusterTest::StartCluster(ServingClusterOptions options) {
  options.model_dir = RegisterModelEnvironment()->model_dir().string();
  absl::StatusOr<std::unique_ptr<ServingCluster>> cluster =
      ServingCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  cluster_ = *std::move(cluster);
  stub_ = cluster_->RouterStub();
}

void ClusterTest::ExpectDecodeWorkerIdle(int i) {
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

void ClusterTest::ExpectRefused(const std::vector<RefusedRequest>& cases) {
  for (const RefusedRequest& c : cases) {
    v1::GenerateRequest request = Greedy("ok", 8);
    c.change(request);
    const Completion out = Remote(*stub_, request);
    EXPECT_EQ(out.status.code(), c.code) << out.status;
    EXPECT_THAT(out.status.message(), ::testing::HasSubstr(c.names));
    EXPECT_EQ(out.replies, 0);
  }
  ExpectDecodeWorkerIdle(0);
}

void ClusterTest::ExpectRouterServing() {
  absl::StatusOr<HealthState> health;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    health = CheckHealth(cluster_->router_address(), "tandem.v1.Router",
                         absl::Seconds(5));
    ASSERT_TRUE(health.ok()) << health.status();
  } while (*health != HealthState::kServing && absl::Now() < deadline);
  EXPECT_EQ(*health, HealthState::kServing);
}

void ClusterTest::ExpectStopStringsAndLogprobsMatchLocal() {
  ModelEnvironment* const environment = RegisterModelEnvironment();
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
    SCOPED_TRACE(absl::StrCat("token ", i));
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

void ClusterTest::ExpectCancelFreesDecodeWorkerBlocks() {
  const int tokens = kClusterTestContext - 64;
  const v1::GenerateRequest request = Greedy(LongGreedyPrompt(tokens), tokens);
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

}  // namespace tandem::testing
