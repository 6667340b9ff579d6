#include "prefill_node/prefill_engine.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/kv_block_codec.h"
#include "engine/status_macros.h"
#include "glog/logging.h"

namespace tandem {
namespace {

absl::Status Internal(const absl::Status& status, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", status.ToString()));
}

FinishedPrompt Failed(SequenceId seq, const absl::Status& status,
                      absl::string_view what) {
  FinishedPrompt finished;
  finished.seq = seq;
  finished.result = Internal(status, what);
  return finished;
}

}  // namespace

absl::Status CheckStoredBlock(absl::string_view bytes, const ServedModel& model,
                              const KvLayout& layout, const BlockKey& key) {
  TANDEM_ASSIGN_OR_RETURN(KvBlockHeader header, VerifyBlock(bytes));
  if (header.layout != layout) {
    return absl::FailedPreconditionError(
        absl::StrCat("block ", key.ToHex(), " has another KV layout"));
  }
  if (header.metadata.model != model.fingerprint) {
    return absl::FailedPreconditionError(
        absl::StrCat("block ", key.ToHex(), " is of another model"));
  }
  if (header.metadata.key != key) {
    return absl::FailedPreconditionError(absl::StrCat(
        "block stored under ", key.ToHex(), " carries another key"));
  }
  if (header.metadata.token_count != layout.block_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("block ", key.ToHex(), " holds ",
                     header.metadata.token_count, " tokens, not a full block"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PrefillEngine>> PrefillEngine::Create(
    std::unique_ptr<Model> model, size_t kv_cache_bytes,
    const PrefillSchedulerLimits& limits) {
  TANDEM_RETURN_IF_ERROR(ValidatePrefillSchedulerLimits(limits));
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<PagedKvCache> cache,
      PagedKvCache::Create(model->kv_layout(limits.block_size),
                           kv_cache_bytes));
  return std::unique_ptr<PrefillEngine>(
      new PrefillEngine(std::move(model), std::move(cache), limits));
}

PrefillEngine::PrefillEngine(std::unique_ptr<Model> model,
                             std::unique_ptr<PagedKvCache> cache,
                             const PrefillSchedulerLimits& limits)
    : model_(std::move(model)),
      cache_(std::move(cache)),
      served_{model_->config(), model_->fingerprint(), limits.block_size},
      scheduler_(limits) {}

PrefillEngine::~PrefillEngine() = default;

absl::Status PrefillEngine::CheckFits(int prompt_tokens) const {
  const int needed = scheduler_.BlocksFor(prompt_tokens);
  if (needed > cache_->num_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a ", prompt_tokens, "-token prompt needs ", needed,
        " KV blocks; this worker's cache holds ", cache_->num_blocks()));
  }
  return absl::OkStatus();
}

absl::Status PrefillEngine::Add(FetchedPrompt prompt) {
  const PrefillJob& job = *prompt.job;
  TANDEM_RETURN_IF_ERROR(CheckFits(job.prompt.size()));
  if (prompt.blocks.size() > job.block_keys.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", prompt.seq, " has ", prompt.blocks.size(),
                     " stored blocks for ", job.block_keys.size(), " keys"));
  }
  if (prompts_.contains(prompt.seq)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", prompt.seq, " is already in the engine"));
  }
  const int imported = prompt.blocks.size();
  TANDEM_RETURN_IF_ERROR(
      scheduler_.Enqueue(prompt.seq, job.prompt.size(), imported));
  stalled_ = false;
  prompts_[prompt.seq] =
      Prompt{.job = std::move(prompt.job),
             .fetched = std::move(prompt.blocks),
             .imported_blocks = imported,
             .computed_from = PrefillScheduler::ComputeFrom(
                 job.prompt.size(), imported, served_.block_size),
             .accepted = prompt.accepted,
             .queue_time = absl::ZeroDuration()};
  return absl::OkStatus();
}

bool PrefillEngine::Remove(SequenceId seq) {
  if (!prompts_.contains(seq)) return false;
  Drop(seq);
  stalled_ = false;
  return true;
}

void PrefillEngine::Drop(SequenceId seq) {
  scheduler_.Remove(seq);
  if (cache_->HasSequence(seq)) cache_->RemoveSequence(seq).IgnoreError();
  prompts_.erase(seq);
}

