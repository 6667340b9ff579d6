#include "engine/paged_kv_cache.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// 2 layers, 2 KV heads, head_dim 4, 4 tokens per block: 128 floats, 512
// bytes, already a multiple of 64 bytes.
KvLayout SmallLayout() { return {2, 2, 4, 4}; }
constexpr size_t kBlockBytes = 512;

std::unique_ptr<PagedKvCache> MakeCache(int num_blocks) {
  auto cache = PagedKvCache::Create(SmallLayout(), num_blocks * kBlockBytes);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return *std::move(cache);
}

// Writes `value` + plane into token slot `slot` of every plane of `block`.
void FillSlot(PagedKvCache& cache, BlockId block, int slot, float value) {
  const KvLayout& layout = cache.layout();
  float* data = cache.BlockData(block);
  for (size_t p = 0; p < layout.NumPlanes(); ++p) {
    for (int d = 0; d < layout.head_dim; ++d) {
      data[p * layout.HeadFloats() + slot * layout.head_dim + d] =
          value + static_cast<float>(p);
    }
  }
}

// True if FillSlot(cache, block, slot, value) is what `block` holds.
bool SlotHolds(const PagedKvCache& cache, BlockId block, int slot,
               float value) {
  const KvLayout& layout = cache.layout();
  const float* data = cache.BlockData(block);
  for (size_t p = 0; p < layout.NumPlanes(); ++p) {
    for (int d = 0; d < layout.head_dim; ++d) {
      if (data[p * layout.HeadFloats() + slot * layout.head_dim + d] !=
          value + static_cast<float>(p)) {
        return false;
      }
    }
  }
  return true;
}

