#include "decode_node/decode_reply.h"

#include <memory>

#include "engine/byte_tokenizer.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

class DecodeReplyTest : public ::testing::Test {
 protected:
  DecodeReplyTest() : tokenizer_(ByteTokenizer::Create(256, 257).value()) {}

  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(DecodeReplyTest, CarriesTokenTextAndCount) {
  GeneratedToken token;
  token.token = 'h';
  token.text = "h";
  const v1::DecodeResponse reply =
      MakeDecodeReply(token, 3, ReplyOptions(), *tokenizer_);
  ASSERT_EQ(reply.token_ids_size(), 1);
  EXPECT_EQ(reply.token_ids(0), 'h');
  EXPECT_EQ(reply.text(), "h");
  EXPECT_EQ(reply.completion_tokens(), 4);
  EXPECT_EQ(reply.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  EXPECT_EQ(reply.logprobs_size(), 0);
}

TEST_F(DecodeReplyTest, LastTokenCarriesTheFinishReason) {
  GeneratedToken token;
  token.token = 257;
  token.finish = FinishReason::kStop;
  EXPECT_EQ(
      MakeDecodeReply(token, 0, ReplyOptions(), *tokenizer_).finish_reason(),
      v1::FINISH_REASON_STOP);
  token.finish = FinishReason::kLength;
  EXPECT_EQ(
      MakeDecodeReply(token, 0, ReplyOptions(), *tokenizer_).finish_reason(),
      v1::FINISH_REASON_LENGTH);
}

TEST_F(DecodeReplyTest, SampledTokenLogprobsCarryTheirText) {
  GeneratedToken token;
  token.token = 'a';
  token.logprob = -0.5f;
  token.top_logprobs = {{'a', -0.5f}, {0xE4, -1.5f}, {257, -2.0f}};
  ReplyOptions options;
  options.logprobs = true;
  const v1::DecodeResponse reply =
      MakeDecodeReply(token, 1, options, *tokenizer_);
  ASSERT_EQ(reply.logprobs_size(), 1);
  const v1::Logprobs& logprobs = reply.logprobs(0);
  EXPECT_EQ(logprobs.chosen().token_id(), 'a');
  EXPECT_FLOAT_EQ(logprobs.chosen().logprob(), -0.5f);
  EXPECT_EQ(logprobs.chosen().text(), "a");
  ASSERT_EQ(logprobs.top_size(), 3);
  EXPECT_EQ(logprobs.top(1).token_id(), 0xE4);
  EXPECT_FLOAT_EQ(logprobs.top(1).logprob(), -1.5f);
  EXPECT_EQ(logprobs.top(1).text(), "\xEF\xBF\xBD");  // a lone lead byte
  EXPECT_EQ(logprobs.top(2).text(), "</s>");
}

TEST_F(DecodeReplyTest, FirstTokenTakesThePrefillsLogprobs) {
  GeneratedToken token;
  token.token = 'x';
  ReplyOptions options;
  options.logprobs = true;
  v1::Logprobs first;
  first.mutable_chosen()->set_token_id('x');
  first.mutable_chosen()->set_logprob(-0.25f);
  first.add_top()->set_token_id('y');
  options.first_logprobs = first;
  const v1::DecodeResponse reply =
      MakeDecodeReply(token, 0, options, *tokenizer_);
  ASSERT_EQ(reply.logprobs_size(), 1);
  EXPECT_FLOAT_EQ(reply.logprobs(0).chosen().logprob(), -0.25f);
  EXPECT_EQ(reply.logprobs(0).chosen().text(), "x");
  EXPECT_EQ(reply.logprobs(0).top(0).text(), "y");
}

TEST_F(DecodeReplyTest, MergedRepliesReadAsOne) {
  GeneratedToken a;
  a.token = 'a';
  a.text = "a";
  GeneratedToken b;
  b.token = 'b';
  b.text = "b";
  b.finish = FinishReason::kLength;
  ReplyOptions options;
  options.logprobs = true;
  v1::DecodeResponse merged = MakeDecodeReply(a, 1, options, *tokenizer_);
  MergeDecodeReply(MakeDecodeReply(b, 2, options, *tokenizer_), &merged);
  ASSERT_EQ(merged.token_ids_size(), 2);
  EXPECT_EQ(merged.token_ids(1), 'b');
  EXPECT_EQ(merged.text(), "ab");
  EXPECT_EQ(merged.logprobs_size(), 2);
  EXPECT_EQ(merged.completion_tokens(), 3);
  EXPECT_EQ(merged.finish_reason(), v1::FINISH_REASON_LENGTH);
}

}  // namespace
}  // namespace tandem
