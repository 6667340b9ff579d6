#include "router/worker_registry.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::WorkerLoad Load(v1::WorkerKind kind, uint64_t fingerprint = 1,
                    int block_size = 16) {
  v1::WorkerLoad load;
  load.set_kind(kind);
  load.mutable_fingerprint()->set_word0(fingerprint);
  load.mutable_fingerprint()->set_word1(fingerprint * 3);
  load.set_block_size(block_size);
  return load;
}

class WorkerRegistryTest : public ::testing::Test {
 protected:
  absl::Time now_ = absl::FromUnixSeconds(1000);
  WorkerRegistry registry_{absl::Seconds(3), [this] { return now_; }};
};

TEST_F(WorkerRegistryTest, ReportRegistersWorkersByKind) {
  ASSERT_TRUE(
      registry_.Report("p1", "h:1", Load(v1::WORKER_KIND_PREFILL)).ok());
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  const ClusterView view = registry_.View();
  EXPECT_THAT(view.prefill, ElementsAre(Field(&WorkerState::id, "p1")));
  EXPECT_THAT(view.decode, ElementsAre(Field(&WorkerState::address, "h:2")));
  EXPECT_EQ(view.keying.block_size, 16);
  EXPECT_EQ(view.keying.fingerprint.words[0], 1u);
  EXPECT_EQ(view.keying.fingerprint.words[1], 3u);
}

TEST_F(WorkerRegistryTest, ColocatedWorkersHaveAListOfTheirOwn) {
  ASSERT_TRUE(
      registry_.Report("c1", "h:1", Load(v1::WORKER_KIND_COLOCATED)).ok());
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  const ClusterView view = registry_.View();
  EXPECT_THAT(view.colocated, ElementsAre(Field(&WorkerState::id, "c1")));
  EXPECT_THAT(view.decode, ElementsAre(Field(&WorkerState::id, "d1")));
  EXPECT_THAT(view.prefill, IsEmpty());
  EXPECT_EQ(view.keying.block_size, 16);
}

TEST_F(WorkerRegistryTest, WorkerExpiresAfterSilence) {
  ASSERT_TRUE(
      registry_.Report("p1", "h:1", Load(v1::WORKER_KIND_PREFILL)).ok());
  now_ += absl::Milliseconds(2900);
  EXPECT_EQ(registry_.View().prefill.size(), 1u);
  now_ += absl::Milliseconds(100);
  EXPECT_THAT(registry_.View().prefill, IsEmpty());
}

TEST_F(WorkerRegistryTest, ViewListsTheWorkersItExpired) {
  ASSERT_TRUE(
      registry_.Report("p1", "h:1", Load(v1::WORKER_KIND_PREFILL)).ok());
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  now_ += absl::Seconds(2);
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  now_ += absl::Seconds(2);
  EXPECT_THAT(registry_.View().departed, ElementsAre("p1"));
  EXPECT_THAT(registry_.View().departed, IsEmpty());  // reported once
}

TEST_F(WorkerRegistryTest, HeartbeatKeepsWorkerAlive) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
    now_ += absl::Seconds(2);
    EXPECT_EQ(registry_.View().decode.size(), 1u) << "after beat " << i;
  }
}

TEST_F(WorkerRegistryTest, ExpiredWorkerRejoinsWithNextReport) {
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  now_ += absl::Seconds(10);
  EXPECT_THAT(registry_.View().decode, IsEmpty());
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  EXPECT_EQ(registry_.View().decode.size(), 1u);
}

TEST_F(WorkerRegistryTest, RemoveTakesWorkerOutUntilItReportsAgain) {
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  registry_.Remove("d1", absl::UnavailableError("connection refused"));
  EXPECT_THAT(registry_.View().decode, IsEmpty());
  registry_.Remove("unknown", absl::UnavailableError("ignored"));
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  EXPECT_EQ(registry_.View().decode.size(), 1u);
}

TEST_F(WorkerRegistryTest, SentWorkIsCountedUntilTheNextReport) {
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  registry_.RecordSent("d1", 10, 1, 4);
  registry_.RecordSent("d1", 5, 1, 2);
  WorkerState state = registry_.View().decode.at(0);
  EXPECT_EQ(state.sent_tokens, 15);
  EXPECT_EQ(state.sent_sequences, 2);
  EXPECT_EQ(state.sent_blocks, 6);
  ASSERT_TRUE(registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE)).ok());
  state = registry_.View().decode.at(0);
  EXPECT_EQ(state.sent_tokens, 0);
  EXPECT_EQ(state.sent_sequences, 0);
  EXPECT_EQ(state.sent_blocks, 0);
}

