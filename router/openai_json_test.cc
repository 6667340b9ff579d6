#include "router/openai_json.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// The param an InvalidArgument from parsing `body` names.
std::string RejectedParam(const std::string& body) {
  absl::StatusOr<CompletionRequest> parsed = ParseCompletionRequest(body);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << body;
  return ParamOf(parsed.status().message());
}

TEST(OpenAiJsonTest, ParsesEveryField) {
  absl::StatusOr<CompletionRequest> parsed = ParseCompletionRequest(R"({
      "model":"m","prompt":"Hi","max_tokens":7,"temperature":0.5,
      "top_p":0.9,"top_k":40,"min_p":0.1,"presence_penalty":0.2,
      "frequency_penalty":0.3,"repetition_penalty":1.1,"seed":-1,
      "stop":["x","y"],"logprobs":3,"n":1,"best_of":1,"echo":false,
      "suffix":null,"stream":true,"stream_options":{"include_usage":true},
      "user":"u","unknown":{"a":1}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const v1::GenerateRequest& r = parsed->generate;
  EXPECT_EQ(r.model(), "m");
  EXPECT_EQ(r.text(), "Hi");
  EXPECT_EQ(r.max_tokens(), 7);
  EXPECT_FLOAT_EQ(r.sampling().temperature(), 0.5f);
  EXPECT_FLOAT_EQ(r.sampling().top_p(), 0.9f);
  EXPECT_EQ(r.sampling().top_k(), 40);
  EXPECT_FLOAT_EQ(r.sampling().min_p(), 0.1f);
  EXPECT_FLOAT_EQ(r.sampling().presence_penalty(), 0.2f);
  EXPECT_FLOAT_EQ(r.sampling().frequency_penalty(), 0.3f);
  EXPECT_FLOAT_EQ(r.sampling().repetition_penalty(), 1.1f);
  EXPECT_EQ(r.sampling().seed(), ~uint64_t{0});
  EXPECT_THAT(r.stop(), ::testing::ElementsAre("x", "y"));
  EXPECT_EQ(r.logprobs(), 3);
  EXPECT_TRUE(parsed->stream);
  EXPECT_TRUE(parsed->include_usage);
}

TEST(OpenAiJsonTest, DefaultsFollowOpenAi) {
  absl::StatusOr<CompletionRequest> parsed =
      ParseCompletionRequest(R"({"prompt":[1,2,3]})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->generate.max_tokens(), kOpenAiDefaultMaxTokens);
  EXPECT_EQ(parsed->generate.logprobs(), -1);
  EXPECT_FALSE(parsed->generate.sampling().has_temperature());
  EXPECT_FALSE(parsed->generate.sampling().has_seed());
  EXPECT_THAT(parsed->generate.tokens().ids(), ::testing::ElementsAre(1, 2, 3));
  EXPECT_FALSE(parsed->stream);
  // null max_tokens: all the room the context leaves.
  EXPECT_EQ(ParseCompletionRequest(R"({"prompt":"a","max_tokens":null})")
                ->generate.max_tokens(),
            0);
  EXPECT_EQ(ParseCompletionRequest(R"({"prompt":["a"]})")->generate.text(),
            "a");
  EXPECT_EQ(
      ParseCompletionRequest(R"({"prompt":[[5]]})")->generate.tokens().ids(0),
      5);
}

TEST(OpenAiJsonTest, RejectsMalformedBodiesNamingTheField) {
  EXPECT_EQ(RejectedParam("{"), "");
  EXPECT_EQ(RejectedParam("\"text\""), "");
  EXPECT_EQ(RejectedParam(R"({})"), "prompt");
  EXPECT_EQ(RejectedParam(R"({"prompt":[]})"), "prompt");
  EXPECT_EQ(RejectedParam(R"({"prompt":["a","b"]})"), "prompt");
  EXPECT_EQ(RejectedParam(R"({"prompt":[1,"b"]})"), "prompt");
  EXPECT_EQ(RejectedParam(R"({"prompt":[-1]})"), "prompt");
  EXPECT_EQ(RejectedParam(R"({"prompt":7})"), "prompt");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","max_tokens":"ten"})"),
            "max_tokens");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","max_tokens":2.5})"), "max_tokens");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","max_tokens":0})"), "max_tokens");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","temperature":"hot"})"),
            "temperature");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","top_k":1.5})"), "top_k");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","seed":"1"})"), "seed");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","stop":[1]})"), "stop");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","logprobs":21})"), "logprobs");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","logprobs":true})"), "logprobs");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","stream":"yes"})"), "stream");
  EXPECT_EQ(
      RejectedParam(R"({"prompt":"a","stream_options":{"include_usage":1}})"),
      "stream_options");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","model":3})"), "model");
}

