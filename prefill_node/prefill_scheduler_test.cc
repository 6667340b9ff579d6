#include "prefill_node/prefill_scheduler.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

PrefillSchedulerLimits Limits(int tokens, int sequences = 64) {
  return {.block_size = 4,
          .max_batch_tokens = tokens,
          .max_batch_sequences = sequences};
}

ScheduledChunk Chunk(SequenceId seq, int begin, int length, bool last) {
  return {.seq = seq, .begin = begin, .length = length, .last = last};
}

TEST(PrefillSchedulerLimitsTest, RejectsLimitsBelowOneNamingTheField) {
  EXPECT_TRUE(ValidatePrefillSchedulerLimits(Limits(1, 1)).ok());
  absl::Status status = ValidatePrefillSchedulerLimits(Limits(0));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("max_batch_tokens"));
  status = ValidatePrefillSchedulerLimits(Limits(8, 0));
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("max_batch_sequences"));
  PrefillSchedulerLimits limits = Limits(8);
  limits.block_size = 0;
  EXPECT_EQ(ValidatePrefillSchedulerLimits(limits).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PrefillSchedulerTest, ComputesFromTheEndOfImportedBlocks) {
  EXPECT_EQ(PrefillScheduler::ComputeFrom(10, 0, 4), 0);
  EXPECT_EQ(PrefillScheduler::ComputeFrom(10, 2, 4), 8);
}

TEST(PrefillSchedulerTest, AlwaysComputesTheLastTokenOfAFullyStoredPrompt) {
  EXPECT_EQ(PrefillScheduler::ComputeFrom(8, 2, 4), 7);
}

TEST(PrefillSchedulerTest, BatchesWholePromptsWithinTheTokenBudget) {
  PrefillScheduler scheduler(Limits(16));
  ASSERT_TRUE(scheduler.Enqueue(1, 5, 0).ok());
  ASSERT_TRUE(scheduler.Enqueue(2, 7, 0).ok());
  EXPECT_THAT(scheduler.Admit(100), ElementsAre(1, 2));
  EXPECT_THAT(scheduler.PlanStep(),
              ElementsAre(Chunk(1, 0, 5, true), Chunk(2, 0, 7, true)));
}

TEST(PrefillSchedulerTest, ChunksAPromptLongerThanTheBudgetAcrossSteps) {
  PrefillScheduler scheduler(Limits(4));
  ASSERT_TRUE(scheduler.Enqueue(1, 10, 0).ok());
  scheduler.Admit(100);
  std::vector<ScheduledChunk> plans;
  while (!scheduler.empty()) {
    const std::vector<ScheduledChunk> plan = scheduler.PlanStep();
    ASSERT_EQ(plan.size(), 1u);
    plans.push_back(plan[0]);
    scheduler.Complete(plan);
  }
  EXPECT_THAT(plans, ElementsAre(Chunk(1, 0, 4, false), Chunk(1, 4, 4, false),
                                 Chunk(1, 8, 2, true)));
}

TEST(PrefillSchedulerTest, FillsTheBudgetWithTheNextPromptsHead) {
  PrefillScheduler scheduler(Limits(8));
  ASSERT_TRUE(scheduler.Enqueue(1, 5, 0).ok());
  ASSERT_TRUE(scheduler.Enqueue(2, 6, 0).ok());
  scheduler.Admit(100);
  std::vector<ScheduledChunk> plan = scheduler.PlanStep();
  EXPECT_THAT(plan, ElementsAre(Chunk(1, 0, 5, true), Chunk(2, 0, 3, false)));
  scheduler.Complete(plan);
  EXPECT_THAT(scheduler.PlanStep(), ElementsAre(Chunk(2, 3, 3, true)));
}

TEST(PrefillSchedulerTest, LimitsSequencesPerStep) {
  PrefillScheduler scheduler(Limits(100, 2));
  for (SequenceId seq : {1, 2, 3})
    ASSERT_TRUE(scheduler.Enqueue(seq, 3, 0).ok());
  scheduler.Admit(100);
  std::vector<ScheduledChunk> plan = scheduler.PlanStep();
  EXPECT_THAT(plan, ElementsAre(Chunk(1, 0, 3, true), Chunk(2, 0, 3, true)));
  scheduler.Complete(plan);
  EXPECT_THAT(scheduler.PlanStep(), ElementsAre(Chunk(3, 0, 3, true)));
}