TEST(PagedKvCacheTest, CreateRejectsInvalidLayout) {
  EXPECT_EQ(PagedKvCache::Create({0, 2, 4, 4}, 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PagedKvCache::Create({2, 2, 4, -1}, 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PagedKvCacheTest, CreateRejectsBudgetBelowOneBlock) {
  EXPECT_EQ(
      PagedKvCache::Create(SmallLayout(), kBlockBytes - 1).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(PagedKvCacheTest, CreateFitsWholeBlocksInBudget) {
  auto cache = PagedKvCache::Create(SmallLayout(), 10 * kBlockBytes + 300);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->num_blocks(), 10);
  EXPECT_EQ((*cache)->num_free_blocks(), 10);
}

TEST(PagedKvCacheTest, BlocksAreAlignedAndPaddedTo64Bytes) {
  // 2 * 2 * 2 * 1 * 3 = 24 floats (96 bytes) per block, padded to 128.
  auto cache = PagedKvCache::Create({2, 2, 3, 1}, 256);
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_EQ((*cache)->num_blocks(), 2);
  const float* first = (*cache)->BlockData(0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  EXPECT_EQ((*cache)->BlockData(1) - first, 32);
  EXPECT_EQ(PagedKvCache::BlockStrideBytes({2, 2, 3, 1}), 128u);
  EXPECT_EQ(PagedKvCache::BlockStrideBytes(SmallLayout()), kBlockBytes);
}

TEST(PagedKvCacheTest, AppendAllocatesABlockPerBlockSizeTokens) {
  auto cache = MakeCache(8);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  EXPECT_EQ(cache->NumTokens(1), 0);
  EXPECT_THAT(cache->BlockTable(1), IsEmpty());

  ASSERT_TRUE(cache->Append(1, 1).ok());
  EXPECT_EQ(cache->BlockTable(1).size(), 1u);
  ASSERT_TRUE(cache->Append(1, 3).ok());
  EXPECT_EQ(cache->BlockTable(1).size(), 1u);
  ASSERT_TRUE(cache->Append(1, 1).ok());
  EXPECT_EQ(cache->BlockTable(1).size(), 2u);
  ASSERT_TRUE(cache->Append(1, 9).ok());
  EXPECT_EQ(cache->NumTokens(1), 14);
  EXPECT_EQ(cache->BlockTable(1).size(), 4u);
  EXPECT_EQ(cache->num_free_blocks(), 4);
  for (BlockId block : cache->BlockTable(1))
    EXPECT_EQ(cache->RefCount(block), 1);
}

TEST(PagedKvCacheTest, AppendZeroTokensChangesNothing) {
  auto cache = MakeCache(2);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 0).ok());
  EXPECT_EQ(cache->NumTokens(1), 0);
  EXPECT_EQ(cache->num_free_blocks(), 2);
}

TEST(PagedKvCacheTest, AppendRejectsNegativeAndOverflowingCounts) {
  auto cache = MakeCache(2);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  EXPECT_EQ(cache->Append(1, -1).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(cache->Append(1, 1).ok());
  EXPECT_EQ(cache->Append(1, std::numeric_limits<int>::max()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->BlocksNeededToAppend(1, -3).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->NumTokens(1), 1);
}

TEST(PagedKvCacheTest, UnknownSequenceIsNotFound) {
  auto cache = MakeCache(2);
  EXPECT_EQ(cache->Append(7, 1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache->Fork(7, 8).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache->RemoveSequence(7).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache->AppendFullBlocks(7, {}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache->BlocksNeededToAppend(7, 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(cache->HasSequence(7));
  EXPECT_EQ(cache->NumTokens(7), 0);
  EXPECT_THAT(cache->BlockTable(7), IsEmpty());
  EXPECT_FALSE(cache->HasSequence(8));
}

TEST(PagedKvCacheTest, DuplicateSequenceIsAlreadyExists) {
  auto cache = MakeCache(2);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->AddSequence(2).ok());
  EXPECT_EQ(cache->AddSequence(1).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(cache->Fork(1, 2).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(cache->Fork(1, 1).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(cache->num_sequences(), 2);
}

TEST(PagedKvCacheTest, RemoveSequenceFreesItsBlocks) {
  auto cache = MakeCache(4);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 10).ok());
  EXPECT_EQ(cache->num_free_blocks(), 1);
  const std::vector<BlockId> blocks(cache->BlockTable(1).begin(),
                                    cache->BlockTable(1).end());
  ASSERT_TRUE(cache->RemoveSequence(1).ok());
  EXPECT_FALSE(cache->HasSequence(1));
  EXPECT_EQ(cache->num_free_blocks(), 4);
  for (BlockId block : blocks) EXPECT_EQ(cache->RefCount(block), 0);
}

TEST(PagedKvCacheTest, ForkSharesEveryBlock) {
  auto cache = MakeCache(4);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 6).ok());
  ASSERT_TRUE(cache->Fork(1, 2).ok());
  EXPECT_EQ(cache->NumTokens(2), 6);
  EXPECT_EQ(cache->BlockTable(2), cache->BlockTable(1));
  EXPECT_EQ(cache->num_free_blocks(), 2);
  for (BlockId block : cache->BlockTable(1))
    EXPECT_EQ(cache->RefCount(block), 2);

  // Removing one side keeps the other's blocks.
  ASSERT_TRUE(cache->RemoveSequence(1).ok());
  EXPECT_EQ(cache->num_free_blocks(), 2);
  for (BlockId block : cache->BlockTable(2))
    EXPECT_EQ(cache->RefCount(block), 1);
  ASSERT_TRUE(cache->RemoveSequence(2).ok());
  EXPECT_EQ(cache->num_free_blocks(), 4);
}

TEST(PagedKvCacheTest, AppendCopiesOnlyTheSharedPartialBlock) {
  auto cache = MakeCache(8);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 6).ok());  // one full block, 2 slots of next
  const BlockId full = cache->BlockTable(1)[0];
  const BlockId partial = cache->BlockTable(1)[1];
  FillSlot(*cache, partial, 0, 100.0f);
  FillSlot(*cache, partial, 1, 200.0f);
  ASSERT_TRUE(cache->Fork(1, 2).ok());
  const int free_before = cache->num_free_blocks();

  ASSERT_TRUE(cache->Append(2, 1).ok());
  ASSERT_EQ(cache->BlockTable(2).size(), 2u);
  const BlockId copy = cache->BlockTable(2)[1];
  EXPECT_EQ(cache->BlockTable(2)[0], full);
  EXPECT_NE(copy, partial);
  EXPECT_EQ(cache->num_free_blocks(), free_before - 1);
  EXPECT_EQ(cache->RefCount(full), 2);
  EXPECT_EQ(cache->RefCount(partial), 1);
  EXPECT_EQ(cache->RefCount(copy), 1);
  EXPECT_THAT(cache->BlockTable(1), ElementsAre(full, partial));
  EXPECT_TRUE(SlotHolds(*cache, copy, 0, 100.0f));
  EXPECT_TRUE(SlotHolds(*cache, copy, 1, 200.0f));

  // Each side now writes its own third slot; the parent no longer shares
  // its partial block, so its append copies nothing.
  FillSlot(*cache, copy, 2, 300.0f);
  ASSERT_TRUE(cache->Append(1, 1).ok());
  EXPECT_EQ(cache->num_free_blocks(), free_before - 1);
  EXPECT_THAT(cache->BlockTable(1), ElementsAre(full, partial));
  FillSlot(*cache, partial, 2, 400.0f);
  EXPECT_TRUE(SlotHolds(*cache, partial, 0, 100.0f));
  EXPECT_TRUE(SlotHolds(*cache, partial, 1, 200.0f));
  EXPECT_TRUE(SlotHolds(*cache, partial, 2, 400.0f));
  EXPECT_TRUE(SlotHolds(*cache, copy, 0, 100.0f));
  EXPECT_TRUE(SlotHolds(*cache, copy, 1, 200.0f));
  EXPECT_TRUE(SlotHolds(*cache, copy, 2, 300.0f));
}

TEST(PagedKvCacheTest, ParentAppendingAfterForkGetsTheCopy) {
  auto cache = MakeCache(4);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 2).ok());
  const BlockId shared = cache->BlockTable(1)[0];
  FillSlot(*cache, shared, 0, 5.0f);
  ASSERT_TRUE(cache->Fork(1, 2).ok());
  ASSERT_TRUE(cache->Append(1, 1).ok());
  EXPECT_NE(cache->BlockTable(1)[0], shared);
  EXPECT_THAT(cache->BlockTable(2), ElementsAre(shared));
  EXPECT_EQ(cache->RefCount(shared), 1);
  EXPECT_TRUE(SlotHolds(*cache, cache->BlockTable(1)[0], 0, 5.0f));
}

TEST(PagedKvCacheTest, AppendAfterSharedFullBlockCopiesNothing) {
  auto cache = MakeCache(4);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 4).ok());
  const BlockId full = cache->BlockTable(1)[0];
  ASSERT_TRUE(cache->Fork(1, 2).ok());
  EXPECT_EQ(*cache->BlocksNeededToAppend(2, 1), 1);
  ASSERT_TRUE(cache->Append(2, 1).ok());
  EXPECT_EQ(cache->BlockTable(2).size(), 2u);
  EXPECT_EQ(cache->BlockTable(2)[0], full);
  EXPECT_EQ(cache->RefCount(full), 2);
  EXPECT_EQ(cache->num_free_blocks(), 2);
}

TEST(PagedKvCacheTest, BlocksNeededToAppendCountsTheCopy) {
  auto cache = MakeCache(8);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 3).ok());
  EXPECT_EQ(*cache->BlocksNeededToAppend(1, 1), 0);
  EXPECT_EQ(*cache->BlocksNeededToAppend(1, 2), 1);
  ASSERT_TRUE(cache->Fork(1, 2).ok());
  EXPECT_EQ(*cache->BlocksNeededToAppend(1, 0), 0);
  EXPECT_EQ(*cache->BlocksNeededToAppend(1, 1), 1);
  EXPECT_EQ(*cache->BlocksNeededToAppend(1, 6), 3);
}

