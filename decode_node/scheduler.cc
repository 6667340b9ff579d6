#include "decode_node/scheduler.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/status_macros.h"
#include "engine/stop_conditions.h"
#include "glog/logging.h"

namespace tandem {
namespace {

void Erase(std::vector<Sequence*>& list, Sequence* seq) {
  list.erase(std::remove(list.begin(), list.end(), seq), list.end());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(
    Model* model, const Tokenizer* tokenizer, BlockSource* blocks,
    const SchedulerOptions& options) {
  if (options.block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be positive, got ", options.block_size));
  }
  if (options.max_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch must be at least 1, got ", options.max_batch));
  }
  if (options.max_waiting < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_waiting must be at least 1, got ", options.max_waiting));
  }
  if (options.fetch_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fetch_threads must not be negative, got ", options.fetch_threads));
  }
  if (options.max_prefill_tokens_per_step < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_prefill_tokens_per_step must be at least 1, got ",
                     options.max_prefill_tokens_per_step));
  }
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<PagedKvCache> cache,
      PagedKvCache::Create(model->kv_layout(options.block_size),
                           options.kv_cache_bytes));
  return std::unique_ptr<Scheduler>(
      new Scheduler(model, tokenizer, blocks, options, std::move(cache)));
}

Scheduler::Scheduler(Model* model, const Tokenizer* tokenizer,
                     BlockSource* blocks, const SchedulerOptions& options,
                     std::unique_ptr<PagedKvCache> cache)
    : model_(*model),
      tokenizer_(*tokenizer),
      blocks_(*blocks),
      options_(options),
      total_blocks_(cache->num_blocks()),
      cache_(std::move(cache)) {
  absl::MutexLock lock(&mu_);
  load_.free_blocks = total_blocks_;
  load_.total_blocks = total_blocks_;
  load_.max_batch = options_.max_batch;
}

Scheduler::~Scheduler() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_.SignalAll();
    fetch_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  for (std::thread& thread : fetch_threads_) thread.join();
  const absl::Status stopped =
      absl::UnavailableError("the decode worker is shutting down");
  std::vector<std::unique_ptr<Sequence>> incoming;
  {
    absl::MutexLock lock(&mu_);
    incoming.swap(incoming_);
  }
  for (auto& seq : incoming) seq->observer().OnError(stopped);
  for (auto& [id, seq] : sequences_) seq->observer().OnError(stopped);
}

void Scheduler::Start() {
  thread_ = std::thread([this] { Loop(); });
  for (int i = 0; i < options_.fetch_threads; ++i) {
    fetch_threads_.emplace_back([this] { FetchLoop(); });
  }
}

absl::StatusOr<SequenceId> Scheduler::Submit(
    DecodeInput input, std::shared_ptr<SequenceObserver> observer) {
  SequenceId id;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
  }
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<Sequence> seq,
      Sequence::Create(id, std::move(input), model_.config(),
                       model_.fingerprint(), options_.block_size, tokenizer_,
                       std::move(observer)));
  const int blocks = BlocksFor(seq->MaxCacheTokens(), options_.block_size);
  if (blocks > total_blocks_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the prompt plus max_tokens need ", blocks,
                     " KV blocks; this worker's cache holds ", total_blocks_));
  }
  absl::MutexLock lock(&mu_);
  if (load_.waiting >= options_.max_waiting) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the waiting queue is full (", options_.max_waiting,
                     " requests wait for the batch)"));
  }
  if (seq->input().compute_prompt) {
    load_.queued_tokens += seq->input().prompt.size();
  }
  incoming_.push_back(std::move(seq));
  ++load_.waiting;
  work_.Signal();
  return id;
}

void Scheduler::Cancel(SequenceId id) {
  absl::MutexLock lock(&mu_);
  cancelled_.push_back(id);
  work_.Signal();
}

SchedulerLoad Scheduler::Load() const {
  absl::MutexLock lock(&mu_);
  return load_;
}

void Scheduler::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      const bool local_work = HasLocalWork();
      while (!stopping_ && !local_work && incoming_.empty() &&
             cancelled_.empty() && fetched_.empty()) {
        work_.Wait(&mu_);
      }
      if (stopping_) return;
    }
    Step();
  }
}

bool Scheduler::HasLocalWork() const {
  if (!running_.empty() || !prefilling_.empty()) return true;
  if (waiting_.empty()) return false;
  if (fetching_.size() >= static_cast<size_t>(options_.max_batch)) {
    return false;
  }
  const Sequence& next = *waiting_.front();
  const int tokens = std::min(next.CacheTokens() + 1, next.MaxCacheTokens());
  return cache_->num_free_blocks() >= BlocksFor(tokens, options_.block_size);
}

void Scheduler::Step() {
  std::vector<SequenceId> cancelled;
  std::vector<FetchResult> fetched;
  TakeInbox(&cancelled, &fetched);
  for (SequenceId id : cancelled) Drop(id);
  for (FetchResult& result : fetched) Join(std::move(result));
  Admit();
  PrefillChunks();
  DecodeStep();
  PublishLoad();
}

