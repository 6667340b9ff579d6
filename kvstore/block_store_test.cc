#include "kvstore/block_store.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvstore/test_blocks.h"

namespace tandem {
namespace {

using ::tandem::testing::SmallBlock;
using ::tandem::testing::TestKey;

// Every small test block has the same length.
const uint64_t kBlockBytes = SmallBlock(0).size();

BlockStore::Options BudgetOfBlocks(int blocks) {
  return BlockStore::Options{.memory_budget_bytes = blocks * kBlockBytes,
                             .max_block_bytes = uint64_t{1} << 20};
}

BlockInfo InfoOf(const std::string& block) {
  return DescribeBlock(block).value();
}

// Writes `block` completely, in two pieces, and commits it.
absl::Status PutBlock(BlockStore& store, const std::string& block) {
  absl::StatusOr<std::unique_ptr<BlockWriter>> writer =
      store.BeginPut(InfoOf(block));
  if (!writer.ok()) return writer.status();
  const size_t half = block.size() / 2;
  absl::Status status = (*writer)->Append(block.substr(0, half));
  if (!status.ok()) return status;
  status = (*writer)->Append(block.substr(half));
  if (!status.ok()) return status;
  return (*writer)->Commit();
}

bool Stored(const BlockStore& store, uint64_t i) {
  return store.Contains({TestKey(i)})[0];
}

class BlockStoreTest : public ::testing::Test {
 protected:
  BlockStore store_{BudgetOfBlocks(8)};
};

TEST_F(BlockStoreTest, GetReturnsTheBytesThatWerePut) {
  const std::string block = SmallBlock(1);
  ASSERT_TRUE(PutBlock(store_, block).ok());
  absl::StatusOr<PinnedBlock> got = store_.Get(TestKey(1));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bytes(), block);
  EXPECT_EQ(got->info(), InfoOf(block));
}

TEST_F(BlockStoreTest, GetOfUnknownKeyIsNotFound) {
  EXPECT_EQ(store_.Get(TestKey(5)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.Stats().misses, 1u);
}

TEST_F(BlockStoreTest, BlockIsInvisibleUntilCommitted) {
  const std::string block = SmallBlock(1);
  auto writer = store_.BeginPut(InfoOf(block));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(block).ok());
  EXPECT_FALSE(Stored(store_, 1));
  EXPECT_EQ(store_.Get(TestKey(1)).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_TRUE(Stored(store_, 1));
}

TEST_F(BlockStoreTest, AbandonedWriteLeavesNothingAndFreesItsBytes) {
  const std::string block = SmallBlock(1);
  {
    auto writer = store_.BeginPut(InfoOf(block));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append(block.substr(0, 10)).ok());
    EXPECT_EQ(store_.Stats().bytes_used, kBlockBytes);
  }
  EXPECT_FALSE(Stored(store_, 1));
  const BlockStoreStats stats = store_.Stats();
  EXPECT_EQ(stats.bytes_used, 0u);
  EXPECT_EQ(stats.failed_puts, 1u);
}

TEST_F(BlockStoreTest, ChecksumMismatchIsDataLossAndLeavesNothing) {
  const std::string block = SmallBlock(1);
  BlockInfo info = InfoOf(block);
  info.checksum ^= 1;
  auto writer = store_.BeginPut(info);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(block).ok());
  EXPECT_EQ((*writer)->Commit().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(Stored(store_, 1));
  EXPECT_EQ(store_.Stats().bytes_used, 0u);
}

TEST_F(BlockStoreTest, CorruptPayloadWithMatchingTransferChecksumIsDataLoss) {
  std::string block = SmallBlock(1);
  block[block.size() - 3] ^= 0x40;  // the block's own payload checksum fails
  const BlockInfo info{.key = TestKey(1),
                       .model = testing::TestModel(),
                       .token_count = 4,
                       .total_bytes = block.size(),
                       .checksum = BlockChecksum(block)};
  auto writer = store_.BeginPut(info);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(block).ok());
  EXPECT_EQ((*writer)->Commit().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(Stored(store_, 1));
}

TEST_F(BlockStoreTest, ShortPutIsDataLoss) {
  const std::string block = SmallBlock(1);
  auto writer = store_.BeginPut(InfoOf(block));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(block.substr(0, block.size() - 1)).ok());
  EXPECT_EQ((*writer)->Commit().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(Stored(store_, 1));
}

TEST_F(BlockStoreTest, BytesBeyondTotalAreInvalidArgument) {
  const std::string block = SmallBlock(1);
  auto writer = store_.BeginPut(InfoOf(block));
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->Append(block + "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BlockStoreTest, BlockSentUnderAnotherKeyIsInvalidArgument) {
  const std::string block = SmallBlock(1);
  BlockInfo info = InfoOf(block);
  info.key = TestKey(2);
  auto writer = store_.BeginPut(info);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(block).ok());
  EXPECT_EQ((*writer)->Commit().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Stored(store_, 2));
}

TEST_F(BlockStoreTest, BytesThatAreNotABlockAreInvalidArgument) {
  const std::string bytes(200, 'z');
  const BlockInfo info{.key = TestKey(1),
                       .model = testing::TestModel(),
                       .token_count = 4,
                       .total_bytes = bytes.size(),
                       .checksum = BlockChecksum(bytes)};
  auto writer = store_.BeginPut(info);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(bytes).ok());
  EXPECT_EQ((*writer)->Commit().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BlockStoreTest, CommitTwiceIsFailedPrecondition) {
  const std::string block = SmallBlock(1);
  auto writer = store_.BeginPut(InfoOf(block));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(block).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ((*writer)->Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*writer)->Append("x").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(BlockStoreTest, DuplicatePutIsAlreadyExistsAndKeepsTheBlock) {
  const std::string block = SmallBlock(1);
  ASSERT_TRUE(PutBlock(store_, block).ok());
  EXPECT_EQ(store_.BeginPut(InfoOf(block)).status().code(),
            absl::StatusCode::kAlreadyExists);
  const BlockStoreStats stats = store_.Stats();
  EXPECT_EQ(stats.puts, 1u);
  EXPECT_EQ(stats.duplicate_puts, 1u);
  EXPECT_EQ(stats.bytes_used, kBlockBytes);
  EXPECT_EQ(store_.Get(TestKey(1))->bytes(), block);
}

TEST_F(BlockStoreTest, ConcurrentWritersOfOneKeyStoreItOnce) {
  const std::string block = SmallBlock(1);
  auto first = store_.BeginPut(InfoOf(block));
  auto second = store_.BeginPut(InfoOf(block));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE((*first)->Append(block).ok());
  ASSERT_TRUE((*second)->Append(block).ok());
  ASSERT_TRUE((*first)->Commit().ok());
  ASSERT_TRUE((*second)->Commit().ok());
  const BlockStoreStats stats = store_.Stats();
  EXPECT_EQ(stats.blocks_stored, 1u);
  EXPECT_EQ(stats.bytes_used, kBlockBytes);
}

TEST_F(BlockStoreTest, InvalidInfoIsInvalidArgument) {
  BlockInfo info = InfoOf(SmallBlock(1));
  info.token_count = 0;
  EXPECT_EQ(store_.BeginPut(info).status().code(),
            absl::StatusCode::kInvalidArgument);
  info = InfoOf(SmallBlock(1));
  info.total_bytes = 95;
  EXPECT_EQ(store_.BeginPut(info).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BlockStoreLimitsTest, BlockAboveMaxBlockBytesIsInvalidArgument) {
  BlockStore store(
      {.memory_budget_bytes = 1 << 20, .max_block_bytes = kBlockBytes - 1});
  EXPECT_EQ(store.BeginPut(InfoOf(SmallBlock(1))).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BlockStoreLimitsTest, BlockAboveBudgetIsResourceExhausted) {
  BlockStore store(
      {.memory_budget_bytes = kBlockBytes - 1, .max_block_bytes = 1 << 20});
  EXPECT_EQ(store.BeginPut(InfoOf(SmallBlock(1))).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(BlockStoreEvictionTest, EvictsLeastRecentlyUsedUnpinnedBlock) {
  BlockStore store(BudgetOfBlocks(3));
  for (uint64_t i : {1, 2, 3}) ASSERT_TRUE(PutBlock(store, SmallBlock(i)).ok());
  // Reading block 1 makes block 2 the least recently used.
  ASSERT_TRUE(store.Get(TestKey(1)).ok());
  ASSERT_TRUE(PutBlock(store, SmallBlock(4)).ok());
  EXPECT_TRUE(Stored(store, 1));
  EXPECT_FALSE(Stored(store, 2));
  EXPECT_TRUE(Stored(store, 3));
  EXPECT_TRUE(Stored(store, 4));
  ASSERT_TRUE(PutBlock(store, SmallBlock(5)).ok());
  EXPECT_FALSE(Stored(store, 3));
  const BlockStoreStats stats = store.Stats();
  EXPECT_EQ(stats.evictions, 2u);
  EXPECT_EQ(stats.blocks_stored, 3u);
  EXPECT_EQ(stats.bytes_used, 3 * kBlockBytes);
}

TEST(BlockStoreEvictionTest, PinnedBlockIsNotEvicted) {
  BlockStore store(BudgetOfBlocks(2));
  ASSERT_TRUE(PutBlock(store, SmallBlock(1)).ok());
  ASSERT_TRUE(PutBlock(store, SmallBlock(2)).ok());
  absl::StatusOr<PinnedBlock> reading = store.Get(TestKey(1));
  ASSERT_TRUE(reading.ok());
  ASSERT_TRUE(PutBlock(store, SmallBlock(3)).ok());
  ASSERT_TRUE(PutBlock(store, SmallBlock(4)).ok());
  EXPECT_TRUE(Stored(store, 1));
  EXPECT_FALSE(Stored(store, 3));
  EXPECT_EQ(reading->bytes(), SmallBlock(1));
}

TEST(BlockStoreEvictionTest, RecencyCountsFromTheStartOfAGet) {
  BlockStore store(BudgetOfBlocks(2));
  ASSERT_TRUE(PutBlock(store, SmallBlock(1)).ok());
  ASSERT_TRUE(PutBlock(store, SmallBlock(2)).ok());
  {
    // Block 1 is read, and still pinned, while block 3 arrives: block 3 is
    // the more recent, however long the read takes.
    absl::StatusOr<PinnedBlock> reading = store.Get(TestKey(1));
    ASSERT_TRUE(reading.ok());
    ASSERT_TRUE(PutBlock(store, SmallBlock(3)).ok());
  }
  ASSERT_TRUE(PutBlock(store, SmallBlock(4)).ok());
  EXPECT_FALSE(Stored(store, 1));
  EXPECT_FALSE(Stored(store, 2));
  EXPECT_TRUE(Stored(store, 3));
  EXPECT_TRUE(Stored(store, 4));
}

TEST(BlockStoreEvictionTest, NoRoomWhileEverythingIsPinnedIsResourceExhausted) {
  BlockStore store(BudgetOfBlocks(2));
  ASSERT_TRUE(PutBlock(store, SmallBlock(1)).ok());
  ASSERT_TRUE(PutBlock(store, SmallBlock(2)).ok());
  {
    auto pin1 = store.Get(TestKey(1));
    auto pin2 = store.Get(TestKey(2));
    ASSERT_TRUE(pin1.ok() && pin2.ok());
    EXPECT_EQ(PutBlock(store, SmallBlock(3)).code(),
              absl::StatusCode::kResourceExhausted);
    // Refusing evicts nothing.
    EXPECT_TRUE(Stored(store, 1));
    EXPECT_TRUE(Stored(store, 2));
  }
  EXPECT_TRUE(PutBlock(store, SmallBlock(3)).ok());
}

TEST(BlockStoreEvictionTest, WritesInProgressHoldTheirBytes) {
  BlockStore store(BudgetOfBlocks(2));
  auto first = store.BeginPut(InfoOf(SmallBlock(1)));
  auto second = store.BeginPut(InfoOf(SmallBlock(2)));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(store.BeginPut(InfoOf(SmallBlock(3))).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(BlockStoreTest, RemoveSkipsUnknownKeys) {
  ASSERT_TRUE(PutBlock(store_, SmallBlock(1)).ok());
  EXPECT_EQ(store_.Remove({TestKey(1), TestKey(2), TestKey(1)}), 1u);
  EXPECT_FALSE(Stored(store_, 1));
  EXPECT_EQ(store_.Stats().bytes_used, 0u);
}

TEST_F(BlockStoreTest, RemovedBlockStaysReadableByItsReaderUntilReleased) {
  const std::string block = SmallBlock(1);
  ASSERT_TRUE(PutBlock(store_, block).ok());
  absl::StatusOr<PinnedBlock> reading = store_.Get(TestKey(1));
  ASSERT_TRUE(reading.ok());
  EXPECT_EQ(store_.Remove({TestKey(1)}), 1u);
  EXPECT_EQ(store_.Get(TestKey(1)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(reading->bytes(), block);
  EXPECT_EQ(store_.Stats().bytes_used, kBlockBytes);
  { PinnedBlock released = std::move(*reading); }
  EXPECT_EQ(store_.Stats().bytes_used, 0u);
  // The key can be stored again.
  EXPECT_TRUE(PutBlock(store_, block).ok());
}

TEST_F(BlockStoreTest, CountsGetsHitsAndMisses) {
  ASSERT_TRUE(PutBlock(store_, SmallBlock(1)).ok());
  ASSERT_TRUE(store_.Get(TestKey(1)).ok());
  ASSERT_FALSE(store_.Get(TestKey(2)).ok());
  const BlockStoreStats stats = store_.Stats();
  EXPECT_EQ(stats.gets, 2u);
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.bytes_stored, kBlockBytes);
  EXPECT_EQ(stats.memory_budget_bytes, 8 * kBlockBytes);
}

TEST(BlockStoreConcurrencyTest, ConcurrentPutsGetsAndRemovesStayConsistent) {
  BlockStore store(BudgetOfBlocks(6));
  std::vector<std::string> blocks;
  for (int i = 0; i < 16; ++i) blocks.push_back(SmallBlock(i));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        const int i = (round * 7 + t * 3) % 16;
        absl::Status put = PutBlock(store, blocks[i]);
        EXPECT_TRUE(put.ok() ||
                    put.code() == absl::StatusCode::kAlreadyExists ||
                    put.code() == absl::StatusCode::kResourceExhausted)
            << put;
        absl::StatusOr<PinnedBlock> got = store.Get(TestKey((i + t) % 16));
        if (got.ok()) {
          EXPECT_EQ(got->bytes(), blocks[(i + t) % 16]);
        }
        if (round % 13 == 0) store.Remove({TestKey(i)});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const BlockStoreStats stats = store.Stats();
  EXPECT_LE(stats.bytes_used, 6 * kBlockBytes);
  EXPECT_EQ(stats.bytes_used, stats.bytes_stored);
  EXPECT_EQ(stats.bytes_stored, stats.blocks_stored * kBlockBytes);
}

}  // namespace
}  // namespace tandem