TEST(OpenAiJsonTest, RejectsFeaturesThatWouldChangeTheReply) {
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","n":2})"), "n");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","best_of":3})"), "best_of");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","echo":true})"), "echo");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","suffix":"z"})"), "suffix");
  EXPECT_EQ(RejectedParam(R"({"prompt":"a","logit_bias":{"5":10}})"),
            "logit_bias");
  EXPECT_TRUE(
      ParseCompletionRequest(R"({"prompt":"a","logit_bias":{},"suffix":""})")
          .ok());
}

TEST(OpenAiJsonTest, ParamOfReadsTheRoutersMessages) {
  EXPECT_EQ(ParamOf("sampling parameter temperature must be in [0, inf)"),
            "temperature");
  EXPECT_EQ(ParamOf("sampling parameter num_logprobs must be"), "logprobs");
  EXPECT_EQ(ParamOf("prompt.text: invalid UTF-8"), "prompt");
  EXPECT_EQ(ParamOf("prompt.tokens[3]=999 is outside"), "prompt");
  EXPECT_EQ(ParamOf("max_tokens=500 does not fit"), "max_tokens");
  EXPECT_EQ(ParamOf("logprobs=30 is outside [0, 20]"), "logprobs");
  EXPECT_EQ(ParamOf("stop[0] is empty"), "stop");
  EXPECT_EQ(ParamOf("request_id has 200 bytes"), "");
  EXPECT_EQ(ParamOf("no prefill worker is available"), "");
}

TEST(OpenAiJsonTest, ErrorsMapToHttpAndOpenAiCodes) {
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInternal), 500);
  const json bad = ErrorJson(
      absl::InvalidArgumentError("sampling parameter top_p must be in (0, 1]"));
  EXPECT_EQ(bad["error"]["type"], "invalid_request_error");
  EXPECT_EQ(bad["error"]["param"], "top_p");
  EXPECT_TRUE(bad["error"]["code"].is_null());
  const json missing = ErrorJson(absl::NotFoundError("model 'x' is not"));
  EXPECT_EQ(missing["error"]["code"], "model_not_found");
  EXPECT_EQ(missing["error"]["param"], "model");
  const json key = ErrorJson(absl::UnauthenticatedError("no key"));
  EXPECT_EQ(key["error"]["type"], "authentication_error");
  EXPECT_EQ(key["error"]["code"], "invalid_api_key");
  EXPECT_TRUE(key["error"]["param"].is_null());
}

v1::GenerateResponse Reply(const std::string& text, float logprob) {
  v1::GenerateResponse reply;
  reply.set_text(text);
  v1::Logprobs* logprobs = reply.add_logprobs();
  logprobs->mutable_chosen()->set_text(text);
  logprobs->mutable_chosen()->set_logprob(logprob);
  v1::TokenLogprob* top = logprobs->add_top();
  top->set_text(text);
  top->set_logprob(logprob);
  return reply;
}

TEST(OpenAiJsonTest, BuilderCountsOffsetsInCharactersAndShowsPartialBytes) {
  CompletionBuilder builder("cmpl-1", 100, "m", /*logprobs=*/true);
  builder.Add(Reply("\xc3\xa9t", -1));  // "ét": two characters
  builder.Add(Reply("\xe2\x82", -2));   // the start of a character
  v1::GenerateResponse last = Reply("\xac", -3);
  last.set_finish_reason(v1::FINISH_REASON_STOP);
  last.mutable_usage()->set_prompt_tokens(4);
  last.mutable_usage()->set_completion_tokens(3);
  last.mutable_usage()->set_cached_tokens(2);
  builder.Add(last);
  const json out = builder.Completion();
  EXPECT_EQ(out["id"], "cmpl-1");
  EXPECT_EQ(out["created"], 100);
  const json& choice = out["choices"][0];
  EXPECT_EQ(choice["text"], "\xc3\xa9t\xe2\x82\xac");
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_EQ(choice["logprobs"]["text_offset"], json({0, 2, 3}));
  EXPECT_EQ(choice["logprobs"]["tokens"][1], "bytes:\\xe2\\x82");
  EXPECT_EQ(out["usage"]["total_tokens"], 7);
  EXPECT_EQ(out["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
  EXPECT_THAT(DumpJson(out), HasSubstr("\"text\":\"\xc3\xa9t\xe2\x82\xac\""));
}

TEST(OpenAiJsonTest, OnlyTheLastChunkHasFinishReasonAndUsage) {
  CompletionBuilder builder("cmpl-2", 1, "m", /*logprobs=*/false);
  const json first = builder.Chunk(Reply("a", -1));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(first["choices"][0]["logprobs"].is_null());
  EXPECT_FALSE(first.contains("usage"));
  v1::GenerateResponse end = Reply("b", -1);
  end.set_finish_reason(v1::FINISH_REASON_LENGTH);
  end.mutable_usage()->set_completion_tokens(2);
  const json last = builder.Chunk(end);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(last["usage"]["completion_tokens"], 2);
  const json usage = builder.UsageChunk();
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], last["usage"]);
}

}  // namespace
}  // namespace tandem