std::vector<FinishedPrompt> PrefillEngine::Step() {
  std::vector<FinishedPrompt> finished;
  last_step_tokens_ = 0;
  const absl::Time now = absl::Now();
  const std::vector<SequenceId> admitted =
      scheduler_.Admit(cache_->num_free_blocks());
  for (SequenceId seq : admitted) {
    Prompt& prompt = prompts_.at(seq);
    prompt.queue_time = std::max(absl::ZeroDuration(), now - prompt.accepted);
    absl::Status status = Import(seq, prompt);
    if (!status.ok()) {
      Drop(seq);
      finished.push_back(Failed(seq, status, "importing stored blocks"));
    }
  }
  const std::vector<ScheduledChunk> plan = scheduler_.PlanStep();
  stalled_ = admitted.empty() && plan.empty() && !idle();
  LOG_IF(ERROR, stalled_) << "prefill engine stalled queued="
                          << scheduler_.num_queued()
                          << " free_blocks=" << cache_->num_free_blocks();
  if (plan.empty()) return finished;
  if (absl::Status status = Compute(plan); !status.ok()) {
    for (const ScheduledChunk& chunk : plan) {
      Drop(chunk.seq);
      finished.push_back(Failed(chunk.seq, status, "prefill step"));
    }
    return finished;
  }
  scheduler_.Complete(plan);
  for (const ScheduledChunk& chunk : plan) last_step_tokens_ += chunk.length;
  std::vector<size_t> rows;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (plan[i].last) rows.push_back(i);
  }
  if (!rows.empty()) FinishPrompts(plan, rows, finished);
  VLOG(1) << "prefill step chunks=" << plan.size()
          << " completed=" << rows.size()
          << " free_blocks=" << cache_->num_free_blocks();
  return finished;
}

absl::Status PrefillEngine::Import(SequenceId seq, Prompt& prompt) {
  TANDEM_RETURN_IF_ERROR(cache_->AddSequence(seq));
  std::vector<BlockId> blocks;
  absl::Status status;
  for (size_t i = 0; i < prompt.fetched.size() && status.ok(); ++i) {
    absl::StatusOr<BlockId> block = cache_->AllocateBlock();
    if (!block.ok()) {
      status = block.status();
      break;
    }
    blocks.push_back(*block);
    status = ImportBlock(prompt.fetched[i], cache_->layout(),
                         served_.fingerprint, &prompt.job->block_keys[i],
                         cache_->BlockData(*block), nullptr);
  }
  if (status.ok()) status = cache_->AppendFullBlocks(seq, blocks);
  if (!status.ok()) {
    for (BlockId block : blocks) cache_->ReleaseBlock(block).IgnoreError();
    return status;
  }
  prompt.fetched.clear();
  prompt.fetched.shrink_to_fit();
  return absl::OkStatus();
}

absl::Status PrefillEngine::Compute(absl::Span<const ScheduledChunk> plan) {
  std::vector<Model::Chunk> chunks;
  chunks.reserve(plan.size());
  for (const ScheduledChunk& chunk : plan) {
    const int missing =
        chunk.begin + chunk.length - cache_->NumTokens(chunk.seq);
    if (missing > 0) TANDEM_RETURN_IF_ERROR(cache_->Append(chunk.seq, missing));
    const std::vector<int32_t>& prompt = prompts_.at(chunk.seq).job->prompt;
    chunks.push_back({chunk.seq, absl::MakeConstSpan(prompt).subspan(
                                     chunk.begin, chunk.length)});
  }
  return model_->Prefill(chunks, *cache_, Model::Logits::kLastPerSequence,
                         &logits_);
}

void PrefillEngine::FinishPrompts(absl::Span<const ScheduledChunk> plan,
                                  absl::Span<const size_t> rows,
                                  std::vector<FinishedPrompt>& out) {
  std::vector<SequenceId> seqs;
  for (size_t row : rows) seqs.push_back(plan[row].seq);
  absl::StatusOr<std::vector<FirstToken>> first = SampleFirstTokens(seqs, rows);
  for (size_t r = 0; r < seqs.size(); ++r) {
    FinishedPrompt done;
    done.seq = seqs[r];
    if (first.ok()) {
      done = Finish(seqs[r], std::move((*first)[r]));
    } else {
      done.result = Internal(first.status(), "sampling");
    }
    Drop(seqs[r]);
    out.push_back(std::move(done));
  }
}