TEST(PagedKvCacheTest, OutOfBlocksLeavesStateUnchanged) {
  auto cache = MakeCache(3);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 6).ok());
  const std::vector<BlockId> before(cache->BlockTable(1).begin(),
                                    cache->BlockTable(1).end());
  // 6 + 7 tokens need 4 blocks; only 3 exist.
  EXPECT_EQ(cache->Append(1, 7).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(cache->NumTokens(1), 6);
  EXPECT_EQ(cache->BlockTable(1), before);
  EXPECT_EQ(cache->num_free_blocks(), 1);
  // Exactly what fits still works.
  ASSERT_TRUE(cache->Append(1, 6).ok());
  EXPECT_EQ(cache->num_free_blocks(), 0);
}

TEST(PagedKvCacheTest, OutOfBlocksForCopyOnWriteLeavesStateUnchanged) {
  auto cache = MakeCache(2);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 6).ok());
  ASSERT_TRUE(cache->Fork(1, 2).ok());
  ASSERT_EQ(cache->num_free_blocks(), 0);
  EXPECT_EQ(cache->Append(2, 1).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(cache->BlockTable(2), cache->BlockTable(1));
  EXPECT_EQ(cache->NumTokens(2), 6);
  for (BlockId block : cache->BlockTable(1))
    EXPECT_EQ(cache->RefCount(block), 2);
  // Once the other side is gone, the block is no longer shared: no copy.
  ASSERT_TRUE(cache->RemoveSequence(1).ok());
  EXPECT_TRUE(cache->Append(2, 2).ok());
  EXPECT_EQ(cache->NumTokens(2), 8);
}