TEST_F(WorkerRegistryTest, WorkersDisagreeingWithTheMajorityAreExcluded) {
  ASSERT_TRUE(
      registry_.Report("p1", "h:1", Load(v1::WORKER_KIND_PREFILL, 9)).ok());
  ASSERT_TRUE(
      registry_.Report("p2", "h:2", Load(v1::WORKER_KIND_PREFILL, 5)).ok());
  ASSERT_TRUE(
      registry_.Report("d1", "h:3", Load(v1::WORKER_KIND_DECODE, 5)).ok());
  const ClusterView view = registry_.View();
  EXPECT_EQ(view.keying.fingerprint.words[0], 5u);
  EXPECT_THAT(view.prefill, ElementsAre(Field(&WorkerState::id, "p2")));
  EXPECT_EQ(view.decode.size(), 1u);
  EXPECT_EQ(view.excluded, 1);
}

TEST_F(WorkerRegistryTest, BlockSizeIsPartOfTheKeying) {
  ASSERT_TRUE(
      registry_.Report("p1", "h:1", Load(v1::WORKER_KIND_PREFILL, 1, 16)).ok());
  ASSERT_TRUE(
      registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE, 1, 16)).ok());
  ASSERT_TRUE(
      registry_.Report("d2", "h:3", Load(v1::WORKER_KIND_DECODE, 1, 32)).ok());
  const ClusterView view = registry_.View();
  EXPECT_EQ(view.keying.block_size, 16);
  EXPECT_THAT(view.decode, ElementsAre(Field(&WorkerState::id, "d1")));
}

TEST_F(WorkerRegistryTest, TieGoesToTheKeyingOfTheFirstWorker) {
  ASSERT_TRUE(
      registry_.Report("z", "h:1", Load(v1::WORKER_KIND_PREFILL, 4)).ok());
  now_ += absl::Milliseconds(10);
  ASSERT_TRUE(
      registry_.Report("a", "h:2", Load(v1::WORKER_KIND_DECODE, 8)).ok());
  const ClusterView view = registry_.View();
  EXPECT_EQ(view.keying.fingerprint.words[0], 4u);
  EXPECT_EQ(view.prefill.size(), 1u);
  EXPECT_THAT(view.decode, IsEmpty());
}

TEST_F(WorkerRegistryTest, ExcludedWorkerReturnsWhenTheMajorityMoves) {
  ASSERT_TRUE(
      registry_.Report("p1", "h:1", Load(v1::WORKER_KIND_PREFILL, 1)).ok());
  ASSERT_TRUE(
      registry_.Report("d1", "h:2", Load(v1::WORKER_KIND_DECODE, 1)).ok());
  ASSERT_TRUE(
      registry_.Report("d2", "h:3", Load(v1::WORKER_KIND_DECODE, 2)).ok());
  EXPECT_EQ(registry_.View().decode.size(), 1u);
  // The old model's workers go silent; the new one's keep reporting.
  now_ += absl::Seconds(2);
  ASSERT_TRUE(
      registry_.Report("d2", "h:3", Load(v1::WORKER_KIND_DECODE, 2)).ok());
  now_ += absl::Seconds(2);
  const ClusterView view = registry_.View();
  EXPECT_THAT(view.decode, ElementsAre(Field(&WorkerState::id, "d2")));
  EXPECT_EQ(view.keying.fingerprint.words[0], 2u);
}

TEST_F(WorkerRegistryTest, RejectsReportsWithoutIdAddressOrKind) {
  absl::Status status =
      registry_.Report("", "h:1", Load(v1::WORKER_KIND_DECODE));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("worker_id"));
  status = registry_.Report("d1", "", Load(v1::WORKER_KIND_DECODE));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("address"));
  status = registry_.Report("d1", "h:1", Load(v1::WORKER_KIND_UNSPECIFIED));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("kind"));
  EXPECT_THAT(registry_.View().decode, IsEmpty());
}

TEST_F(WorkerRegistryTest, ViewsAreOrderedById) {
  for (const char* id : {"d3", "d1", "d2"}) {
    ASSERT_TRUE(
        registry_
            .Report(id, std::string("h:") + id, Load(v1::WORKER_KIND_DECODE))
            .ok());
  }
  EXPECT_THAT(
      registry_.View().decode,
      ElementsAre(Field(&WorkerState::id, "d1"), Field(&WorkerState::id, "d2"),
                  Field(&WorkerState::id, "d3")));
}

}  // namespace
}  // namespace tandem
