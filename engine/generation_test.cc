#include "engine/generation.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/byte_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

std::filesystem::path ReferenceDir(const std::string& name) {
  const char* root = std::getenv("TANDEM_SOURCE_DIR");
  return std::filesystem::path(root == nullptr ? "." : root) / "engine" /
         "testdata" / "reference" / name;
}

// A reference checkpoint (vocab 96, BOS 1, EOS 2, context 64) with a byte
// tokenizer: every id the model can produce is one ASCII byte.
class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = Model::Load(ReferenceDir("gqa"));
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(model).value();
    auto tokenizer = ByteTokenizer::Create(256, 257);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(tokenizer).value();
  }

  absl::StatusOr<GenerationResult> Run(
      const GenerationRequest& request,
      std::vector<GeneratedToken>* streamed = nullptr) {
    return Generate(*model_, *tokenizer_, request,
                    [streamed](const GeneratedToken& token) {
                      if (streamed != nullptr) streamed->push_back(token);
                      return absl::OkStatus();
                    });
  }

  static GenerationRequest Greedy(int max_tokens) {
    GenerationRequest request;
    request.prompt_ids = {1, 17, 42, 5, 63};
    request.sampling.temperature = 0.0f;
    request.max_tokens = max_tokens;
    request.ignore_eos = true;
    return request;
  }

  // Greedy decoding without a running cache: every step prefills the whole
  // sequence from scratch and takes the argmax (lowest id on ties) of the
  // last position's logits.
  std::vector<int32_t> GreedyByRepeatedPrefill(std::vector<int32_t> tokens,
                                               int steps) {
    const int vocab = model_->config().vocab_size;
    const size_t prompt = tokens.size();
    for (int i = 0; i < steps; ++i) {
      const KvLayout layout = model_->kv_layout(16);
      auto cache =
          PagedKvCache::Create(layout, PagedKvCache::BlockStrideBytes(layout) *
                                           (tokens.size() / 16 + 1));
      EXPECT_TRUE(cache.ok());
      EXPECT_TRUE((*cache)->AddSequence(0).ok());
      EXPECT_TRUE((*cache)->Append(0, tokens.size()).ok());
      std::vector<float> logits;
      const Model::Chunk chunk{0, tokens};
      EXPECT_TRUE(model_
                      ->Prefill({&chunk, 1}, **cache,
                                Model::Logits::kLastPerSequence, &logits)
                      .ok());
      EXPECT_THAT(logits, SizeIs(vocab));
      tokens.push_back(std::max_element(logits.begin(), logits.end()) -
                       logits.begin());
    }
    return std::vector<int32_t>(tokens.begin() + prompt, tokens.end());
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(GenerationTest, GreedyMatchesArgmaxOfRepeatedFullPrefills) {
  const GenerationRequest request = Greedy(24);
  auto result = Run(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tokens, GreedyByRepeatedPrefill(request.prompt_ids, 24));
  EXPECT_EQ(result->finish_reason, FinishReason::kLength);
  EXPECT_EQ(result->prompt_tokens, 5);
  EXPECT_EQ(result->completion_tokens, 24);
}

TEST_F(GenerationTest, SeededSamplingIsReproducible) {
  GenerationRequest request = Greedy(30);
  request.sampling.temperature = 1.0f;
  request.sampling.seed = 1234;
  auto first = Run(request);
  auto second = Run(request);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->tokens, second->tokens);
  EXPECT_EQ(first->text, second->text);
  request.sampling.seed = 99;
  auto other = Run(request);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(first->tokens, other->tokens);
}

TEST_F(GenerationTest, StreamedPiecesConcatenateToTheText) {
  GenerationRequest request = Greedy(20);
  std::vector<GeneratedToken> streamed;
  auto result = Run(request, &streamed);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_THAT(streamed, SizeIs(20));
  std::string text;
  for (const GeneratedToken& token : streamed) text += token.text;
  EXPECT_EQ(text, result->text);
  auto decoded = tokenizer_->Decode(result->tokens);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(text, *decoded);
  EXPECT_EQ(streamed.back().finish, FinishReason::kLength);
  EXPECT_EQ(streamed.front().finish, FinishReason::kNone);
}

