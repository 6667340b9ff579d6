// The scheduler with the real engine on a tiny random byte-level model
// (vocab 258, BOS 256, EOS 257, context 256) and an in-memory block store.
// Most tests drive Step themselves (fetches run inline), so every
// admission, preemption and departure happens at a known step; one runs
// the scheduler's own threads.
#include "decode_node/scheduler.h"

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "decode_node/local_handoff.h"
#include "decode_node/scheduler_test_util.h"
#include "engine/byte_tokenizer.h"
#include "engine/generation.h"
#include "engine/kv_block_codec.h"
#include "engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/random_model.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

using scheduler_testing::Greedy;
using scheduler_testing::MapBlockSource;
using scheduler_testing::Prompt;
using scheduler_testing::Recorder;
using scheduler_testing::RunUntilDone;
using scheduler_testing::Seeded;

class SchedulerTest : public scheduler_testing::TinyModelTest {
 protected:
  // A scheduler driven by Step, with `blocks` cache blocks.
  std::unique_ptr<Scheduler> MakeScheduler(int blocks, int max_batch = 8,
                                           int max_waiting = 8,
                                           int block_size = 4) {
    SchedulerOptions options = StepOptions(blocks, block_size);
    options.max_batch = max_batch;
    options.max_waiting = max_waiting;
    return Create(options);
  }

  // The request for `prompt`, its blocks in the store.
  DecodeInput Handoff(const std::vector<int32_t>& prompt,
                      const SamplingParams& sampling, int max_tokens,
                      int block_size = 4) {
    auto handoff = MakeLocalHandoff(*model_, prompt, sampling, /*logprobs=*/2,
                                    max_tokens, block_size);
    EXPECT_TRUE(handoff.ok()) << handoff.status();
    store_.Put(handoff->input.handoff, handoff->blocks);
    return handoff->input;
  }

  static void ExpectSameStream(const std::vector<GeneratedToken>& got,
                               const std::vector<GeneratedToken>& want) {
    scheduler_testing::ExpectSameStream(got, want, /*first_logprobs=*/false);
  }
};

TEST_F(SchedulerTest, GreedySequenceMatchesLocalGeneration) {
  auto scheduler = MakeScheduler(64);
  const DecodeInput input = Handoff(Prompt(10, 1), Greedy(), 16);
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  RunUntilDone(*scheduler, {recorder});
  EXPECT_TRUE(recorder->error().ok()) << recorder->error();
  ExpectSameStream(recorder->tokens(), Local(input));
}

TEST_F(SchedulerTest, SeededSamplingWithPenaltiesMatchesLocalGeneration) {
  auto scheduler = MakeScheduler(64);
  const DecodeInput input = Handoff(Prompt(9, 2), Seeded(1234), 24);
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  RunUntilDone(*scheduler, {recorder});
  ExpectSameStream(recorder->tokens(), Local(input));
}

TEST_F(SchedulerTest, PromptOfWholeBlocksNeedsNoPartialBlock) {
  auto scheduler = MakeScheduler(64);
  const DecodeInput input = Handoff(Prompt(12, 3), Seeded(5), 10);
  ASSERT_FALSE(input.handoff.partial_block.has_value());
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  RunUntilDone(*scheduler, {recorder});
  ExpectSameStream(recorder->tokens(), Local(input));
}

TEST_F(SchedulerTest, StopStringEndsTheStreamLikeLocalGeneration) {
  auto scheduler = MakeScheduler(64);
  DecodeInput input = Handoff(Prompt(7, 4), Greedy(), 20);
  const std::vector<GeneratedToken> full = Local(input);
  std::string text;
  for (const GeneratedToken& token : full) text += token.text;
  ASSERT_GE(text.size(), 6u);
  input.stop = {text.substr(4, 2)};
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  RunUntilDone(*scheduler, {recorder});
  const std::vector<GeneratedToken> local = Local(input);
  ASSERT_EQ(local.back().finish, FinishReason::kStop);
  ExpectSameStream(recorder->tokens(), local);
}

TEST_F(SchedulerTest, FirstTokenAloneEndsAMaxTokensOneRequest) {
  auto scheduler = MakeScheduler(64);
  const DecodeInput input = Handoff(Prompt(6, 5), Greedy(), 1);
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  scheduler->Step();
  ASSERT_EQ(recorder->tokens().size(), 1u);
  EXPECT_EQ(recorder->tokens()[0].token, input.first_token);
  EXPECT_EQ(recorder->tokens()[0].finish, FinishReason::kLength);
  EXPECT_EQ(scheduler->Load().free_blocks, 64);
  EXPECT_EQ(scheduler->Load().running, 0);
}

