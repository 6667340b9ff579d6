#include "kvstore/block_store.h"

#include <cstring>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/kv_block_codec.h"
#include "xxhash.h"

namespace tandem {

struct BlockStoreEntry {
  BlockInfo info;
  std::unique_ptr<char[]> data;  // info.total_bytes
  // The fields below are guarded by the store's mutex once the entry is
  // published.
  int pins = 0;
  // Removed from the index while pinned; freed by its last unpin.
  bool removed = false;
  // Position in the store's recency list; valid while visible.
  std::list<BlockStoreEntry*>::iterator lru_pos;

  absl::string_view bytes() const {
    return absl::string_view(data.get(), info.total_bytes);
  }
};

// --- PinnedBlock ---

PinnedBlock::PinnedBlock(PinnedBlock&& other) noexcept
    : store_(other.store_), entry_(std::exchange(other.entry_, nullptr)) {}

PinnedBlock& PinnedBlock::operator=(PinnedBlock&& other) noexcept {
  if (this != &other) {
    Release();
    store_ = other.store_;
    entry_ = std::exchange(other.entry_, nullptr);
  }
  return *this;
}

PinnedBlock::~PinnedBlock() { Release(); }

void PinnedBlock::Release() {
  if (entry_ != nullptr) store_->Unpin(std::exchange(entry_, nullptr));
}

const BlockInfo& PinnedBlock::info() const { return entry_->info; }

absl::string_view PinnedBlock::bytes() const { return entry_->bytes(); }

// --- BlockWriter ---

BlockWriter::BlockWriter(BlockStore* store,
                         std::unique_ptr<BlockStoreEntry> entry)
    : store_(store),
      info_(entry->info),
      entry_(std::move(entry)),
      hash_(XXH3_createState()) {
  XXH3_64bits_reset(hash_);
}

BlockWriter::~BlockWriter() {
  if (entry_ != nullptr) store_->Abandon(std::move(entry_));
  XXH3_freeState(hash_);
}

absl::Status BlockWriter::Append(absl::string_view data) {
  if (entry_ == nullptr) {
    return absl::FailedPreconditionError("block write already finished");
  }
  if (data.size() > info_.total_bytes - bytes_received_) {
    return absl::InvalidArgumentError(
        absl::StrCat("put of block ", info_.key.ToHex(), " sends more than ",
                     "its total_bytes ", info_.total_bytes));
  }
  std::memcpy(entry_->data.get() + bytes_received_, data.data(), data.size());
  XXH3_64bits_update(hash_, data.data(), data.size());
  bytes_received_ += data.size();
  return absl::OkStatus();
}

absl::Status BlockWriter::Commit() {
  if (entry_ == nullptr) {
    return absl::FailedPreconditionError("block write already finished");
  }
  std::unique_ptr<BlockStoreEntry> entry = std::move(entry_);
  if (bytes_received_ != info_.total_bytes) {
    store_->Abandon(std::move(entry));
    return absl::DataLossError(
        absl::StrCat("put of block ", info_.key.ToHex(), " ended after ",
                     bytes_received_, " of ", info_.total_bytes, " bytes"));
  }
  absl::Status status =
      CheckBlockMatches(info_, entry->bytes(), XXH3_64bits_digest(hash_));
  if (!status.ok()) {
    store_->Abandon(std::move(entry));
    return status;
  }
  store_->Publish(std::move(entry));
  return absl::OkStatus();
}

// --- BlockStore ---

BlockStore::BlockStore(const Options& options) : options_(options) {
  stats_.memory_budget_bytes = options.memory_budget_bytes;
}

BlockStore::~BlockStore() = default;

absl::StatusOr<std::unique_ptr<BlockWriter>> BlockStore::BeginPut(
    const BlockInfo& info) {
  absl::Status refusal;
  if (info.token_count == 0) {
    refusal = absl::InvalidArgumentError("put has token_count 0");
  } else if (info.total_bytes < kKvBlockHeaderBytes) {
    refusal = absl::InvalidArgumentError(
        absl::StrCat("put has total_bytes ", info.total_bytes,
                     ", less than a block header"));
  } else if (info.total_bytes > options_.max_block_bytes) {
    refusal = absl::InvalidArgumentError(absl::StrCat(
        "put has total_bytes ", info.total_bytes,
        ", above the node's max_block_bytes ", options_.max_block_bytes));
  } else if (info.total_bytes > options_.memory_budget_bytes) {
    refusal = absl::ResourceExhaustedError(
        absl::StrCat("block of ", info.total_bytes,
                     " bytes exceeds the node's memory budget of ",
                     options_.memory_budget_bytes));
  }
  {
    absl::MutexLock lock(&mu_);
    if (refusal.ok() && blocks_.contains(info.key)) {
      ++stats_.duplicate_puts;
      return absl::AlreadyExistsError(
          absl::StrCat("block ", info.key.ToHex(), " is already stored"));
    }
    if (refusal.ok()) refusal = Reserve(info.total_bytes);
    if (!refusal.ok()) {
      ++stats_.failed_puts;
      return refusal;
    }
  }
  auto entry = std::make_unique<BlockStoreEntry>();
  entry->info = info;
  entry->data = std::make_unique_for_overwrite<char[]>(info.total_bytes);
  return std::unique_ptr<BlockWriter>(new BlockWriter(this, std::move(entry)));
}

absl::Status BlockStore::Reserve(uint64_t bytes) {
  // Pinned blocks and writes in progress cannot make room.
  const uint64_t held =
      stats_.bytes_used - (stats_.bytes_stored - pinned_stored_bytes_);
  if (held + bytes > options_.memory_budget_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no room for a block of ", bytes, " bytes: ", held,
                     " of the ", options_.memory_budget_bytes,
                     " budget bytes are held by transfers in progress"));
  }
  while (stats_.bytes_used + bytes > options_.memory_budget_bytes) {
    EvictOldest();
  }
  stats_.bytes_used += bytes;
  return absl::OkStatus();
}

