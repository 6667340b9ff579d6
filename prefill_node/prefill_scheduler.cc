#include "prefill_node/prefill_scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tandem {
namespace {

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

}  // namespace

absl::Status ValidatePrefillSchedulerLimits(
    const PrefillSchedulerLimits& limits) {
  if (limits.block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be at least 1, got ", limits.block_size));
  }
  if (limits.max_batch_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch_tokens must be at least 1, got ", limits.max_batch_tokens));
  }
  if (limits.max_batch_sequences < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_sequences must be at least 1, got ",
                     limits.max_batch_sequences));
  }
  return absl::OkStatus();
}

PrefillScheduler::PrefillScheduler(const PrefillSchedulerLimits& limits)
    : limits_(limits) {}

int PrefillScheduler::ComputeFrom(int prompt_tokens, int imported_blocks,
                                  int block_size) {
  return std::min(imported_blocks * block_size, prompt_tokens - 1);
}

int PrefillScheduler::BlocksFor(int prompt_tokens) const {
  return CeilDiv(prompt_tokens, limits_.block_size);
}

absl::Status PrefillScheduler::Enqueue(SequenceId seq, int prompt_tokens,
                                       int imported_blocks) {
  auto same = [seq](const Prompt& p) { return p.seq == seq; };
  if (std::any_of(queued_.begin(), queued_.end(), same) ||
      std::any_of(admitted_.begin(), admitted_.end(), same)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", seq, " is already scheduled"));
  }
  if (prompt_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", seq, " has no prompt tokens"));
  }
  if (imported_blocks < 0 ||
      imported_blocks > prompt_tokens / limits_.block_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", seq, " imports ", imported_blocks,
                     " blocks of a ", prompt_tokens, "-token prompt"));
  }
  queued_.push_back(Prompt{
      .seq = seq,
      .tokens = prompt_tokens,
      .imported_blocks = imported_blocks,
      .next = ComputeFrom(prompt_tokens, imported_blocks, limits_.block_size)});
  return absl::OkStatus();
}

std::vector<SequenceId> PrefillScheduler::Admit(int free_blocks) {
  std::vector<SequenceId> admitted;
  int available = free_blocks - reserved_blocks();
  while (!queued_.empty()) {
    const int needed = BlocksFor(queued_.front().tokens);
    if (needed > available) break;
    available -= needed;
    admitted.push_back(queued_.front().seq);
    admitted_.push_back(queued_.front());
    queued_.pop_front();
  }
  return admitted;
}

std::vector<ScheduledChunk> PrefillScheduler::PlanStep() const {
  std::vector<ScheduledChunk> plan;
  int budget = limits_.max_batch_tokens;
  for (const Prompt& prompt : admitted_) {
    if (budget == 0 ||
        static_cast<int>(plan.size()) == limits_.max_batch_sequences) {
      break;
    }
    const int length = std::min(prompt.tokens - prompt.next, budget);
    budget -= length;
    plan.push_back({.seq = prompt.seq,
                    .begin = prompt.next,
                    .length = length,
                    .last = prompt.next + length == prompt.tokens});
  }
  return plan;
}

void PrefillScheduler::Complete(absl::Span<const ScheduledChunk> chunks) {
  for (const ScheduledChunk& chunk : chunks) {
    auto it =
        std::find_if(admitted_.begin(), admitted_.end(),
                     [&chunk](const Prompt& p) { return p.seq == chunk.seq; });
    if (it == admitted_.end()) continue;
    it->next = std::max(it->next, chunk.begin + chunk.length);
    if (it->next >= it->tokens) admitted_.erase(it);
  }
}

bool PrefillScheduler::Remove(SequenceId seq) {
  auto same = [seq](const Prompt& p) { return p.seq == seq; };
  auto queued = std::find_if(queued_.begin(), queued_.end(), same);
  if (queued != queued_.end()) {
    queued_.erase(queued);
    return true;
  }
  auto admitted = std::find_if(admitted_.begin(), admitted_.end(), same);
  if (admitted != admitted_.end()) {
    admitted_.erase(admitted);
    return true;
  }
  return false;
}

int64_t PrefillScheduler::pending_tokens() const {
  int64_t tokens = 0;
  for (const Prompt& p : queued_) tokens += p.tokens - p.next;
  for (const Prompt& p : admitted_) tokens += p.tokens - p.next;
  return tokens;
}

int PrefillScheduler::HeldBlocks(const Prompt& prompt) const {
  const int slots =
      std::max(prompt.imported_blocks * limits_.block_size, prompt.next);
  return CeilDiv(slots, limits_.block_size);
}

int PrefillScheduler::reserved_blocks() const {
  int reserved = 0;
  for (const Prompt& p : admitted_)
    reserved += BlocksFor(p.tokens) - HeldBlocks(p);
  return reserved;
}

}  // namespace tandem
