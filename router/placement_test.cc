#include "router/placement.h"

#include <vector>

#include "gtest/gtest.h"

namespace tandem {
namespace {

WorkerState Prefill(const char* id, int64_t queued_tokens,
                    int64_t sent_tokens = 0) {
  WorkerState worker;
  worker.id = id;
  worker.load.set_kind(v1::WORKER_KIND_PREFILL);
  worker.load.set_queued_tokens(queued_tokens);
  worker.sent_tokens = sent_tokens;
  return worker;
}

WorkerState Decode(const char* id, int running, int max_batch, int free_blocks,
                   int total_blocks) {
  WorkerState worker;
  worker.id = id;
  worker.load.set_kind(v1::WORKER_KIND_DECODE);
  worker.load.set_running_sequences(running);
  worker.load.set_max_batch(max_batch);
  worker.load.set_free_blocks(free_blocks);
  worker.load.set_total_blocks(total_blocks);
  return worker;
}

WorkerState Colocated(const char* id, int64_t queued_tokens, int running,
                      int free_blocks) {
  WorkerState worker = Decode(id, running, 4, free_blocks, 100);
  worker.load.set_kind(v1::WORKER_KIND_COLOCATED);
  worker.load.set_queued_tokens(queued_tokens);
  return worker;
}

TEST(PlacementTest, NoWorkersIsUnavailable) {
  EXPECT_EQ(PickPrefillWorker({}, 10).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(PickDecodeWorker({}, 1).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(PickColocatedWorker({}, 10, 1).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(PlacementTest, PrefillGoesToTheShortestQueue) {
  const std::vector<WorkerState> workers = {Prefill("a", 500), Prefill("b", 20),
                                            Prefill("c", 300)};
  EXPECT_EQ(*PickPrefillWorker(workers, 100), 1u);
}

TEST(PlacementTest, PrefillCountsTokensSentSinceTheLastReport) {
  // b reported an empty queue, but this router has since sent it 900.
  const std::vector<WorkerState> workers = {Prefill("a", 200),
                                            Prefill("b", 0, 900)};
  EXPECT_EQ(*PickPrefillWorker(workers, 50), 0u);
  EXPECT_EQ(ExpectedPrefillTokens(workers[1], 50), 950);
}

TEST(PlacementTest, PrefillTieGoesToFewerQueuedRequests) {
  std::vector<WorkerState> workers = {Prefill("a", 100), Prefill("b", 100)};
  workers[0].load.set_queued_requests(3);
  workers[1].load.set_queued_requests(1);
  EXPECT_EQ(*PickPrefillWorker(workers, 10), 1u);
}

TEST(PlacementTest, DecodeGoesToTheMostFreeBatchSlots) {
  const std::vector<WorkerState> workers = {Decode("a", 6, 8, 100, 100),
                                            Decode("b", 2, 8, 100, 100)};
  EXPECT_EQ(*PickDecodeWorker(workers, 4), 1u);
}

TEST(PlacementTest, DecodeAvoidsAWorkerShortOfBlocks) {
  // a has free slots but few free blocks; b the other way round is better.
  const std::vector<WorkerState> workers = {Decode("a", 0, 8, 10, 100),
                                            Decode("b", 4, 8, 90, 100)};
  EXPECT_EQ(*PickDecodeWorker(workers, 8), 1u);
  EXPECT_LT(DecodeHeadroom(workers[0], 8), DecodeHeadroom(workers[1], 8));
}

TEST(PlacementTest, DecodeCountsSequencesSentSinceTheLastReport) {
  std::vector<WorkerState> workers = {Decode("a", 0, 4, 100, 100),
                                      Decode("b", 1, 4, 100, 100)};
  workers[0].sent_sequences = 3;
  workers[0].sent_blocks = 12;
  EXPECT_EQ(*PickDecodeWorker(workers, 4), 1u);
}

TEST(PlacementTest, DecodeHeadroomGoesNegativeWhenFull) {
  EXPECT_LT(DecodeHeadroom(Decode("a", 8, 8, 50, 100), 1), 0.0);
  EXPECT_LT(DecodeHeadroom(Decode("a", 0, 8, 2, 100), 5), 0.0);
  EXPECT_DOUBLE_EQ(DecodeHeadroom(Decode("a", 0, 4, 100, 100), 0), 0.75);
}

TEST(PlacementTest, ABurstSpreadsOverEqualWorkers) {
  std::vector<WorkerState> workers = {Decode("a", 0, 8, 64, 64),
                                      Decode("b", 0, 8, 64, 64)};
  int picks[2] = {0, 0};
  for (int i = 0; i < 8; ++i) {
    const size_t pick = *PickDecodeWorker(workers, 4);
    ++picks[pick];
    ++workers[pick].sent_sequences;
    workers[pick].sent_blocks += 4;
  }
  EXPECT_EQ(picks[0], 4);
  EXPECT_EQ(picks[1], 4);
}

TEST(PlacementTest, ColocatedGoesToTheFewestPromptTokens) {
  const std::vector<WorkerState> workers = {Colocated("a", 800, 1, 90),
                                            Colocated("b", 100, 2, 90),
                                            Colocated("c", 300, 0, 90)};
  EXPECT_EQ(*PickColocatedWorker(workers, 50, 4), 1u);
}

TEST(PlacementTest, ColocatedCountsPromptTokensSentSinceTheLastReport) {
  std::vector<WorkerState> workers = {Colocated("a", 200, 0, 90),
                                      Colocated("b", 0, 0, 90)};
  workers[1].sent_tokens = 900;
  EXPECT_EQ(*PickColocatedWorker(workers, 50, 4), 0u);
}

TEST(PlacementTest, ColocatedAvoidsAWorkerThatWouldQueueTheSequence) {
  // b has the shorter prompt queue but a full batch (4 of 4 running).
  const std::vector<WorkerState> workers = {Colocated("a", 500, 1, 90),
                                            Colocated("b", 0, 4, 90)};
  EXPECT_EQ(*PickColocatedWorker(workers, 50, 4), 0u);
  // ... or too few free blocks for the new sequence.
  const std::vector<WorkerState> no_blocks = {Colocated("a", 500, 1, 90),
                                              Colocated("b", 0, 0, 2)};
  EXPECT_EQ(*PickColocatedWorker(no_blocks, 50, 4), 0u);
}

TEST(PlacementTest, ColocatedTieGoesToMoreHeadroomThenTheFirst) {
  const std::vector<WorkerState> workers = {Colocated("a", 0, 3, 90),
                                            Colocated("b", 0, 1, 90)};
  EXPECT_EQ(*PickColocatedWorker(workers, 50, 4), 1u);
  const std::vector<WorkerState> same = {Colocated("a", 0, 1, 90),
                                         Colocated("b", 0, 1, 90)};
  EXPECT_EQ(*PickColocatedWorker(same, 50, 4), 0u);
}

}  // namespace
}  // namespace tandem