TEST(PagedKvCacheTest, AllocatedBlocksJoinASequenceWithAppendFullBlocks) {
  auto cache = MakeCache(4);
  auto first = cache->AllocateBlock();
  auto second = cache->AllocateBlock();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(cache->RefCount(*first), 1);
  EXPECT_EQ(cache->num_free_blocks(), 2);
  FillSlot(*cache, *second, 3, 9.0f);

  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->AppendFullBlocks(1, {*first, *second}).ok());
  EXPECT_EQ(cache->NumTokens(1), 8);
  EXPECT_THAT(cache->BlockTable(1), ElementsAre(*first, *second));
  EXPECT_EQ(cache->RefCount(*second), 1);
  EXPECT_TRUE(SlotHolds(*cache, *second, 3, 9.0f));

  // The sequence goes on growing with Append after its full blocks.
  ASSERT_TRUE(cache->Append(1, 1).ok());
  EXPECT_EQ(cache->BlockTable(1).size(), 3u);
  ASSERT_TRUE(cache->RemoveSequence(1).ok());
  EXPECT_EQ(cache->num_free_blocks(), 4);
}

TEST(PagedKvCacheTest, AppendFullBlocksRejectsPartialSequence) {
  auto cache = MakeCache(4);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 3).ok());
  auto block = cache->AllocateBlock();
  ASSERT_TRUE(block.ok());
  EXPECT_EQ(cache->AppendFullBlocks(1, {*block}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache->NumTokens(1), 3);
  EXPECT_EQ(cache->BlockTable(1).size(), 1u);
  EXPECT_EQ(cache->RefCount(*block), 1);
}

TEST(PagedKvCacheTest, AppendFullBlocksRejectsFreeOrUnknownBlocks) {
  auto cache = MakeCache(4);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  auto owned = cache->AllocateBlock();
  ASSERT_TRUE(owned.ok());
  const BlockId free_block = *owned == 0 ? 1 : 0;
  EXPECT_EQ(cache->AppendFullBlocks(1, {*owned, free_block}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->AppendFullBlocks(1, {*owned, 4}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->AppendFullBlocks(1, {-1}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->NumTokens(1), 0);
  EXPECT_THAT(cache->BlockTable(1), IsEmpty());
  EXPECT_EQ(cache->RefCount(*owned), 1);
}

TEST(PagedKvCacheTest, AllocateBlockWhenNoneFreeIsResourceExhausted) {
  auto cache = MakeCache(1);
  ASSERT_TRUE(cache->AllocateBlock().ok());
  EXPECT_EQ(cache->AllocateBlock().status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(cache->num_free_blocks(), 0);
}

TEST(PagedKvCacheTest, ReleaseBlockFreesAtZeroReferences) {
  auto cache = MakeCache(2);
  auto block = cache->AllocateBlock();
  ASSERT_TRUE(block.ok());
  ASSERT_TRUE(cache->ReleaseBlock(*block).ok());
  EXPECT_EQ(cache->RefCount(*block), 0);
  EXPECT_EQ(cache->num_free_blocks(), 2);
  EXPECT_EQ(cache->ReleaseBlock(*block).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->ReleaseBlock(2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->ReleaseBlock(-1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->num_free_blocks(), 2);
}

TEST(PagedKvCacheTest, ReleasedSharedBlockStaysWithItsSequence) {
  auto cache = MakeCache(2);
  auto block = cache->AllocateBlock();
  ASSERT_TRUE(block.ok());
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->AppendFullBlocks(1, {*block}).ok());
  ASSERT_TRUE(cache->Fork(1, 2).ok());
  ASSERT_TRUE(cache->RemoveSequence(1).ok());
  EXPECT_EQ(cache->RefCount(*block), 1);
  EXPECT_EQ(cache->num_free_blocks(), 1);
}

TEST(PagedKvCacheTest, OutOfRangeBlockAccessorsAreSafe) {
  auto cache = MakeCache(2);
  EXPECT_EQ(cache->RefCount(-1), 0);
  EXPECT_EQ(cache->RefCount(2), 0);
  EXPECT_EQ(cache->BlockData(2), nullptr);
  EXPECT_EQ(cache->BlockData(-1), nullptr);
  EXPECT_NE(cache->BlockData(1), nullptr);
}

}  // namespace
}  // namespace tandem