absl::StatusOr<std::vector<PrefillEngine::FirstToken>>
PrefillEngine::SampleFirstTokens(absl::Span<const SequenceId> seqs,
                                 absl::Span<const size_t> rows) {
  // Gather the rows to sample: [seqs, vocab].
  const size_t vocab = served_.config.vocab_size;
  sample_logits_.resize(seqs.size() * vocab);
  std::vector<SequenceSamplingState> states;
  states.reserve(seqs.size());
  for (size_t r = 0; r < seqs.size(); ++r) {
    std::memcpy(sample_logits_.data() + r * vocab,
                logits_.data() + rows[r] * vocab, vocab * sizeof(float));
    const PrefillJob& job = *prompts_.at(seqs[r]).job;
    TANDEM_ASSIGN_OR_RETURN(SequenceSamplingState state,
                            SequenceSamplingState::Create(job.sampling));
    TANDEM_RETURN_IF_ERROR(state.RecordPromptTokens(job.prompt));
    states.push_back(std::move(state));
  }
  std::vector<SequenceSamplingState*> pointers;
  for (SequenceSamplingState& state : states) pointers.push_back(&state);
  TANDEM_ASSIGN_OR_RETURN(
      std::vector<SampledToken> sampled,
      sampler_.Sample(absl::MakeSpan(sample_logits_), vocab, pointers));
  std::vector<FirstToken> first;
  for (size_t r = 0; r < seqs.size(); ++r) {
    first.push_back({std::move(sampled[r]), states[r].next_draw()});
  }
  return first;
}

FinishedPrompt PrefillEngine::Finish(SequenceId seq, FirstToken first) {
  FinishedPrompt done;
  done.seq = seq;
  const Prompt& prompt = prompts_.at(seq);
  absl::StatusOr<std::vector<std::string>> blocks =
      ExportNewBlocks(seq, prompt);
  if (!blocks.ok()) {
    done.result = Internal(blocks.status(), "exporting blocks");
    return done;
  }
  const PrefillJob& job = *prompt.job;
  PrefillResult result;
  result.first = std::move(first.token);
  result.handoff = PrefillHandoff{
      .model = served_.fingerprint,
      .block_size = served_.block_size,
      .prompt_tokens = static_cast<int>(job.prompt.size()),
      .full_blocks = job.block_keys,
      .partial_block = PartialBlockKey(served_.fingerprint, job.block_keys,
                                       job.prompt, served_.block_size),
      .next_draw = first.next_draw};
  result.cached_tokens = prompt.computed_from;
  result.computed_tokens = job.prompt.size() - prompt.computed_from;
  result.queue_time = prompt.queue_time;
  done.result = std::move(result);
  done.new_blocks = *std::move(blocks);
  return done;
}

absl::StatusOr<std::vector<std::string>> PrefillEngine::ExportNewBlocks(
    SequenceId seq, const Prompt& prompt) {
  const PrefillJob& job = *prompt.job;
  const absl::Span<const BlockId> table = cache_->BlockTable(seq);
  const int full = job.block_keys.size();
  std::vector<std::string> blocks;
  for (int b = prompt.imported_blocks; b < full; ++b) {
    TANDEM_ASSIGN_OR_RETURN(
        std::string bytes,
        ExportBlock(cache_->layout(), cache_->BlockData(table[b]),
                    BlockMetadata{.model = served_.fingerprint,
                                  .token_count = served_.block_size,
                                  .key = job.block_keys[b]}));
    blocks.push_back(std::move(bytes));
  }
  const int partial = job.prompt.size() - full * served_.block_size;
  if (partial > 0) {
    TANDEM_ASSIGN_OR_RETURN(
        std::string bytes,
        ExportBlock(cache_->layout(), cache_->BlockData(table[full]),
                    BlockMetadata{.model = served_.fingerprint,
                                  .token_count = partial,
                                  .key = PartialBlockKey(
                                      served_.fingerprint, job.block_keys,
                                      job.prompt, served_.block_size)}));
    blocks.push_back(std::move(bytes));
  }
  return blocks;
}

}  // namespace tandem