void Scheduler::TakeInbox(std::vector<SequenceId>* cancelled,
                          std::vector<FetchResult>* fetched) {
  absl::MutexLock lock(&mu_);
  for (std::unique_ptr<Sequence>& seq : incoming_) {
    waiting_.push_back(seq.get());
    const SequenceId id = seq->id();
    sequences_.emplace(id, std::move(seq));
  }
  incoming_.clear();
  cancelled->swap(cancelled_);
  fetched->swap(fetched_);
}

void Scheduler::Drop(SequenceId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  Sequence* seq = it->second.get();
  if (options_.metrics != nullptr)
    options_.metrics->RecordFinished("cancelled");
  LOG(INFO) << "decode cancelled req=" << seq->input().request_id
            << " seq=" << id << " tokens=" << seq->generated().size()
            << " preemptions=" << seq->preemptions;
  Forget(seq);
}

void Scheduler::Admit() {
  while (!waiting_.empty()) {
    if (running_.size() + fetching_.size() + prefilling_.size() >=
        static_cast<size_t>(options_.max_batch)) {
      return;
    }
    Sequence* seq = waiting_.front();
    const int tokens = seq->CacheTokens();
    const int next = std::min(tokens + 1, seq->MaxCacheTokens());
    if (cache_->num_free_blocks() < BlocksFor(next, options_.block_size)) {
      return;
    }
    const int reserve = BlocksFor(tokens, options_.block_size);
    for (int i = 0; i < reserve; ++i) {
      absl::StatusOr<BlockId> block = cache_->AllocateBlock();
      if (!block.ok()) {  // not expected: the free count was checked
        ReleaseReserved(seq);
        return;
      }
      seq->reserved.push_back(*block);
    }
    waiting_.pop_front();
    if (seq->input().compute_prompt &&
        (!options_.reuse_store || seq->input().handoff.full_blocks.empty())) {
      StartPrompt(seq, {});
      continue;
    }
    seq->state = Sequence::State::kFetching;
    ++seq->fetch_epoch;
    fetching_.push_back(seq);
    StartFetch(seq);
  }
}

void Scheduler::Join(FetchResult result) {
  auto it = sequences_.find(result.id);
  if (it == sequences_.end()) return;  // cancelled meanwhile
  Sequence* seq = it->second.get();
  if (seq->state != Sequence::State::kFetching ||
      seq->fetch_epoch != result.epoch) {
    return;  // preempted meanwhile; a later fetch is or will be under way
  }
  Erase(fetching_, seq);
  if (seq->input().compute_prompt) {
    StartPrompt(seq, std::move(result.blocks));
    return;
  }
  absl::Status status = ImportHandoff(seq, std::move(result.blocks));
  if (!status.ok() && !seq->generated().empty()) {
    // A preempted sequence whose blocks are gone recomputes its prompt.
    LOG(WARNING) << "decode refetch failed, recomputing req="
                 << seq->input().request_id << " seq=" << seq->id()
                 << " status=" << status;
    status = RecomputeAll(seq);
  }
  if (!status.ok()) {
    seq->state = Sequence::State::kWaiting;  // holds no blocks now
    Fail(seq, status);
    return;
  }
  seq->state = Sequence::State::kRunning;
  running_.push_back(seq);
  if (!seq->generated().empty()) return;
  absl::StatusOr<bool> finished = seq->AcceptFirstToken();
  if (finished.ok() && options_.metrics != nullptr) {
    options_.metrics->RecordTokens(1);
  }
  if (!finished.ok()) {
    Fail(seq, finished.status());
  } else if (*finished) {
    Finish(seq);
  }
}

void Scheduler::DecodeStep() {
  if (!MakeRoom()) return;
  const size_t batch = running_.size();
  std::vector<SequenceId> ids;
  std::vector<int32_t> tokens;
  std::vector<SequenceSamplingState*> states;
  ids.reserve(batch);
  tokens.reserve(batch);
  states.reserve(batch);
  for (Sequence* seq : running_) {
    const absl::Status appended = cache_->Append(seq->id(), 1);
    if (!appended.ok()) {
      FailRunning(absl::InternalError(
          absl::StrCat("no KV slot for the next token: ", appended.message())));
      return;
    }
    ids.push_back(seq->id());
    tokens.push_back(seq->last_token());
    states.push_back(&seq->sampling());
  }
  const absl::Time start = absl::Now();
  absl::Status status = model_.DecodeStep(ids, tokens, *cache_, &logits_);
  if (!status.ok()) {
    FailRunning(absl::InternalError(
        absl::StrCat("decode step failed: ", status.message())));
    return;
  }
  absl::StatusOr<std::vector<SampledToken>> sampled = sampler_.Sample(
      absl::MakeSpan(logits_), model_.config().vocab_size, states);
  if (!sampled.ok()) {
    FailRunning(absl::InternalError(
        absl::StrCat("sampling failed: ", sampled.status().message())));
    return;
  }
  if (options_.metrics != nullptr) {
    options_.metrics->RecordStep(batch, absl::Now() - start);
  }
  const std::vector<Sequence*> stepped = running_;
  for (size_t i = 0; i < batch; ++i) {
    absl::StatusOr<bool> finished =
        stepped[i]->AcceptSampled(std::move((*sampled)[i]));
    if (!finished.ok()) {
      Fail(stepped[i], finished.status());
    } else if (*finished) {
      Finish(stepped[i]);
    }
  }
  VLOG(1) << "decode step batch=" << batch << " running=" << running_.size()
          << " free_blocks=" << cache_->num_free_blocks();
}