TEST(PrefillSchedulerTest, SkipsImportedBlocks) {
  PrefillScheduler scheduler(Limits(100));
  ASSERT_TRUE(scheduler.Enqueue(1, 10, 2).ok());
  scheduler.Admit(100);
  EXPECT_THAT(scheduler.PlanStep(), ElementsAre(Chunk(1, 8, 2, true)));
  EXPECT_EQ(scheduler.pending_tokens(), 2);
}

TEST(PrefillSchedulerTest, AdmitsInOrderWhileBlocksLast) {
  PrefillScheduler scheduler(Limits(100));
  ASSERT_TRUE(scheduler.Enqueue(1, 8, 0).ok());  // 2 blocks
  ASSERT_TRUE(scheduler.Enqueue(2, 9, 0).ok());  // 3 blocks
  ASSERT_TRUE(scheduler.Enqueue(3, 1, 0).ok());  // 1 block
  EXPECT_THAT(scheduler.Admit(4), ElementsAre(1));
  EXPECT_EQ(scheduler.num_queued(), 2);
  EXPECT_EQ(scheduler.reserved_blocks(), 2);
}

TEST(PrefillSchedulerTest, DoesNotLetSmallPromptsOvertakeALargeOne) {
  PrefillScheduler scheduler(Limits(100));
  ASSERT_TRUE(scheduler.Enqueue(1, 12, 0).ok());  // 3 blocks
  ASSERT_TRUE(scheduler.Enqueue(2, 1, 0).ok());   // 1 block
  EXPECT_THAT(scheduler.Admit(2), IsEmpty());
  EXPECT_THAT(scheduler.Admit(4), ElementsAre(1, 2));
}

TEST(PrefillSchedulerTest, CountsBlocksStillToTakeAsReserved) {
  PrefillScheduler scheduler(Limits(4));
  ASSERT_TRUE(scheduler.Enqueue(1, 12, 1).ok());  // 3 blocks, 1 imported
  scheduler.Admit(10);
  EXPECT_EQ(scheduler.reserved_blocks(), 2);
  // The first step computes tokens 4..7, the second block.
  std::vector<ScheduledChunk> plan = scheduler.PlanStep();
  EXPECT_THAT(plan, ElementsAre(Chunk(1, 4, 4, false)));
  scheduler.Complete(plan);
  EXPECT_EQ(scheduler.reserved_blocks(), 1);
  // A 6-block prompt needs 6 free blocks besides the one still reserved.
  ASSERT_TRUE(scheduler.Enqueue(2, 24, 0).ok());
  EXPECT_THAT(scheduler.Admit(6), IsEmpty());
  EXPECT_THAT(scheduler.Admit(7), ElementsAre(2));
}

TEST(PrefillSchedulerTest, RemoveReleasesTheReservation) {
  PrefillScheduler scheduler(Limits(100));
  ASSERT_TRUE(scheduler.Enqueue(1, 8, 0).ok());
  ASSERT_TRUE(scheduler.Enqueue(2, 8, 0).ok());
  scheduler.Admit(2);
  EXPECT_EQ(scheduler.reserved_blocks(), 2);
  EXPECT_TRUE(scheduler.Remove(1));
  EXPECT_TRUE(scheduler.Remove(2));
  EXPECT_FALSE(scheduler.Remove(2));
  EXPECT_EQ(scheduler.reserved_blocks(), 0);
  EXPECT_TRUE(scheduler.empty());
  EXPECT_THAT(scheduler.PlanStep(), IsEmpty());
}

TEST(PrefillSchedulerTest, CompleteSkipsRemovedSequences) {
  PrefillScheduler scheduler(Limits(100));
  ASSERT_TRUE(scheduler.Enqueue(1, 4, 0).ok());
  ASSERT_TRUE(scheduler.Enqueue(2, 4, 0).ok());
  scheduler.Admit(10);
  const std::vector<ScheduledChunk> plan = scheduler.PlanStep();
  scheduler.Remove(1);
  scheduler.Complete(plan);
  EXPECT_TRUE(scheduler.empty());
}

TEST(PrefillSchedulerTest, RejectsBadPrompts) {
  PrefillScheduler scheduler(Limits(100));
  ASSERT_TRUE(scheduler.Enqueue(1, 4, 0).ok());
  EXPECT_EQ(scheduler.Enqueue(1, 4, 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler.Enqueue(2, 0, 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler.Enqueue(3, 7, 2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler.Enqueue(4, 7, -1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler.num_queued(), 1);
}

}  // namespace
}  // namespace tandem