void BlockStore::EvictOldest() {
  // Pinned blocks sit near the back, since a Get moves its block there.
  auto it = lru_.begin();
  while ((*it)->pins > 0) ++it;
  Entry* entry = *it;
  lru_.erase(it);
  const uint64_t size = entry->info.total_bytes;
  stats_.bytes_used -= size;
  stats_.bytes_stored -= size;
  --stats_.blocks_stored;
  ++stats_.evictions;
  const BlockKey key = entry->info.key;
  blocks_.erase(key);
}

void BlockStore::Publish(std::unique_ptr<Entry> entry) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = blocks_.try_emplace(entry->info.key);
  const uint64_t size = entry->info.total_bytes;
  if (!inserted) {
    // Another writer stored the same key first; keep its block.
    stats_.bytes_used -= size;
    ++stats_.duplicate_puts;
    return;
  }
  it->second = std::move(entry);
  Entry* stored = it->second.get();
  stored->lru_pos = lru_.insert(lru_.end(), stored);
  stats_.bytes_stored += size;
  ++stats_.blocks_stored;
  ++stats_.puts;
}

void BlockStore::Abandon(std::unique_ptr<Entry> entry) {
  absl::MutexLock lock(&mu_);
  stats_.bytes_used -= entry->info.total_bytes;
  ++stats_.failed_puts;
}

absl::StatusOr<PinnedBlock> BlockStore::Get(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  ++stats_.gets;
  auto it = blocks_.find(key);
  if (it == blocks_.end()) {
    ++stats_.misses;
    return absl::NotFoundError(
        absl::StrCat("block ", key.ToHex(), " is not stored"));
  }
  ++stats_.hits;
  Entry* entry = it->second.get();
  if (entry->pins++ == 0) pinned_stored_bytes_ += entry->info.total_bytes;
  lru_.splice(lru_.end(), lru_, entry->lru_pos);  // now the most recent
  return PinnedBlock(this, entry);
}

void BlockStore::Unpin(Entry* entry) {
  std::unique_ptr<Entry> freed;  // destroyed after the lock is released
  absl::MutexLock lock(&mu_);
  if (--entry->pins > 0) return;
  if (entry->removed) {
    stats_.bytes_used -= entry->info.total_bytes;
    freed.reset(entry);
    return;
  }
  pinned_stored_bytes_ -= entry->info.total_bytes;
}

std::vector<bool> BlockStore::Contains(absl::Span<const BlockKey> keys) const {
  std::vector<bool> present(keys.size());
  absl::ReaderMutexLock lock(&mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    present[i] = blocks_.contains(keys[i]);
  }
  return present;
}

uint64_t BlockStore::Remove(absl::Span<const BlockKey> keys) {
  std::vector<std::unique_ptr<Entry>> freed;  // destroyed after unlocking
  uint64_t removed = 0;
  absl::MutexLock lock(&mu_);
  for (const BlockKey& key : keys) {
    auto it = blocks_.find(key);
    if (it == blocks_.end()) continue;
    std::unique_ptr<Entry> entry = std::move(it->second);
    blocks_.erase(it);
    const uint64_t size = entry->info.total_bytes;
    stats_.bytes_stored -= size;
    --stats_.blocks_stored;
    ++stats_.removals;
    ++removed;
    lru_.erase(entry->lru_pos);
    if (entry->pins > 0) {
      pinned_stored_bytes_ -= size;
      entry->removed = true;
      entry.release();  // owned by its pins now; see Unpin
      continue;
    }
    stats_.bytes_used -= size;
    freed.push_back(std::move(entry));
  }
  return removed;
}

BlockStoreStats BlockStore::Stats() const {
  absl::ReaderMutexLock lock(&mu_);
  return stats_;
}

}  // namespace tandem