TEST_F(GenerationTest, StopStringEndsTheTextBeforeIt) {
  auto free_run = Run(Greedy(20));
  ASSERT_TRUE(free_run.ok()) << free_run.status();
  const std::string stop = free_run->text.substr(6, 2);
  const std::string expected =
      free_run->text.substr(0, free_run->text.find(stop));
  GenerationRequest request = Greedy(20);
  request.stop = {stop};
  auto result = Run(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->text, expected);
  EXPECT_EQ(result->finish_reason, FinishReason::kStop);
  EXPECT_LT(result->completion_tokens, 20);
}

TEST_F(GenerationTest, StopTokenIdEndsGeneration) {
  auto free_run = Run(Greedy(20));
  ASSERT_TRUE(free_run.ok()) << free_run.status();
  const int32_t stop_id = free_run->tokens[5];
  GenerationRequest request = Greedy(20);
  request.stop_token_ids = {stop_id};
  auto result = Run(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->finish_reason, FinishReason::kStop);
  EXPECT_EQ(result->tokens.back(), stop_id);
  EXPECT_EQ(std::count(result->tokens.begin(), result->tokens.end(), stop_id),
            1);
}

TEST_F(GenerationTest, EmptyPromptStartsFromBos) {
  GenerationRequest request = Greedy(4);
  request.prompt_ids.clear();
  auto result = Run(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->prompt_tokens, 1);
  EXPECT_EQ(result->tokens, GreedyByRepeatedPrefill({1}, 4));
}

TEST_F(GenerationTest, LogprobsAreStreamedWhenAsked) {
  GenerationRequest request = Greedy(5);
  request.sampling.num_logprobs = 3;
  std::vector<GeneratedToken> streamed;
  ASSERT_TRUE(Run(request, &streamed).ok());
  ASSERT_THAT(streamed, SizeIs(5));
  for (const GeneratedToken& token : streamed) {
    ASSERT_THAT(token.top_logprobs, SizeIs(3));
    // Greedy picks the most probable token.
    EXPECT_EQ(token.top_logprobs[0].token, token.token);
    EXPECT_FLOAT_EQ(token.top_logprobs[0].logprob, token.logprob);
    EXPECT_LT(token.logprob, 0.0f);
  }
}

TEST_F(GenerationTest, CallbackErrorStopsGeneration) {
  int calls = 0;
  auto result = Generate(
      *model_, *tokenizer_, Greedy(20), [&calls](const GeneratedToken&) {
        return ++calls == 3 ? absl::CancelledError("gone") : absl::OkStatus();
      });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 3);
}

TEST_F(GenerationTest, RejectsInvalidSamplingParams) {
  GenerationRequest request = Greedy(4);
  request.sampling.top_p = 1.5f;
  auto result = Run(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("top_p"));
}

TEST_F(GenerationTest, RejectsPromptLongerThanTheContext) {
  GenerationRequest request = Greedy(1);
  request.prompt_ids.assign(64, 7);  // the context is 64
  auto result = Run(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("prompt has 64 tokens"));
}

TEST_F(GenerationTest, RejectsMaxTokensBeyondTheContext) {
  GenerationRequest request = Greedy(60);  // 5 + 60 > 64
  auto result = Run(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("max_tokens=60"));
  request.max_tokens = 59;  // exactly fills the context
  EXPECT_TRUE(Run(request).ok());
}

TEST_F(GenerationTest, RejectsNonPositiveMaxTokens) {
  auto result = Run(Greedy(0));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("max_tokens"));
}

TEST_F(GenerationTest, RejectsPromptIdOutsideTheVocabulary) {
  GenerationRequest request = Greedy(4);
  request.prompt_ids[2] = 96;
  auto result = Run(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("prompt_ids[2]=96"));
}

TEST_F(GenerationTest, RejectsEmptyStopString) {
  GenerationRequest request = Greedy(4);
  request.stop = {""};
  auto result = Run(request);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("stop[0]"));
}

TEST_F(GenerationTest, ValidateGenerationRequestChecksWithoutRunning) {
  const ModelConfig& config = model_->config();
  EXPECT_TRUE(ValidateGenerationRequest(config, *tokenizer_, Greedy(59)).ok());
  GenerationRequest request = Greedy(60);
  absl::Status status = ValidateGenerationRequest(config, *tokenizer_, request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("max_tokens=60"));
  request = Greedy(4);
  request.sampling.temperature = -1.0f;
  status = ValidateGenerationRequest(config, *tokenizer_, request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("temperature"));
  request = Greedy(4);
  request.stop = {"ok", ""};
  status = ValidateGenerationRequest(config, *tokenizer_, request);
  EXPECT_THAT(status.message(), HasSubstr("stop[1]"));
}

}  // namespace
}  // namespace tandem
