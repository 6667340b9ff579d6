#include "router/request_validation.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_model.h"

namespace tandem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int kContext = 64;

ServedModel TestModel() {
  ServedModel model;
  model.id = "tiny";
  model.config.vocab_size = 258;
  model.config.max_position_embeddings = kContext;
  model.config.bos_token_id = testing::kTestBos;
  model.config.eos_token_ids = {testing::kTestEos};
  TokenizerOptions options;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  options.add_bos_token = true;
  model.tokenizer =
      *LoadTokenizerFromJson(testing::ByteTokenizerJson(), options);
  return model;
}

class RequestValidationTest : public ::testing::Test {
 protected:
  absl::StatusOr<ValidatedRequest> Validate(const v1::GenerateRequest& r) {
    return ValidateGenerateRequest(model_, r, [this] { return ++random_; });
  }

  // The error for `request`, which must be InvalidArgument.
  std::string InvalidArgument(const v1::GenerateRequest& request) {
    absl::StatusOr<ValidatedRequest> result = Validate(request);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << result.status();
    return std::string(result.status().message());
  }

  static v1::GenerateRequest Text(const std::string& text) {
    v1::GenerateRequest request;
    request.set_text(text);
    return request;
  }

  ServedModel model_ = TestModel();
  uint64_t random_ = 1000;
};

TEST_F(RequestValidationTest, TextIsTokenizedWithBos) {
  absl::StatusOr<ValidatedRequest> request = Validate(Text("Hi"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(request->prompt_ids, ElementsAre(testing::kTestBos, 'H', 'i'));
}

TEST_F(RequestValidationTest, EmptyTextIsBosAlone) {
  absl::StatusOr<ValidatedRequest> request = Validate(Text(""));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(request->prompt_ids, ElementsAre(testing::kTestBos));
}

TEST_F(RequestValidationTest, TokensAreUsedAsGiven) {
  v1::GenerateRequest r;
  r.mutable_tokens()->add_ids(5);
  r.mutable_tokens()->add_ids(7);
  absl::StatusOr<ValidatedRequest> request = Validate(r);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(request->prompt_ids, ElementsAre(5, 7));
}

TEST_F(RequestValidationTest, IgnoreEosIsCarriedAndOffByDefault) {
  v1::GenerateRequest r = Text("a");
  absl::StatusOr<ValidatedRequest> plain = Validate(r);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->ignore_eos);
  r.set_ignore_eos(true);
  absl::StatusOr<ValidatedRequest> ignoring = Validate(r);
  ASSERT_TRUE(ignoring.ok()) << ignoring.status();
  EXPECT_TRUE(ignoring->ignore_eos);
}

TEST_F(RequestValidationTest, DefaultsFillEverySamplingField) {
  v1::GenerateRequest r = Text("a");
  r.set_request_id("r");  // so the seed is the first random draw
  absl::StatusOr<ValidatedRequest> request = Validate(r);
  ASSERT_TRUE(request.ok());
  const v1::SamplingParams& s = request->sampling_proto;
  EXPECT_TRUE(s.has_temperature() && s.has_top_p() && s.has_top_k() &&
              s.has_min_p() && s.has_repetition_penalty() &&
              s.has_presence_penalty() && s.has_frequency_penalty() &&
              s.has_seed());
  EXPECT_EQ(s.temperature(), 1.0f);
  EXPECT_EQ(s.top_k(), -1);
  EXPECT_FALSE(request->seed_was_set);
  EXPECT_EQ(s.seed(), 1001u >> 1);  // halved to fit an int64
  EXPECT_LE(s.seed(), uint64_t{std::numeric_limits<int64_t>::max()});
}

TEST_F(RequestValidationTest, ClientSeedAndParametersAreKept) {
  v1::GenerateRequest r = Text("a");
  r.mutable_sampling()->set_seed(42);
  r.mutable_sampling()->set_temperature(0);
  r.mutable_sampling()->set_top_k(5);
  absl::StatusOr<ValidatedRequest> request = Validate(r);
  ASSERT_TRUE(request.ok());
  EXPECT_TRUE(request->seed_was_set);
  EXPECT_EQ(request->sampling_proto.seed(), 42u);
  EXPECT_EQ(request->sampling.temperature, 0.0f);
  EXPECT_EQ(request->sampling_proto.top_k(), 5);
}

TEST_F(RequestValidationTest, RequestIdIsMadeWhenEmptyAndKeptOtherwise) {
  absl::StatusOr<ValidatedRequest> made = Validate(Text("a"));
  ASSERT_TRUE(made.ok());
  EXPECT_THAT(made->request_id, StartsWith("req-"));
  v1::GenerateRequest r = Text("a");
  r.set_request_id("mine");
  EXPECT_EQ(Validate(r)->request_id, "mine");
}

TEST_F(RequestValidationTest, MaxTokensZeroMeansTheRestOfTheContext) {
  absl::StatusOr<ValidatedRequest> request = Validate(Text("abc"));
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->max_tokens, kContext - 4);
}

TEST_F(RequestValidationTest, MaxTokensThatFitsIsKept) {
  v1::GenerateRequest r = Text("abc");
  r.set_max_tokens(kContext - 4);
  EXPECT_EQ(Validate(r)->max_tokens, kContext - 4);
}

TEST_F(RequestValidationTest, UnknownModelIsNotFound) {
  v1::GenerateRequest r = Text("a");
  r.set_model("llama-70b");
  EXPECT_EQ(Validate(r).status().code(), absl::StatusCode::kNotFound);
  r.set_model("tiny");
  EXPECT_TRUE(Validate(r).ok());
}

TEST_F(RequestValidationTest, MissingPromptIsInvalid) {
  EXPECT_THAT(InvalidArgument(v1::GenerateRequest()), HasSubstr("prompt"));
}

