#include "engine/paged_kv_cache.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tandem {
namespace {

constexpr size_t kFloatsPerAlignment = PagedKvCache::kAlignment / sizeof(float);

size_t RoundUp(size_t value, size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Blocks needed to hold `num_tokens` slots.
int64_t BlocksFor(int64_t num_tokens, int block_size) {
  return (num_tokens + block_size - 1) / block_size;
}

}  // namespace

size_t PagedKvCache::BlockStrideBytes(const KvLayout& layout) {
  return RoundUp(layout.BlockFloats(), kFloatsPerAlignment) * sizeof(float);
}

void PagedKvCache::PoolDeleter::operator()(float* pool) const {
  std::free(pool);
}

absl::StatusOr<std::unique_ptr<PagedKvCache>> PagedKvCache::Create(
    const KvLayout& layout, size_t budget_bytes) {
  if (!layout.IsValid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid KV layout: num_layers=", layout.num_layers,
        " num_kv_heads=", layout.num_kv_heads, " head_dim=", layout.head_dim,
        " block_size=", layout.block_size,
        " (each must be positive and a block must fit in memory)"));
  }
  const size_t stride_bytes = BlockStrideBytes(layout);
  if (stride_bytes < layout.BlockBytes()) {  // the round-up overflowed
    return absl::InvalidArgumentError("KV block size overflows");
  }
  const size_t stride = stride_bytes / sizeof(float);
  size_t num_blocks = budget_bytes / stride_bytes;
  if (num_blocks == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache budget of ", budget_bytes,
                     " bytes holds no block of ", stride_bytes, " bytes"));
  }
  const size_t max_blocks =
      static_cast<size_t>(std::numeric_limits<BlockId>::max()) + 1;
  if (num_blocks > max_blocks) num_blocks = max_blocks;
  // The pool is asked for in whole huge pages: attention reads each block's
  // planes from a different place, and with 4 KiB pages nearly every one
  // of those reads starts with a TLB miss (a decode step at batch 16 ran
  // its attention 10% faster on huge pages). Where the system gives none,
  // the pool works as is. aligned_alloc does not clear memory: pages are
  // committed on first write.
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t bytes =
      (num_blocks * stride_bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* memory = std::aligned_alloc(kHugePage, bytes);
  if (memory != nullptr) madvise(memory, bytes, MADV_HUGEPAGE);
  if (memory == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", num_blocks * stride_bytes,
                     " bytes for ", num_blocks, " KV blocks"));
  }
  std::unique_ptr<float, PoolDeleter> pool(static_cast<float*>(memory));
  return std::unique_ptr<PagedKvCache>(new PagedKvCache(
      layout, static_cast<int>(num_blocks), stride, std::move(pool)));
}

PagedKvCache::PagedKvCache(const KvLayout& layout, int num_blocks,
                           size_t block_stride,
                           std::unique_ptr<float, PoolDeleter> pool)
    : layout_(layout),
      block_stride_(block_stride),
      pool_(std::move(pool)),
      ref_counts_(num_blocks, 0) {
  // Popped from the back, so blocks are handed out in increasing order.
  free_list_.reserve(num_blocks);
  for (BlockId block = num_blocks - 1; block >= 0; --block) {
    free_list_.push_back(block);
  }
}

PagedKvCache::~PagedKvCache() = default;

absl::Status PagedKvCache::AddSequence(SequenceId seq) {
  if (!sequences_.try_emplace(seq).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("sequence ", seq, " already exists"));
  }
  return absl::OkStatus();
}

bool PagedKvCache::HasSequence(SequenceId seq) const {
  return sequences_.contains(seq);
}

absl::Status PagedKvCache::Fork(SequenceId parent, SequenceId child) {
  auto it = sequences_.find(parent);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown sequence ", parent));
  }
  if (sequences_.contains(child)) {
    return absl::AlreadyExistsError(
        absl::StrCat("sequence ", child, " already exists"));
  }
  Sequence copy = it->second;  // `it` is invalidated by the insertion below
  for (BlockId block : copy.blocks) ++ref_counts_[block];
  sequences_.emplace(child, std::move(copy));
  return absl::OkStatus();
}

absl::StatusOr<int> PagedKvCache::PlanAppend(const Sequence& sequence,
                                             int count) const {
  if (count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot append a negative token count ", count));
  }
  if (count > std::numeric_limits<int>::max() - sequence.num_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("appending ", count, " tokens to ", sequence.num_tokens,
                     " overflows the token count"));
  }
  if (count == 0) return 0;
  const int filled_in_last = sequence.num_tokens % layout_.block_size;
  const bool copy_last =
      filled_in_last != 0 && ref_counts_[sequence.blocks.back()] > 1;
  const int64_t new_blocks =
      BlocksFor(int64_t{sequence.num_tokens} + count, layout_.block_size) -
      static_cast<int64_t>(sequence.blocks.size());
  return static_cast<int>(new_blocks + (copy_last ? 1 : 0));
}