TEST_F(SchedulerTest, EosEndsTheSequenceUnlessIgnored) {
  auto scheduler = MakeScheduler(64);
  DecodeInput input = Handoff(Prompt(6, 5), Greedy(), 5);
  input.first_token = 257;  // EOS
  auto stopped = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, stopped).ok());
  input.ignore_eos = true;
  auto ignoring = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, ignoring).ok());
  RunUntilDone(*scheduler, {stopped, ignoring});
  ASSERT_EQ(stopped->tokens().size(), 1u);
  EXPECT_EQ(stopped->tokens()[0].finish, FinishReason::kStop);
  ASSERT_EQ(ignoring->tokens().size(), 5u);
  EXPECT_EQ(ignoring->tokens().back().finish, FinishReason::kLength);
}

TEST_F(SchedulerTest, SequencesJoinAndLeaveTheBatchAtEveryStep) {
  auto scheduler = MakeScheduler(64);
  std::vector<DecodeInput> inputs;
  std::vector<std::shared_ptr<Recorder>> recorders;
  std::vector<size_t> lengths;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(Handoff(Prompt(5 + i, 10 + i), Seeded(i), 2 + i));
    lengths.push_back(Local(inputs.back()).size());
  }
  // Two join now, two more after the first step.
  for (int i = 0; i < 2; ++i) {
    recorders.push_back(std::make_shared<Recorder>());
    ASSERT_TRUE(scheduler->Submit(inputs[i], recorders.back()).ok());
  }
  scheduler->Step();
  for (int i = 2; i < 4; ++i) {
    recorders.push_back(std::make_shared<Recorder>());
    ASSERT_TRUE(scheduler->Submit(inputs[i], recorders.back()).ok());
  }
  // Each step feeds one token to every running sequence; the first step a
  // sequence runs also streams its first token.
  for (int step = 1; step < 8; ++step) {
    scheduler->Step();
    int running = 0;
    for (int i = 0; i < 4; ++i) {
      const size_t steps_run = i < 2 ? step + 1 : step;
      const size_t expected = std::min(lengths[i], steps_run + 1);
      EXPECT_EQ(recorders[i]->tokens().size(), expected)
          << "sequence " << i << " after step " << step;
      if (lengths[i] > steps_run + 1) ++running;
    }
    EXPECT_EQ(scheduler->Load().running, running) << "after step " << step;
  }
  for (int i = 0; i < 4; ++i) {
    ExpectSameStream(recorders[i]->tokens(), Local(inputs[i]));
  }
  EXPECT_EQ(scheduler->Load().free_blocks, 64);
}

TEST_F(SchedulerTest, FullBatchQueuesAndAdmitsWhenASequenceLeaves) {
  auto scheduler = MakeScheduler(64, /*max_batch=*/1);
  const DecodeInput first = Handoff(Prompt(6, 20), Greedy(), 4);
  const DecodeInput second = Handoff(Prompt(7, 21), Greedy(), 4);
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(first, a).ok());
  ASSERT_TRUE(scheduler->Submit(second, b).ok());
  scheduler->Step();
  EXPECT_EQ(scheduler->Load().running, 1);
  EXPECT_EQ(scheduler->Load().waiting, 1);
  EXPECT_TRUE(b->tokens().empty());
  RunUntilDone(*scheduler, {a, b});
  ExpectSameStream(a->tokens(), Local(first));
  ExpectSameStream(b->tokens(), Local(second));
}

TEST_F(SchedulerTest, RejectsRequestsBeyondTheWaitingQueue) {
  auto scheduler = MakeScheduler(64, /*max_batch=*/1, /*max_waiting=*/2);
  const DecodeInput input = Handoff(Prompt(6, 22), Greedy(), 4);
  ASSERT_TRUE(scheduler->Submit(input, std::make_shared<Recorder>()).ok());
  ASSERT_TRUE(scheduler->Submit(input, std::make_shared<Recorder>()).ok());
  EXPECT_EQ(scheduler->Load().waiting, 2);
  EXPECT_EQ(
      scheduler->Submit(input, std::make_shared<Recorder>()).status().code(),
      absl::StatusCode::kResourceExhausted);
  scheduler->Step();  // one runs, one waits: room for one more
  EXPECT_TRUE(scheduler->Submit(input, std::make_shared<Recorder>()).ok());
}

TEST_F(SchedulerTest, RejectsARequestTheWholeCacheCannotHold) {
  auto scheduler = MakeScheduler(4);
  // 6 prompt tokens plus 16 generated need 6 blocks of 4.
  const DecodeInput input = Handoff(Prompt(6, 23), Greedy(), 16);
  auto submitted = scheduler->Submit(input, std::make_shared<Recorder>());
  EXPECT_EQ(submitted.status().code(), absl::StatusCode::kResourceExhausted);
}

