// The scheduler's fetch threads and their jobs (handoff reads, prefix
// reads, block writes), and its colocated prompts: importing a prompt's
// stored prefix, computing the rest in chunks under the per-step token
// budget, sampling the first token and publishing the computed blocks.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "decode_node/scheduler.h"
#include "engine/kv_block_codec.h"
#include "engine/status_macros.h"
#include "glog/logging.h"

namespace tandem {
namespace {

void Erase(std::vector<Sequence*>& list, Sequence* seq) {
  list.erase(std::remove(list.begin(), list.end(), seq), list.end());
}

}  // namespace

void Scheduler::FetchLoop() {
  for (;;) {
    FetchJob job;
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_ && fetch_jobs_.empty()) fetch_.Wait(&mu_);
      if (stopping_) return;
      job = std::move(fetch_jobs_.front());
      fetch_jobs_.pop_front();
    }
    std::optional<FetchResult> result = RunFetchJob(job);
    if (!result.has_value()) continue;
    absl::MutexLock lock(&mu_);
    fetched_.push_back(*std::move(result));
    work_.Signal();
  }
}

void Scheduler::StartFetch(Sequence* seq) {
  const KvHandoff& handoff = seq->input().handoff;
  FetchJob job;
  job.id = seq->id();
  job.epoch = seq->fetch_epoch;
  job.keys = handoff.full_blocks;
  if (seq->input().compute_prompt) {
    job.kind = FetchJob::Kind::kPrefix;
  } else if (handoff.partial_block.has_value()) {
    job.keys.push_back(*handoff.partial_block);
  }
  QueueFetchJob(std::move(job));
}

void Scheduler::QueueFetchJob(FetchJob job) {
  if (options_.fetch_threads == 0) {
    std::optional<FetchResult> result = RunFetchJob(job);
    if (result.has_value()) Join(*std::move(result));
    return;
  }
  absl::MutexLock lock(&mu_);
  fetch_jobs_.push_back(std::move(job));
  fetch_.Signal();
}

