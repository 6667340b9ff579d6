// The scheduler's block import: handoff blocks into a sequence's reserved
// cache blocks, and the recomputation of KV that a preempted sequence lost.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "decode_node/scheduler.h"
#include "engine/kv_block_codec.h"
#include "engine/status_macros.h"

namespace tandem {
namespace {

// A fetch error with the block named. A store that calls our request
// malformed broke the protocol: that is not the client's bad input.
absl::Status FetchError(const absl::Status& status, size_t index,
                        const BlockKey& key) {
  const std::string message = absl::StrCat(
      "handoff block ", index, " (key ", key.ToHex(), "): ", status.message());
  if (absl::IsInvalidArgument(status)) {
    return absl::FailedPreconditionError(message);
  }
  return absl::Status(status.code(), message);
}

// An import error with the block named: FailedPrecondition for a block of
// another model, layout or key, DataLoss for corrupted bytes, and
// FailedPrecondition for bytes that are no block at all.
absl::Status ImportError(const absl::Status& status, size_t index) {
  const std::string message =
      absl::StrCat("handoff block ", index, ": ", status.message());
  if (absl::IsDataLoss(status)) return absl::DataLossError(message);
  return absl::FailedPreconditionError(message);
}

absl::Status CheckTokenCount(const BlockMetadata& metadata, size_t index,
                             int expected) {
  if (metadata.token_count == expected) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("handoff block ", index, " holds ", metadata.token_count,
                   " tokens, expected ", expected));
}

}  // namespace

absl::Status Scheduler::ImportHandoff(
    Sequence* seq, std::vector<absl::StatusOr<std::string>> blocks) {
  const KvHandoff& handoff = seq->input().handoff;
  const size_t full = handoff.full_blocks.size();
  const int block_size = options_.block_size;
  const KvLayout& layout = cache_->layout();
  // All or nothing: on error the sequence holds no blocks.
  auto fail = [&](absl::Status status) {
    ReleaseReserved(seq);
    if (cache_->HasSequence(seq->id())) {
      cache_->RemoveSequence(seq->id()).IgnoreError();
    }
    return status;
  };
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i].ok()) continue;
    const BlockKey& key =
        i < full ? handoff.full_blocks[i] : *handoff.partial_block;
    return fail(FetchError(blocks[i].status(), i, key));
  }
  for (size_t i = 0; i < full; ++i) {
    BlockMetadata metadata;
    absl::Status imported = ImportBlock(
        *blocks[i], layout, model_.fingerprint(), &handoff.full_blocks[i],
        cache_->BlockData(seq->reserved[i]), &metadata);
    if (!imported.ok()) return fail(ImportError(imported, i));
    absl::Status counted = CheckTokenCount(metadata, i, block_size);
    if (!counted.ok()) return fail(counted);
  }
  // The full blocks join as they are; the partial block and the slots of
  // generated tokens are appended from the rest of the reservation.
  absl::Status joined = cache_->AddSequence(seq->id());
  if (joined.ok()) {
    joined = cache_->AppendFullBlocks(
        seq->id(), absl::MakeConstSpan(seq->reserved).first(full));
  }
  if (!joined.ok()) return fail(absl::InternalError(joined.message()));
  seq->reserved.erase(seq->reserved.begin(), seq->reserved.begin() + full);
  ReleaseReserved(seq);
  const int rest = seq->CacheTokens() - static_cast<int>(full) * block_size;
  if (rest > 0) {
    absl::Status appended = cache_->Append(seq->id(), rest);
    if (!appended.ok()) return fail(absl::InternalError(appended.message()));
  }
  if (handoff.partial_block.has_value()) {
    const BlockId block = cache_->BlockTable(seq->id())[full];
    BlockMetadata metadata;
    absl::Status imported = ImportBlock(
        *blocks[full], layout, model_.fingerprint(), &*handoff.partial_block,
        cache_->BlockData(block), &metadata);
    if (!imported.ok()) return fail(ImportError(imported, full));
    absl::Status counted = CheckTokenCount(
        metadata, full, seq->input().prompt.size() % block_size);
    if (!counted.ok()) return fail(counted);
  }
  // A re-admitted sequence recomputes the KV of its generated tokens but
  // the newest (which the next decode step feeds).
  const std::vector<int32_t>& generated = seq->generated();
  if (generated.size() > 1) {
    absl::Status computed = PrefillTokens(
        seq, absl::MakeConstSpan(generated).first(generated.size() - 1));
    if (!computed.ok()) return fail(computed);
  }
  return absl::OkStatus();
}

absl::Status Scheduler::RecomputeAll(Sequence* seq) {
  std::vector<int32_t> tokens = seq->input().prompt;
  const std::vector<int32_t>& generated = seq->generated();
  tokens.insert(tokens.end(), generated.begin(), generated.end() - 1);
  absl::Status status = cache_->AddSequence(seq->id());
  if (status.ok()) status = cache_->Append(seq->id(), tokens.size());
  if (status.ok()) status = PrefillTokens(seq, tokens);
  if (!status.ok() && cache_->HasSequence(seq->id())) {
    cache_->RemoveSequence(seq->id()).IgnoreError();
  }
  return status;
}

// `tokens` occupy the sequence's last tokens.size() slots, already
// appended.
absl::Status Scheduler::PrefillTokens(Sequence* seq,
                                      absl::Span<const int32_t> tokens) {
  const Model::Chunk chunk{seq->id(), tokens};
  absl::Status status = model_.Prefill(
      {&chunk, 1}, *cache_, Model::Logits::kLastPerSequence, &logits_);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("recomputing the KV cache failed: ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace tandem
