#include "decode_node/decode_input.h"

#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

// A well-formed request: 5 prompt tokens in blocks of 4 (one full block and
// a partial one), seeded sampling.
v1::DecodeRequest GoodRequest() {
  v1::DecodeRequest request;
  request.set_request_id("r1");
  for (int id : {256, 72, 105, 33, 10}) request.add_prompt_token_ids(id);
  request.set_first_token(65);
  request.set_max_tokens(8);
  request.set_logprobs(3);
  request.add_stop("\n\n");
  request.add_stop_token_ids(10);
  v1::SamplingParams* sampling = request.mutable_sampling();
  sampling->set_temperature(0.7f);
  sampling->set_top_k(20);
  sampling->set_seed(99);
  v1::Handoff* handoff = request.mutable_handoff();
  handoff->mutable_model()->set_word0(1);
  handoff->mutable_model()->set_word1(2);
  handoff->set_block_size(4);
  handoff->set_prompt_tokens(5);
  handoff->add_full_blocks()->set_hi(3);
  handoff->mutable_partial_block()->set_lo(4);
  handoff->set_next_draw(1);
  return request;
}

TEST(DecodeInputTest, ConvertsEveryField) {
  auto input = DecodeInputFromProto(GoodRequest());
  ASSERT_TRUE(input.ok()) << input.status();
  EXPECT_EQ(input->request_id, "r1");
  EXPECT_EQ(input->prompt, (std::vector<int32_t>{256, 72, 105, 33, 10}));
  EXPECT_EQ(input->first_token, 65);
  EXPECT_EQ(input->max_tokens, 8);
  EXPECT_TRUE(input->logprobs);
  EXPECT_EQ(input->sampling.num_logprobs, 3);
  EXPECT_FLOAT_EQ(input->sampling.temperature, 0.7f);
  EXPECT_EQ(input->sampling.top_k, 20);
  EXPECT_FLOAT_EQ(input->sampling.top_p, 1.0f);
  EXPECT_EQ(input->sampling.seed, 99u);
  EXPECT_EQ(input->stop, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(input->stop_token_ids, std::vector<int32_t>{10});
  EXPECT_FALSE(input->ignore_eos);
  EXPECT_EQ(input->handoff.model, (Fingerprint{{1, 2}}));
  EXPECT_EQ(input->handoff.block_size, 4);
  ASSERT_EQ(input->handoff.full_blocks.size(), 1u);
  EXPECT_EQ(input->handoff.full_blocks[0], (BlockKey{3, 0}));
  ASSERT_TRUE(input->handoff.partial_block.has_value());
  EXPECT_EQ(*input->handoff.partial_block, (BlockKey{0, 4}));
  EXPECT_EQ(input->handoff.next_draw, 1u);
}

TEST(DecodeInputTest, IgnoreEosIsCarried) {
  v1::DecodeRequest request = GoodRequest();
  request.set_ignore_eos(true);
  auto input = DecodeInputFromProto(request);
  ASSERT_TRUE(input.ok()) << input.status();
  EXPECT_TRUE(input->ignore_eos);
}

TEST(DecodeInputTest, NegativeLogprobsMeansNone) {
  v1::DecodeRequest request = GoodRequest();
  request.set_logprobs(-1);
  auto input = DecodeInputFromProto(request);
  ASSERT_TRUE(input.ok()) << input.status();
  EXPECT_FALSE(input->logprobs);
  EXPECT_EQ(input->sampling.num_logprobs, 0);
}

TEST(DecodeInputTest, RejectsMalformedRequestsNamingTheField) {
  struct Case {
    std::string field;
    std::function<void(v1::DecodeRequest&)> breaks;
  };
  const std::vector<Case> cases = {
      {"prompt_token_ids is empty",
       [](v1::DecodeRequest& r) {
         r.clear_prompt_token_ids();
         r.mutable_handoff()->set_prompt_tokens(0);
       }},
      {"prompt_token_ids[2]",
       [](v1::DecodeRequest& r) { r.set_prompt_token_ids(2, -5); }},
      {"first_token", [](v1::DecodeRequest& r) { r.set_first_token(-1); }},
      {"max_tokens", [](v1::DecodeRequest& r) { r.set_max_tokens(0); }},
      {"logprobs", [](v1::DecodeRequest& r) { r.set_logprobs(21); }},
      {"stop[1]", [](v1::DecodeRequest& r) { r.add_stop(""); }},
      {"handoff is missing", [](v1::DecodeRequest& r) { r.clear_handoff(); }},
      {"handoff.model",
       [](v1::DecodeRequest& r) { r.mutable_handoff()->clear_model(); }},
      {"handoff.block_size",
       [](v1::DecodeRequest& r) { r.mutable_handoff()->set_block_size(0); }},
      {"handoff.prompt_tokens",
       [](v1::DecodeRequest& r) { r.mutable_handoff()->set_prompt_tokens(4); }},
      {"handoff.full_blocks",
       [](v1::DecodeRequest& r) { r.mutable_handoff()->add_full_blocks(); }},
      {"handoff.partial_block is missing",
       [](v1::DecodeRequest& r) {
         r.mutable_handoff()->clear_partial_block();
       }},
      {"handoff.partial_block is set",
       [](v1::DecodeRequest& r) {
         r.mutable_handoff()->set_block_size(5);
         r.mutable_handoff()->clear_full_blocks();
         r.mutable_handoff()->add_full_blocks();
       }},
      {"sampling.seed",
       [](v1::DecodeRequest& r) { r.mutable_sampling()->clear_seed(); }},
      {"top_p",
       [](v1::DecodeRequest& r) { r.mutable_sampling()->set_top_p(0); }},
  };
  for (const Case& c : cases) {
    v1::DecodeRequest request = GoodRequest();
    c.breaks(request);
    auto input = DecodeInputFromProto(request);
    EXPECT_EQ(input.status().code(), absl::StatusCode::kInvalidArgument)
        << c.field;
    EXPECT_THAT(input.status().message(), HasSubstr(c.field));
  }
}

v1::ColocatedRequest GoodColocatedRequest() {
  v1::ColocatedRequest request;
  request.set_request_id("c1");
  for (int id : {256, 72, 105, 33, 10}) request.add_prompt_token_ids(id);
  request.add_block_keys()->set_hi(3);
  request.set_cached_blocks_hint(1);
  request.set_max_tokens(8);
  request.set_logprobs(2);
  request.add_stop("\n\n");
  request.add_stop_token_ids(10);
  request.mutable_sampling()->set_temperature(0);
  request.mutable_sampling()->set_seed(5);
  return request;
}

TEST(DecodeInputTest, ColocatedRequestBecomesAnInputThatComputesItsPrompt) {
  auto input = ColocatedInputFromProto(GoodColocatedRequest(),
                                       Fingerprint{{7, 8}}, /*block_size=*/4);
  ASSERT_TRUE(input.ok()) << input.status();
  EXPECT_TRUE(input->compute_prompt);
  EXPECT_EQ(input->request_id, "c1");
  EXPECT_EQ(input->prompt, (std::vector<int32_t>{256, 72, 105, 33, 10}));
  EXPECT_EQ(input->max_tokens, 8);
  EXPECT_TRUE(input->logprobs);
  EXPECT_EQ(input->sampling.num_logprobs, 2);
  EXPECT_EQ(input->sampling.seed, 5u);
  EXPECT_EQ(input->stop, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(input->stop_token_ids, std::vector<int32_t>{10});
  EXPECT_EQ(input->handoff.model, (Fingerprint{{7, 8}}));
  EXPECT_EQ(input->handoff.block_size, 4);
  EXPECT_EQ(input->handoff.full_blocks,
            (std::vector<BlockKey>{BlockKey{3, 0}}));
  EXPECT_FALSE(input->handoff.partial_block.has_value());
  EXPECT_EQ(input->handoff.next_draw, 0u);
  EXPECT_FALSE(input->ignore_eos);
}

TEST(DecodeInputTest, ColocatedIgnoreEosIsCarried) {
  v1::ColocatedRequest request = GoodColocatedRequest();
  request.set_ignore_eos(true);
  auto input = ColocatedInputFromProto(request, Fingerprint{{7, 8}}, 4);
  ASSERT_TRUE(input.ok()) << input.status();
  EXPECT_TRUE(input->ignore_eos);
}

TEST(DecodeInputTest, RejectsMalformedColocatedRequestsNamingTheField) {
  struct Case {
    std::string field;
    std::function<void(v1::ColocatedRequest&)> change;
  };
  const std::vector<Case> cases = {
      {"prompt_token_ids is empty",
       [](auto& r) { r.clear_prompt_token_ids(); }},
      {"prompt_token_ids[1]", [](auto& r) { r.set_prompt_token_ids(1, -2); }},
      {"max_tokens", [](auto& r) { r.set_max_tokens(0); }},
      {"logprobs", [](auto& r) { r.set_logprobs(99); }},
      {"stop[0]", [](auto& r) { r.set_stop(0, ""); }},
      {"sampling.seed", [](auto& r) { r.mutable_sampling()->clear_seed(); }},
      {"cached_blocks_hint", [](auto& r) { r.set_cached_blocks_hint(-1); }},
  };
  for (const Case& c : cases) {
    v1::ColocatedRequest request = GoodColocatedRequest();
    c.change(request);
    auto input = ColocatedInputFromProto(request, Fingerprint{{7, 8}}, 4);
    EXPECT_EQ(input.status().code(), absl::StatusCode::kInvalidArgument)
        << c.field;
    EXPECT_THAT(input.status().message(), HasSubstr(c.field));
  }
}

}  // namespace
}  // namespace tandem