// Two sequences of 6 + 20 tokens (7 blocks each at most) in a 10-block
// cache: both start, the newer is preempted when they outgrow the cache,
// and it resumes once the older one finishes.
TEST_F(SchedulerTest, PreemptsTheNewestSequenceAndResumesItIdentically) {
  auto scheduler = MakeScheduler(10);
  SamplingParams sampling = Seeded(77);
  const DecodeInput first = Handoff(Prompt(6, 30), sampling, 20);
  sampling.seed = 78;
  const DecodeInput second = Handoff(Prompt(6, 31), sampling, 20);
  ASSERT_EQ(Local(first).size(), 20u);
  ASSERT_EQ(Local(second).size(), 20u);
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(first, a).ok());
  ASSERT_TRUE(scheduler->Submit(second, b).ok());
  scheduler->Step();
  ASSERT_EQ(scheduler->Load().running, 2);
  RunUntilDone(*scheduler, {a, b});
  EXPECT_GE(scheduler->Load().preemptions, 1);
  ExpectSameStream(a->tokens(), Local(first));
  ExpectSameStream(b->tokens(), Local(second));
  EXPECT_EQ(scheduler->Load().free_blocks, 10);
}

TEST_F(SchedulerTest, PreemptedSequenceRecomputesWhenTheStoreLostItsBlocks) {
  auto scheduler = MakeScheduler(10);
  const DecodeInput first = Handoff(Prompt(6, 32), Seeded(79), 20);
  const DecodeInput second = Handoff(Prompt(6, 33), Seeded(80), 20);
  // Preemption needs both to outgrow the cache together.
  ASSERT_EQ(Local(first).size(), 20u);
  ASSERT_EQ(Local(second).size(), 20u);
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(first, a).ok());
  ASSERT_TRUE(scheduler->Submit(second, b).ok());
  scheduler->Step();
  store_.Clear();
  RunUntilDone(*scheduler, {a, b});
  EXPECT_GE(scheduler->Load().preemptions, 1);
  EXPECT_TRUE(b->error().ok()) << b->error();
  ExpectSameStream(a->tokens(), Local(first));
  ExpectSameStream(b->tokens(), Local(second));
}

TEST_F(SchedulerTest, CancellationFreesTheBlocksAtTheNextStep) {
  auto scheduler = MakeScheduler(16);
  auto recorder = std::make_shared<Recorder>();
  auto id = scheduler->Submit(Handoff(Prompt(9, 40), Greedy(), 30), recorder);
  ASSERT_TRUE(id.ok());
  scheduler->Step();
  scheduler->Step();
  EXPECT_EQ(scheduler->Load().running, 1);
  EXPECT_LT(scheduler->Load().free_blocks, 16);
  const size_t streamed = recorder->tokens().size();
  scheduler->Cancel(*id);
  scheduler->Step();
  EXPECT_EQ(scheduler->Load().free_blocks, 16);
  EXPECT_EQ(scheduler->Load().running, 0);
  EXPECT_EQ(recorder->tokens().size(), streamed);
  EXPECT_TRUE(recorder->error().ok());
}

TEST_F(SchedulerTest, CancellingAWaitingRequestEmptiesTheQueue) {
  auto scheduler = MakeScheduler(64, /*max_batch=*/1);
  ASSERT_TRUE(scheduler
                  ->Submit(Handoff(Prompt(5, 41), Greedy(), 8),
                           std::make_shared<Recorder>())
                  .ok());
  auto waiting = scheduler->Submit(Handoff(Prompt(5, 42), Greedy(), 8),
                                   std::make_shared<Recorder>());
  ASSERT_TRUE(waiting.ok());
  scheduler->Step();
  EXPECT_EQ(scheduler->Load().waiting, 1);
  scheduler->Cancel(*waiting);
  scheduler->Step();
  EXPECT_EQ(scheduler->Load().waiting, 0);
}