TEST_F(RequestValidationTest, EmptyTokenPromptIsInvalid) {
  v1::GenerateRequest r;
  r.mutable_tokens();
  EXPECT_THAT(InvalidArgument(r), HasSubstr("prompt.tokens is empty"));
}

TEST_F(RequestValidationTest, TokenOutsideVocabularyIsInvalid) {
  v1::GenerateRequest r;
  r.mutable_tokens()->add_ids(1);
  r.mutable_tokens()->add_ids(258);
  EXPECT_THAT(InvalidArgument(r), HasSubstr("prompt.tokens[1]=258"));
  r.mutable_tokens()->set_ids(1, -1);
  EXPECT_THAT(InvalidArgument(r), HasSubstr("prompt.tokens[1]=-1"));
}

TEST_F(RequestValidationTest, PromptFillingTheContextIsInvalid) {
  EXPECT_THAT(InvalidArgument(Text(std::string(kContext - 1, 'x'))),
              HasSubstr("prompt has 64 tokens"));
}

TEST_F(RequestValidationTest, MaxTokensBeyondTheContextIsInvalid) {
  v1::GenerateRequest r = Text("abc");
  r.set_max_tokens(kContext - 3);
  EXPECT_THAT(InvalidArgument(r), HasSubstr("max_tokens=61"));
  r.set_max_tokens(-1);
  EXPECT_THAT(InvalidArgument(r), HasSubstr("max_tokens=-1"));
}

TEST_F(RequestValidationTest, OutOfRangeSamplingValuesAreInvalid) {
  struct Case {
    const char* field;
    void (*set)(v1::SamplingParams*);
  };
  const Case cases[] = {
      {"temperature", [](v1::SamplingParams* s) { s->set_temperature(-1); }},
      {"temperature", [](v1::SamplingParams* s) { s->set_temperature(NAN); }},
      {"top_p", [](v1::SamplingParams* s) { s->set_top_p(0); }},
      {"top_p", [](v1::SamplingParams* s) { s->set_top_p(1.5); }},
      {"top_k", [](v1::SamplingParams* s) { s->set_top_k(-2); }},
      {"min_p", [](v1::SamplingParams* s) { s->set_min_p(2); }},
      {"repetition_penalty",
       [](v1::SamplingParams* s) { s->set_repetition_penalty(0); }},
      {"presence_penalty",
       [](v1::SamplingParams* s) { s->set_presence_penalty(3); }},
      {"frequency_penalty",
       [](v1::SamplingParams* s) { s->set_frequency_penalty(-3); }},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest r = Text("a");
    c.set(r.mutable_sampling());
    EXPECT_THAT(InvalidArgument(r), HasSubstr(c.field));
  }
}

TEST_F(RequestValidationTest, LogprobsAboveTwentyAreInvalid) {
  v1::GenerateRequest r = Text("a");
  r.set_logprobs(21);
  EXPECT_THAT(InvalidArgument(r), HasSubstr("logprobs=21"));
  r.set_logprobs(20);
  EXPECT_EQ(Validate(r)->sampling.num_logprobs, 20);
  r.set_logprobs(-1);
  EXPECT_EQ(Validate(r)->sampling.num_logprobs, 0);
  EXPECT_EQ(Validate(r)->logprobs, -1);
}

TEST_F(RequestValidationTest, EmptyStopStringIsInvalid) {
  v1::GenerateRequest r = Text("a");
  r.add_stop("ok");
  r.add_stop("");
  EXPECT_THAT(InvalidArgument(r), HasSubstr("stop[1] is empty"));
}

TEST_F(RequestValidationTest, StopTokenOutsideVocabularyIsInvalid) {
  v1::GenerateRequest r = Text("a");
  r.add_stop_token_ids(999);
  EXPECT_THAT(InvalidArgument(r), HasSubstr("stop_token_ids[0]=999"));
}

TEST_F(RequestValidationTest, OverlongOrControlRequestIdIsInvalid) {
  v1::GenerateRequest r = Text("a");
  r.set_request_id(std::string(kMaxRequestIdBytes + 1, 'r'));
  EXPECT_THAT(InvalidArgument(r), HasSubstr("request_id"));
  r.set_request_id("a\nb");
  EXPECT_THAT(InvalidArgument(r), HasSubstr("request_id"));
}

TEST(ModelNameMatchesTest, AcceptsIdEmptyOrPathEndingInId) {
  EXPECT_TRUE(ModelNameMatches("fortune", "fortune"));
  EXPECT_TRUE(ModelNameMatches("fortune", ""));
  EXPECT_TRUE(ModelNameMatches("fortune", "models/fortune/"));
  EXPECT_FALSE(ModelNameMatches("fortune", "smollm"));
  EXPECT_FALSE(ModelNameMatches("fortune", "fortune/draft"));
}

TEST(LoadServedModelTest, ReadsConfigAndTokenizerAndNamesByDirectory) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      absl::StrCat("served_model_", getpid()) / "tiny-model";
  std::filesystem::remove_all(dir.parent_path());
  std::filesystem::create_directories(dir.parent_path());
  ASSERT_TRUE(testing::WriteTestModel(dir).ok());
  absl::StatusOr<ServedModel> model = LoadServedModel(dir.string() + "/", "");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->id, "tiny-model");
  EXPECT_EQ(model->config.vocab_size, 258);
  EXPECT_EQ(model->tokenizer->bos_id(), testing::kTestBos);
  EXPECT_EQ(LoadServedModel(dir.string(), "named")->id, "named");
  std::filesystem::remove_all(dir.parent_path());
}

TEST(LoadServedModelTest, MissingDirectoryIsNotFound) {
  EXPECT_EQ(LoadServedModel("/nonexistent/model", "").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem
