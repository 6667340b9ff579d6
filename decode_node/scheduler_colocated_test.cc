// The scheduler's colocated sequences (DecodeInput::compute_prompt) on the
// tiny random byte-level model: prompts computed in chunks under the
// per-step token budget while other sequences keep decoding, first tokens
// sampled here, prefix reuse through the store, cancellation.
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "decode_node/local_handoff.h"
#include "decode_node/scheduler.h"
#include "decode_node/scheduler_test_util.h"
#include "engine/block_key.h"
#include "engine/byte_tokenizer.h"
#include "engine/generation.h"
#include "engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/random_model.h"

namespace tandem {
namespace {

using scheduler_testing::Greedy;
using scheduler_testing::MapBlockSource;
using scheduler_testing::Prompt;
using scheduler_testing::Recorder;
using scheduler_testing::RunUntilDone;
using scheduler_testing::Seeded;
using ::testing::HasSubstr;

constexpr int kBlockSize = 4;

class ColocatedSchedulerTest : public scheduler_testing::TinyModelTest {
 protected:
  // A scheduler driven by Step with `blocks` cache blocks, computing at
  // most `budget` prompt tokens per step.
  std::unique_ptr<Scheduler> MakeScheduler(int blocks, int budget,
                                           bool reuse_store = false) {
    SchedulerOptions options = StepOptions(blocks, kBlockSize);
    options.max_prefill_tokens_per_step = budget;
    options.reuse_store = reuse_store;
    return Create(options);
  }

  // A whole request for `prompt`, as ColocatedInputFromProto makes it.
  static DecodeInput Whole(const std::vector<int32_t>& prompt,
                           const SamplingParams& sampling, int max_tokens) {
    DecodeInput input;
    input.compute_prompt = true;
    input.prompt = prompt;
    input.sampling = sampling;
    input.sampling.num_logprobs = 2;
    input.logprobs = true;
    input.max_tokens = max_tokens;
    input.handoff.model = model_->fingerprint();
    input.handoff.block_size = kBlockSize;
    input.handoff.full_blocks =
        ComputeKeyChain(model_->fingerprint(), prompt, kBlockSize);
    return input;
  }

  static void ExpectSameStream(const std::vector<GeneratedToken>& got,
                               const std::vector<GeneratedToken>& want) {
    scheduler_testing::ExpectSameStream(got, want, /*first_logprobs=*/true);
  }
};

TEST_F(ColocatedSchedulerTest, GreedyRequestMatchesLocalGeneration) {
  auto scheduler = MakeScheduler(64, 512);
  const DecodeInput input = Whole(Prompt(10, 1), Greedy(), 16);
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  RunUntilDone(*scheduler, {recorder});
  EXPECT_TRUE(recorder->error().ok()) << recorder->error();
  ExpectSameStream(recorder->tokens(), Local(input));
  EXPECT_EQ(recorder->cached_tokens(), 0);
  EXPECT_EQ(scheduler->Load().free_blocks, 64);
}

TEST_F(ColocatedSchedulerTest, SeededChunkedRequestMatchesLocalGeneration) {
  auto scheduler = MakeScheduler(64, 5);
  const DecodeInput input = Whole(Prompt(23, 2), Seeded(1234), 24);
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  RunUntilDone(*scheduler, {recorder});
  ExpectSameStream(recorder->tokens(), Local(input));
}

TEST_F(ColocatedSchedulerTest, LongPromptIsChunkedWhileTheBatchKeepsDecoding) {
  auto scheduler = MakeScheduler(64, 8);
  const DecodeInput short_input = Whole(Prompt(6, 3), Seeded(7), 30);
  auto running = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(short_input, running).ok());
  scheduler->Step();  // prefills 6 tokens, streams token 0, decodes token 1
  ASSERT_EQ(running->tokens().size(), 2u);

  // 40 prompt tokens at 8 per step: five steps, each also a decode step.
  const DecodeInput long_input = Whole(Prompt(40, 4), Greedy(), 4);
  auto chunked = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(long_input, chunked).ok());
  EXPECT_EQ(scheduler->Load().queued_tokens, 40);
  for (int step = 1; step <= 5; ++step) {
    scheduler->Step();
    EXPECT_EQ(running->tokens().size(), 2u + step) << "step " << step;
    EXPECT_EQ(scheduler->Load().queued_tokens, 40 - 8 * step);
    // The first token comes with the last chunk, and that step's decode
    // step already adds the second.
    EXPECT_EQ(chunked->tokens().size(), step < 5 ? 0u : 2u) << "step " << step;
  }
  RunUntilDone(*scheduler, {running, chunked});
  ExpectSameStream(running->tokens(), Local(short_input));
  ExpectSameStream(chunked->tokens(), Local(long_input));
}

TEST_F(ColocatedSchedulerTest, BudgetIsSharedByPromptsInAdmissionOrder) {
  auto scheduler = MakeScheduler(64, 10);
  const DecodeInput a = Whole(Prompt(12, 5), Greedy(), 3);
  const DecodeInput b = Whole(Prompt(9, 6), Greedy(), 3);
  auto first = std::make_shared<Recorder>();
  auto second = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(a, first).ok());
  ASSERT_TRUE(scheduler->Submit(b, second).ok());
  scheduler->Step();  // a: 10 of 12, b: none
  EXPECT_EQ(scheduler->Load().queued_tokens, 2 + 9);
  scheduler->Step();  // a: the last 2, b: 8 of 9
  EXPECT_EQ(first->tokens().size(), 2u);
  EXPECT_TRUE(second->tokens().empty());
  EXPECT_EQ(scheduler->Load().queued_tokens, 1);
  RunUntilDone(*scheduler, {first, second});
  ExpectSameStream(first->tokens(), Local(a));
  ExpectSameStream(second->tokens(), Local(b));
}

TEST_F(ColocatedSchedulerTest, ReusesAndPublishesStoredPromptBlocks) {
  auto scheduler = MakeScheduler(64, 512, /*reuse_store=*/true);
  const DecodeInput input = Whole(Prompt(22, 7), Seeded(3), 8);
  auto cold = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, cold).ok());
  RunUntilDone(*scheduler, {cold});
  EXPECT_EQ(cold->cached_tokens(), 0);
  // The prompt's 5 full blocks were computed here and published.
  EXPECT_EQ(store_.puts(), 5);
  for (const BlockKey& key : input.handoff.full_blocks) {
    EXPECT_TRUE(store_.Contains(key));
  }

  auto warm = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, warm).ok());
  RunUntilDone(*scheduler, {warm});
  EXPECT_EQ(warm->cached_tokens(), 20);
  EXPECT_EQ(store_.puts(), 5);  // nothing new to publish
  ExpectSameStream(warm->tokens(), Local(input));
  ExpectSameStream(cold->tokens(), Local(input));
}

TEST_F(ColocatedSchedulerTest, WholeStoredPromptStillComputesItsLastBlock) {
  auto scheduler = MakeScheduler(64, 512, /*reuse_store=*/true);
  const DecodeInput input = Whole(Prompt(16, 8), Greedy(), 5);
  auto cold = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, cold).ok());
  RunUntilDone(*scheduler, {cold});
  auto warm = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, warm).ok());
  RunUntilDone(*scheduler, {warm});
  EXPECT_EQ(warm->cached_tokens(), 12);
  ExpectSameStream(warm->tokens(), Local(input));
}

TEST_F(ColocatedSchedulerTest, StoreDownMeansComputingTheWholePrompt) {
  auto scheduler = MakeScheduler(64, 512, /*reuse_store=*/true);
  store_.SetDown(true);
  const DecodeInput input = Whole(Prompt(13, 9), Greedy(), 6);
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  RunUntilDone(*scheduler, {recorder});
  EXPECT_TRUE(recorder->error().ok()) << recorder->error();
  EXPECT_EQ(recorder->cached_tokens(), 0);
  ExpectSameStream(recorder->tokens(), Local(input));
}

TEST_F(ColocatedSchedulerTest, CancellingAPromptInProgressFreesItsBlocks) {
  auto scheduler = MakeScheduler(64, 4);
  auto recorder = std::make_shared<Recorder>();
  auto id = scheduler->Submit(Whole(Prompt(30, 10), Greedy(), 8), recorder);
  ASSERT_TRUE(id.ok());
  scheduler->Step();
  EXPECT_LT(scheduler->Load().free_blocks, 64);
  scheduler->Cancel(*id);
  scheduler->Step();
  EXPECT_EQ(scheduler->Load().free_blocks, 64);
  EXPECT_EQ(scheduler->Load().queued_tokens, 0);
  EXPECT_TRUE(recorder->tokens().empty());
  EXPECT_FALSE(recorder->done());
}

TEST_F(ColocatedSchedulerTest, PreemptedPromptIsRecomputedIdentically) {
  // 9 blocks of 4 tokens: the two sequences outgrow the cache, the newer
  // one is preempted, and it resumes once the older one is done.
  auto scheduler = MakeScheduler(9, 4);
  const DecodeInput a = Whole(Prompt(5, 11), Seeded(21), 30);
  const DecodeInput b = Whole(Prompt(20, 12), Seeded(22), 6);
  auto first = std::make_shared<Recorder>();
  auto second = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(a, first).ok());
  scheduler->Step();
  ASSERT_TRUE(scheduler->Submit(b, second).ok());
  RunUntilDone(*scheduler, {first, second});
  EXPECT_GT(scheduler->Load().preemptions, 0);
  ExpectSameStream(first->tokens(), Local(a));
  ExpectSameStream(second->tokens(), Local(b));
}

TEST_F(ColocatedSchedulerTest, RejectsBlockKeysThatAreNotThePrompts) {
  auto scheduler = MakeScheduler(64, 512);
  DecodeInput input = Whole(Prompt(10, 13), Greedy(), 4);
  input.handoff.full_blocks[1].lo ^= 1;
  auto submitted =
      scheduler->Submit(std::move(input), std::make_shared<Recorder>());
  EXPECT_EQ(submitted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(submitted.status().message(), HasSubstr("block_keys[1]"));
  input = Whole(Prompt(10, 13), Greedy(), 4);
  input.handoff.full_blocks.pop_back();
  submitted = scheduler->Submit(std::move(input), std::make_shared<Recorder>());
  EXPECT_EQ(submitted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(submitted.status().message(), HasSubstr("block_keys has 1"));
}

}  // namespace
}  // namespace tandem