std::optional<Scheduler::FetchResult> Scheduler::RunFetchJob(
    const FetchJob& job) {
  switch (job.kind) {
    case FetchJob::Kind::kHandoff:
      return FetchResult{job.id, job.epoch, blocks_.GetMany(job.keys)};
    case FetchJob::Kind::kPrefix: {
      // A store that cannot answer leaves the whole prompt to compute.
      absl::StatusOr<size_t> stored = blocks_.LongestPrefix(job.keys);
      if (!stored.ok()) {
        VLOG(1) << "prefix lookup failed seq=" << job.id
                << " status=" << stored.status();
      }
      const size_t count = std::min(stored.value_or(0), job.keys.size());
      if (count == 0) return FetchResult{job.id, job.epoch, {}};
      return FetchResult{
          job.id, job.epoch,
          blocks_.GetMany(absl::MakeConstSpan(job.keys).first(count))};
    }
    case FetchJob::Kind::kPublish: {
      const std::vector<absl::Status> written = blocks_.PutMany(job.blocks);
      for (size_t i = 0; i < written.size(); ++i) {
        if (written[i].ok()) continue;
        LOG(WARNING) << "block publish failed req=" << job.request_id
                     << " seq=" << job.id << " block=" << i
                     << " status=" << written[i];
        break;
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void Scheduler::StartPrompt(Sequence* seq,
                            std::vector<absl::StatusOr<std::string>> blocks) {
  seq->run = seq->CacheRun();
  seq->computed = 0;
  seq->imported_tokens = 0;
  const absl::Status status = ImportPrefix(seq, std::move(blocks));
  if (!status.ok()) {
    ReleaseReserved(seq);
    if (cache_->HasSequence(seq->id())) {
      cache_->RemoveSequence(seq->id()).IgnoreError();
    }
    seq->state = Sequence::State::kWaiting;  // holds no blocks now
    Fail(seq, status);
    return;
  }
  seq->state = Sequence::State::kPrefilling;
  prefilling_.push_back(seq);
}

absl::Status Scheduler::ImportPrefix(
    Sequence* seq, std::vector<absl::StatusOr<std::string>> blocks) {
  const int block_size = options_.block_size;
  const std::vector<BlockKey>& keys = seq->input().handoff.full_blocks;
  // The last run token is always computed: the first token needs its
  // logits, and a decode step needs the newest token fed, not stored.
  const size_t limit = std::min(
      {blocks.size(), keys.size(), (seq->run.size() - 1) / block_size});
  size_t imported = 0;
  for (; imported < limit; ++imported) {
    if (!blocks[imported].ok()) break;
    BlockMetadata metadata;
    const absl::Status status = ImportBlock(
        *blocks[imported], cache_->layout(), model_.fingerprint(),
        &keys[imported], cache_->BlockData(seq->reserved[imported]), &metadata);
    if (!status.ok() || metadata.token_count != block_size) {
      VLOG(1) << "stored block unusable req=" << seq->input().request_id
              << " seq=" << seq->id() << " block=" << imported
              << " status=" << status;
      break;
    }
  }
  TANDEM_RETURN_IF_ERROR(cache_->AddSequence(seq->id()));
  if (imported == 0) return absl::OkStatus();
  absl::Status joined = cache_->AppendFullBlocks(
      seq->id(), absl::MakeConstSpan(seq->reserved).first(imported));
  if (!joined.ok()) return absl::InternalError(joined.message());
  seq->reserved.erase(seq->reserved.begin(), seq->reserved.begin() + imported);
  seq->computed = seq->imported_tokens = imported * block_size;
  return absl::OkStatus();
}

void Scheduler::PrefillChunks() {
  if (prefilling_.empty()) return;
  int budget = options_.max_prefill_tokens_per_step;
  std::vector<Sequence*> planned;
  std::vector<Model::Chunk> chunks;
  std::vector<int> lengths;
  const std::vector<Sequence*> prefilling = prefilling_;
  for (Sequence* seq : prefilling) {
    if (budget == 0) break;
    const int length =
        std::min(static_cast<int>(seq->run.size()) - seq->computed, budget);
    const absl::Status grown = GrowForChunk(seq, length);
    if (!grown.ok()) {
      Fail(seq, grown);
      continue;
    }
    planned.push_back(seq);
    lengths.push_back(length);
    chunks.push_back({seq->id(), absl::MakeConstSpan(seq->run).subspan(
                                     seq->computed, length)});
    budget -= length;
  }
  if (chunks.empty()) return;
  const absl::Status status = model_.Prefill(
      chunks, *cache_, Model::Logits::kLastPerSequence, &logits_);
  if (!status.ok()) {
    for (Sequence* seq : planned) {
      Fail(seq, absl::InternalError(
                    absl::StrCat("prompt prefill failed: ", status.message())));
    }
    return;
  }
  std::vector<Sequence*> done;
  std::vector<size_t> rows;
  for (size_t i = 0; i < planned.size(); ++i) {
    Sequence* seq = planned[i];
    seq->computed += lengths[i];
    if (seq->computed < static_cast<int>(seq->run.size())) continue;
    done.push_back(seq);
    rows.push_back(i);
  }
  VLOG(1) << "prefill step chunks=" << chunks.size()
          << " tokens=" << options_.max_prefill_tokens_per_step - budget
          << " prompts_done=" << done.size();
  EndPrompts(done, rows);
}

absl::Status Scheduler::GrowForChunk(Sequence* seq, int tokens) {
  absl::StatusOr<int> needed = cache_->BlocksNeededToAppend(seq->id(), tokens);
  if (!needed.ok()) return absl::InternalError(needed.status().message());
  // The blocks were reserved at admission; hand them back to the cache
  // just before it takes them.
  for (int i = 0; i < *needed && !seq->reserved.empty(); ++i) {
    cache_->ReleaseBlock(seq->reserved.back()).IgnoreError();
    seq->reserved.pop_back();
  }
  const absl::Status appended = cache_->Append(seq->id(), tokens);
  if (!appended.ok()) {
    return absl::InternalError(
        absl::StrCat("no KV slots for the prompt: ", appended.message()));
  }
  return absl::OkStatus();
}

void Scheduler::EndPrompts(absl::Span<Sequence* const> done,
                           absl::Span<const size_t> rows) {
  // Sequences without a token yet sample their first from their row.
  const int vocab = model_.config().vocab_size;
  std::vector<Sequence*> first;
  std::vector<SequenceSamplingState*> states;
  sample_logits_.clear();
  for (size_t i = 0; i < done.size(); ++i) {
    if (!done[i]->generated().empty()) continue;
    first.push_back(done[i]);
    states.push_back(&done[i]->sampling());
    const float* row = logits_.data() + rows[i] * vocab;
    sample_logits_.insert(sample_logits_.end(), row, row + vocab);
  }
  absl::StatusOr<std::vector<SampledToken>> sampled =
      std::vector<SampledToken>();
  if (!first.empty()) {
    sampled = sampler_.Sample(absl::MakeSpan(sample_logits_), vocab, states);
  }
  size_t next = 0;
  for (Sequence* seq : done) {
    if (!seq->generated().empty()) {
      JoinBatch(seq, std::nullopt);
    } else if (!sampled.ok()) {
      Fail(seq, absl::InternalError(absl::StrCat("sampling failed: ",
                                                 sampled.status().message())));
    } else {
      JoinBatch(seq, std::move((*sampled)[next++]));
    }
  }
}

void Scheduler::JoinBatch(Sequence* seq, std::optional<SampledToken> first) {
  ReleaseReserved(seq);  // none should be left
  Erase(prefilling_, seq);
  seq->state = Sequence::State::kRunning;
  running_.push_back(seq);
  if (!first.has_value()) {
    seq->run.clear();
    return;
  }
  if (options_.reuse_store) Publish(seq);
  seq->run.clear();
  seq->observer().OnPromptComputed(seq->imported_tokens);
  absl::StatusOr<bool> finished = seq->AcceptSampled(*std::move(first));
  if (!finished.ok()) {
    Fail(seq, finished.status());
  } else if (*finished) {
    Finish(seq);
  }
}

void Scheduler::Publish(Sequence* seq) {
  const std::vector<BlockKey>& keys = seq->input().handoff.full_blocks;
  const absl::Span<const BlockId> table = cache_->BlockTable(seq->id());
  FetchJob job;
  job.kind = FetchJob::Kind::kPublish;
  job.id = seq->id();
  job.request_id = seq->input().request_id;
  for (size_t i = seq->imported_tokens / options_.block_size; i < keys.size();
       ++i) {
    BlockMetadata metadata;
    metadata.model = model_.fingerprint();
    metadata.token_count = options_.block_size;
    metadata.key = keys[i];
    absl::StatusOr<std::string> block =
        ExportBlock(cache_->layout(), cache_->BlockData(table[i]), metadata);
    if (!block.ok()) {
      LOG(WARNING) << "block export failed req=" << job.request_id
                   << " seq=" << job.id << " block=" << i
                   << " status=" << block.status();
      return;
    }
    job.blocks.push_back(*std::move(block));
  }
  if (!job.blocks.empty()) QueueFetchJob(std::move(job));
}

int64_t Scheduler::QueuedPromptTokens() const {
  int64_t tokens = 0;
  for (const Sequence* seq : waiting_) {
    if (seq->input().compute_prompt) tokens += seq->CacheTokens();
  }
  for (const Sequence* seq : prefilling_) {
    tokens += static_cast<int64_t>(seq->run.size()) - seq->computed;
  }
  return tokens;
}

}  // namespace tandem