bool Scheduler::MakeRoom() {
  for (;;) {
    if (running_.empty()) return false;
    int needed = 0;
    for (Sequence* seq : running_) {
      needed += cache_->BlocksNeededToAppend(seq->id(), 1).value_or(1);
    }
    if (needed <= cache_->num_free_blocks()) return true;
    if (!fetching_.empty()) {
      Preempt(fetching_.back());
    } else if (!prefilling_.empty()) {
      Preempt(prefilling_.back());
    } else if (running_.size() > 1) {
      Preempt(running_.back());
    } else {
      // Submit admits no sequence the whole cache cannot hold.
      Fail(running_.front(),
           absl::InternalError("the KV cache cannot hold the sequence"));
    }
  }
}

void Scheduler::Preempt(Sequence* seq) {
  VLOG(1) << "decode preempted req=" << seq->input().request_id
          << " seq=" << seq->id() << " tokens=" << seq->generated().size();
  if (seq->state == Sequence::State::kFetching) {
    ReleaseReserved(seq);
    Erase(fetching_, seq);
  } else if (seq->state == Sequence::State::kPrefilling) {
    ReleaseReserved(seq);
    cache_->RemoveSequence(seq->id()).IgnoreError();
    Erase(prefilling_, seq);
    seq->run.clear();
    seq->computed = 0;
  } else {
    cache_->RemoveSequence(seq->id()).IgnoreError();
    Erase(running_, seq);
  }
  seq->state = Sequence::State::kWaiting;
  ++seq->preemptions;
  ++preemptions_;
  waiting_.push_front(seq);
}

void Scheduler::Finish(Sequence* seq) {
  LOG(INFO) << "decoded req=" << seq->input().request_id << " seq=" << seq->id()
            << " prompt_tokens=" << seq->input().prompt.size()
            << " tokens=" << seq->generated().size()
            << " preemptions=" << seq->preemptions;
  if (options_.metrics != nullptr) {
    options_.metrics->RecordFinished(
        std::string(FinishReasonName(seq->finish_reason())));
  }
  Forget(seq);
}

void Scheduler::Fail(Sequence* seq, const absl::Status& status) {
  LOG(INFO) << "decode failed req=" << seq->input().request_id
            << " seq=" << seq->id() << " tokens=" << seq->generated().size()
            << " status=" << status;
  seq->observer().OnError(status);
  if (options_.metrics != nullptr) options_.metrics->RecordFinished("error");
  Forget(seq);
}

void Scheduler::FailRunning(const absl::Status& status) {
  const std::vector<Sequence*> running = running_;
  for (Sequence* seq : running) Fail(seq, status);
}

void Scheduler::Forget(Sequence* seq) {
  switch (seq->state) {
    case Sequence::State::kWaiting:
      waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), seq),
                     waiting_.end());
      break;
    case Sequence::State::kFetching:
      ReleaseReserved(seq);
      Erase(fetching_, seq);
      break;
    case Sequence::State::kPrefilling:
      ReleaseReserved(seq);
      cache_->RemoveSequence(seq->id()).IgnoreError();
      Erase(prefilling_, seq);
      break;
    case Sequence::State::kRunning:
      cache_->RemoveSequence(seq->id()).IgnoreError();
      Erase(running_, seq);
      break;
  }
  sequences_.erase(seq->id());
}

void Scheduler::ReleaseReserved(Sequence* seq) {
  for (BlockId block : seq->reserved) cache_->ReleaseBlock(block).IgnoreError();
  seq->reserved.clear();
}

void Scheduler::PublishLoad() {
  absl::MutexLock lock(&mu_);
  load_.running = running_.size();
  load_.waiting = waiting_.size() + fetching_.size() + incoming_.size();
  load_.free_blocks = cache_->num_free_blocks();
  load_.queued_tokens = QueuedPromptTokens();
  for (const std::unique_ptr<Sequence>& seq : incoming_) {
    if (seq->input().compute_prompt) {
      load_.queued_tokens += seq->input().prompt.size();
    }
  }
  load_.preemptions = preemptions_;
  if (options_.metrics != nullptr) {
    options_.metrics->RecordLoad(load_.running, load_.waiting,
                                 load_.free_blocks, total_blocks_,
                                 preemptions_);
  }
}

}  // namespace tandem