absl::StatusOr<int> PagedKvCache::BlocksNeededToAppend(SequenceId seq,
                                                       int count) const {
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown sequence ", seq));
  }
  return PlanAppend(it->second, count);
}

absl::Status PagedKvCache::Append(SequenceId seq, int count) {
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown sequence ", seq));
  }
  Sequence& sequence = it->second;
  absl::StatusOr<int> needed = PlanAppend(sequence, count);
  if (!needed.ok()) return needed.status();
  if (*needed > num_free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "appending ", count, " tokens to sequence ", seq, " needs ", *needed,
        " KV blocks, ", num_free_blocks(), " free"));
  }
  if (count == 0) return absl::OkStatus();
  // Copy-on-write: a shared, partially filled last block is about to receive
  // new tokens, so this sequence takes a private copy of it first.
  const int filled_in_last = sequence.num_tokens % layout_.block_size;
  if (filled_in_last != 0 && ref_counts_[sequence.blocks.back()] > 1) {
    const BlockId shared = sequence.blocks.back();
    const BlockId copy = TakeFreeBlock();
    CopySlots(shared, copy, filled_in_last);
    DropReference(shared);
    sequence.blocks.back() = copy;
  }
  sequence.num_tokens += count;
  const int64_t total = BlocksFor(sequence.num_tokens, layout_.block_size);
  while (static_cast<int64_t>(sequence.blocks.size()) < total) {
    sequence.blocks.push_back(TakeFreeBlock());
  }
  return absl::OkStatus();
}

absl::Status PagedKvCache::AppendFullBlocks(SequenceId seq,
                                            absl::Span<const BlockId> blocks) {
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown sequence ", seq));
  }
  Sequence& sequence = it->second;
  if (sequence.num_tokens % layout_.block_size != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sequence ", seq, " ends in a partial block (", sequence.num_tokens,
        " tokens); full blocks can only follow full blocks"));
  }
  const int64_t added =
      static_cast<int64_t>(blocks.size()) * layout_.block_size;
  if (added > std::numeric_limits<int>::max() - sequence.num_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("appending ", blocks.size(), " blocks to sequence ", seq,
                     " overflows the token count"));
  }
  for (BlockId block : blocks) {
    if (RefCount(block) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "block ", block, " is not an allocated block of this cache"));
    }
  }
  sequence.blocks.insert(sequence.blocks.end(), blocks.begin(), blocks.end());
  sequence.num_tokens += static_cast<int>(added);
  return absl::OkStatus();
}

absl::StatusOr<BlockId> PagedKvCache::AllocateBlock() {
  if (free_list_.empty()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", num_blocks(), " KV blocks are in use"));
  }
  return TakeFreeBlock();
}

absl::Status PagedKvCache::ReleaseBlock(BlockId block) {
  if (RefCount(block) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot release block ", block, ": out of range or already free"));
  }
  DropReference(block);
  return absl::OkStatus();
}

absl::Status PagedKvCache::RemoveSequence(SequenceId seq) {
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown sequence ", seq));
  }
  for (BlockId block : it->second.blocks) DropReference(block);
  sequences_.erase(it);
  return absl::OkStatus();
}

int PagedKvCache::NumTokens(SequenceId seq) const {
  auto it = sequences_.find(seq);
  return it == sequences_.end() ? 0 : it->second.num_tokens;
}

absl::Span<const BlockId> PagedKvCache::BlockTable(SequenceId seq) const {
  auto it = sequences_.find(seq);
  if (it == sequences_.end()) return {};
  return it->second.blocks;
}

int PagedKvCache::RefCount(BlockId block) const {
  if (block < 0 || block >= num_blocks()) return 0;
  return ref_counts_[block];
}

float* PagedKvCache::BlockData(BlockId block) {
  if (block < 0 || block >= num_blocks()) return nullptr;
  return pool_.get() + static_cast<size_t>(block) * block_stride_;
}

const float* PagedKvCache::BlockData(BlockId block) const {
  if (block < 0 || block >= num_blocks()) return nullptr;
  return pool_.get() + static_cast<size_t>(block) * block_stride_;
}

BlockId PagedKvCache::TakeFreeBlock() {
  const BlockId block = free_list_.back();
  free_list_.pop_back();
  ref_counts_[block] = 1;
  return block;
}

void PagedKvCache::DropReference(BlockId block) {
  if (--ref_counts_[block] == 0) free_list_.push_back(block);
}

void PagedKvCache::CopySlots(BlockId from, BlockId to, int num_slots) {
  const float* src = BlockData(from);
  float* dst = BlockData(to);
  const size_t plane = layout_.HeadFloats();
  const size_t bytes =
      static_cast<size_t>(num_slots) * layout_.head_dim * sizeof(float);
  for (size_t p = 0; p < layout_.NumPlanes(); ++p) {
    std::memcpy(dst + p * plane, src + p * plane, bytes);
  }
}

}  // namespace tandem