TEST_F(SchedulerTest, MissingBlockEndsTheRequestWithNotFound) {
  auto scheduler = MakeScheduler(16);
  const DecodeInput input = Handoff(Prompt(10, 50), Greedy(), 8);
  store_.Remove(input.handoff.full_blocks[1]);
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  scheduler->Step();
  EXPECT_EQ(recorder->error().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(recorder->error().message(), HasSubstr("handoff block 1"));
  EXPECT_TRUE(recorder->tokens().empty());
  EXPECT_EQ(scheduler->Load().free_blocks, 16);
}

TEST_F(SchedulerTest, StoreDownEndsTheRequestWithUnavailable) {
  auto scheduler = MakeScheduler(16);
  const DecodeInput input = Handoff(Prompt(10, 51), Greedy(), 8);
  store_.SetDown(true);
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  scheduler->Step();
  EXPECT_EQ(recorder->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(scheduler->Load().free_blocks, 16);
}

TEST_F(SchedulerTest, BlockOfAnotherModelEndsTheRequestWithFailedPrecondition) {
  auto scheduler = MakeScheduler(16);
  const DecodeInput input = Handoff(Prompt(10, 52), Greedy(), 8);
  // The right key on a block that claims another model.
  std::vector<float> floats(scheduler->layout().BlockFloats(), 0.5f);
  BlockMetadata metadata;
  metadata.model = Fingerprint{{1, 2}};
  metadata.token_count = 4;
  metadata.key = input.handoff.full_blocks[0];
  auto foreign = ExportBlock(scheduler->layout(), floats.data(), metadata);
  ASSERT_TRUE(foreign.ok());
  KvHandoff one = input.handoff;
  one.full_blocks.resize(1);
  one.partial_block.reset();
  store_.Put(one, {*foreign});
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(scheduler->Submit(input, recorder).ok());
  scheduler->Step();
  EXPECT_EQ(recorder->error().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler->Load().free_blocks, 16);
}

TEST_F(SchedulerTest, HandoffForAnotherModelIsRefusedAtSubmit) {
  auto scheduler = MakeScheduler(16);
  DecodeInput input = Handoff(Prompt(10, 53), Greedy(), 8);
  input.handoff.model = Fingerprint{{1, 2}};
  EXPECT_EQ(
      scheduler->Submit(input, std::make_shared<Recorder>()).status().code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, HandoffForAnotherBlockSizeIsRefusedAtSubmit) {
  auto scheduler = MakeScheduler(16);
  const DecodeInput input = Handoff(Prompt(10, 54), Greedy(), 8, 8);
  EXPECT_EQ(
      scheduler->Submit(input, std::make_shared<Recorder>()).status().code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, RejectsMalformedRequestsNamingTheField) {
  auto scheduler = MakeScheduler(16);
  const DecodeInput good = Handoff(Prompt(10, 55), Greedy(), 8);
  struct Case {
    std::string field;
    DecodeInput input;
  };
  std::vector<Case> cases;
  cases.push_back({"first_token", good});
  cases.back().input.first_token = 258;
  cases.push_back({"prompt_token_ids[3]", good});
  cases.back().input.prompt[3] = 300;
  cases.push_back({"handoff.full_blocks[1]", good});
  cases.back().input.handoff.full_blocks[1].lo ^= 1;
  cases.push_back({"handoff.partial_block", good});
  cases.back().input.handoff.partial_block->hi ^= 1;
  cases.push_back({"max_tokens", good});
  cases.back().input.max_tokens = 250;
  for (const Case& c : cases) {
    auto submitted = scheduler->Submit(c.input, std::make_shared<Recorder>());
    EXPECT_EQ(submitted.status().code(), absl::StatusCode::kInvalidArgument)
        << c.field;
    EXPECT_THAT(submitted.status().message(), HasSubstr(c.field));
  }
}

TEST_F(SchedulerTest, ThreadedSchedulerStreamsConcurrentRequests) {
  SchedulerOptions options;
  options.block_size = 4;
  options.kv_cache_bytes =
      PagedKvCache::BlockStrideBytes(model_->kv_layout(4)) * 64;
  options.fetch_threads = 2;
  std::vector<DecodeInput> inputs;
  std::vector<std::vector<GeneratedToken>> expected;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(Handoff(Prompt(6 + i, 60 + i), Seeded(100 + i), 12));
    expected.push_back(Local(inputs.back()));
  }
  auto scheduler = Scheduler::Create(model_, tokenizer_, &store_, options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  (*scheduler)->Start();
  std::vector<std::shared_ptr<Recorder>> recorders;
  for (const DecodeInput& input : inputs) {
    recorders.push_back(std::make_shared<Recorder>());
    ASSERT_TRUE((*scheduler)->Submit(input, recorders.back()).ok());
  }
  for (const auto& recorder : recorders) ASSERT_TRUE(recorder->WaitDone());
  scheduler->reset();  // joins the threads before the model is used again
  for (int i = 0; i < 4; ++i) {
    ExpectSameStream(recorders[i]->tokens(), expected[i]);
  }
}

}  // namespace
}  // namespace tandem
