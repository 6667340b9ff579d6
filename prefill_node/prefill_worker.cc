#include "prefill_node/prefill_worker.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/status_macros.h"
#include "glog/logging.h"

namespace tandem {

struct PrefillWorker::Pending {
  uint64_t ticket = 0;
  std::shared_ptr<const PrefillJob> job;
  Done done;
  absl::Time accepted;
  std::atomic<bool> cancelled{false};
  // Set under mu_ once the compute thread has taken the job.
  bool reached_engine = false;
};

namespace {

// Store errors that mean the store cannot be used now, as opposed to one
// block being missing or bad.
bool StoreUnusable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsCancelled(status);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PrefillWorker>> PrefillWorker::Create(
    std::unique_ptr<PrefillEngine> engine, BlockStoreLink* store,
    const PrefillWorkerOptions& options) {
  if (options.max_queued_requests < 1 || options.io_threads < 1) {
    return absl::InvalidArgumentError(
        "max_queued_requests and io_threads must be at least 1");
  }
  std::unique_ptr<PrefillWorker> worker(
      new PrefillWorker(std::move(engine), store, options));
  {
    absl::MutexLock lock(&worker->mu_);
    worker->PublishLoadLocked();
  }
  for (int i = 0; i < options.io_threads; ++i) {
    worker->threads_.emplace_back([w = worker.get()] { w->FetchLoop(); });
    worker->threads_.emplace_back([w = worker.get()] { w->PublishLoop(); });
  }
  worker->threads_.emplace_back([w = worker.get()] { w->ComputeLoop(); });
  return worker;
}

PrefillWorker::PrefillWorker(std::unique_ptr<PrefillEngine> engine,
                             BlockStoreLink* store,
                             const PrefillWorkerOptions& options)
    : options_(options),
      served_(engine->served()),
      store_(store),
      engine_(std::move(engine)) {
  engine_load_.free_blocks = engine_->free_blocks();
  engine_load_.total_blocks = engine_->total_blocks();
}

PrefillWorker::~PrefillWorker() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
  std::vector<PendingPtr> left;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [ticket, pending] : live_) left.push_back(pending);
  }
  for (const PendingPtr& pending : left) {
    Answer(pending, absl::UnavailableError("prefill worker is shutting down"));
  }
}

absl::StatusOr<uint64_t> PrefillWorker::Submit(PrefillJob job, Done done) {
  TANDEM_RETURN_IF_ERROR(ValidatePrefillJob(job, served_));
  TANDEM_RETURN_IF_ERROR(engine_->CheckFits(job.prompt.size()));
  auto pending = std::make_shared<Pending>();
  pending->job = std::make_shared<const PrefillJob>(std::move(job));
  pending->done = std::move(done);
  pending->accepted = absl::Now();
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError("prefill worker is shutting down");
  }
  if (live_.size() >= static_cast<size_t>(options_.max_queued_requests)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "prefill queue is full: ", live_.size(), " requests pending"));
  }
  pending->ticket = next_ticket_++;
  live_[pending->ticket] = pending;
  to_fetch_.push_back(pending);
  ++jobs_before_engine_;
  tokens_before_engine_ += pending->job->prompt.size();
  return pending->ticket;
}

void PrefillWorker::Cancel(uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  auto it = live_.find(ticket);
  if (it == live_.end()) return;
  it->second->cancelled = true;
  cancel_pending_ = true;
}

PrefillLoad PrefillWorker::Load() const {
  absl::MutexLock lock(&mu_);
  PrefillLoad load = engine_load_;
  load.queued_requests += jobs_before_engine_;
  load.waiting_sequences += jobs_before_engine_;
  load.queued_tokens += tokens_before_engine_;
  return load;
}

absl::Status PrefillWorker::Abandoned(const Pending& pending) {
  if (pending.cancelled) {
    return absl::CancelledError(
        absl::StrCat("request ", pending.job->request_id, " was cancelled"));
  }
  if (absl::Now() >= pending.job->deadline) {
    return absl::DeadlineExceededError(absl::StrCat(
        "request ", pending.job->request_id, " passed its deadline"));
  }
  return absl::OkStatus();
}

void PrefillWorker::Answer(const PendingPtr& pending,
                           absl::StatusOr<PrefillResult> result) {
  {
    absl::MutexLock lock(&mu_);
    if (live_.erase(pending->ticket) == 0) return;
    if (!pending->reached_engine) {
      --jobs_before_engine_;
      tokens_before_engine_ -= pending->job->prompt.size();
    }
  }
  const PrefillJob& job = *pending->job;
  const double ms = absl::ToDoubleMilliseconds(absl::Now() - pending->accepted);
  if (result.ok()) {
    LOG(INFO) << "prefill done req=" << job.request_id
              << " prompt_tokens=" << job.prompt.size()
              << " cached_tokens=" << result->cached_tokens
              << " computed_tokens=" << result->computed_tokens
              << " first_token=" << result->first.token
              << " queue_ms=" << absl::ToDoubleMilliseconds(result->queue_time)
              << " ms=" << ms;
    if (options_.metrics != nullptr) {
      options_.metrics->RecordPrompt(
          result->cached_tokens, result->computed_tokens, result->queue_time);
    }
  } else {
    LOG(INFO) << "prefill failed req=" << job.request_id
              << " prompt_tokens=" << job.prompt.size() << " ms=" << ms
              << " status=" << result.status();
  }
  pending->done(std::move(result));
}

void PrefillWorker::FetchLoop() {
  for (;;) {
    PendingPtr pending;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &PrefillWorker::FetchHasWork));
      if (stopping_) return;
      pending = std::move(to_fetch_.front());
      to_fetch_.pop_front();
    }
    if (absl::Status status = Abandoned(*pending); !status.ok()) {
      Answer(pending, status);
      continue;
    }
    absl::StatusOr<std::vector<std::string>> blocks =
        FetchStoredBlocks(*pending->job);
    if (!blocks.ok()) {
      Answer(pending, blocks.status());
      continue;
    }
    absl::MutexLock lock(&mu_);
    to_compute_.push_back({static_cast<SequenceId>(pending->ticket),
                           pending->job, *std::move(blocks),
                           pending->accepted});
  }
}

absl::StatusOr<std::vector<std::string>> PrefillWorker::FetchStoredBlocks(
    const PrefillJob& job) {
  if (job.block_keys.empty() || !options_.prefix_reuse) {
    return std::vector<std::string>();
  }
  TANDEM_ASSIGN_OR_RETURN(size_t stored, store_->LongestPrefix(job.block_keys));
  stored = std::min(stored, job.block_keys.size());
  std::vector<absl::StatusOr<std::string>> got =
      store_->GetMany(absl::MakeConstSpan(job.block_keys).first(stored));
  std::vector<std::string> blocks;
  for (size_t i = 0; i < got.size(); ++i) {
    absl::Status status = got[i].status();
    if (StoreUnusable(status)) return status;
    if (status.ok()) {
      status = CheckStoredBlock(*got[i], served_, engine_->layout(),
                                job.block_keys[i]);
    }
    if (!status.ok()) {
      // The rest of the prompt is computed instead.
      LOG(WARNING) << "stored block unusable req=" << job.request_id
                   << " block=" << i << " status=" << status;
      break;
    }
    blocks.push_back(*std::move(got[i]));
  }
  if (options_.metrics != nullptr) {
    options_.metrics->RecordLookup(!blocks.empty());
  }
  return blocks;
}

void PrefillWorker::PublishLoop() {
  for (;;) {
    Publication publication;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &PrefillWorker::PublishHasWork));
      if (stopping_) return;
      publication = std::move(to_publish_.front());
      to_publish_.pop_front();
    }
    Publish(publication);
  }
}

void PrefillWorker::Publish(Publication& publication) {
  if (absl::Status status = Abandoned(*publication.pending); !status.ok()) {
    Answer(publication.pending, status);
    return;
  }
  std::vector<absl::string_view> views(publication.blocks.begin(),
                                       publication.blocks.end());
  const std::vector<absl::Status> written = store_->PutMany(views);
  if (options_.metrics != nullptr) {
    options_.metrics->RecordPublished(
        std::count_if(written.begin(), written.end(),
                      [](const absl::Status& status) { return status.ok(); }));
  }
  for (const absl::Status& status : written) {
    if (!status.ok()) {
      Answer(publication.pending, status);
      return;
    }
  }
  Answer(publication.pending, std::move(publication.result));
}

bool PrefillWorker::FetchHasWork() const {
  return stopping_ || !to_fetch_.empty();
}

bool PrefillWorker::PublishHasWork() const {
  return stopping_ || !to_publish_.empty();
}

bool PrefillWorker::ComputeHasWork() const {
  return stopping_ || cancel_pending_ || !to_compute_.empty() ||
         (!engine_->idle() && !engine_->stalled());
}

void PrefillWorker::ComputeLoop() {
  for (;;) {
    std::vector<FetchedPrompt> arrived;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &PrefillWorker::ComputeHasWork));
      if (stopping_) return;
      arrived.swap(to_compute_);
      cancel_pending_ = false;
    }
    // Answers go out once the load snapshot counts them as gone.
    std::vector<Failure> failures;
    SyncEngine(std::move(arrived), failures);
    std::vector<Publication> publications;
    const absl::Time step_start = absl::Now();
    std::vector<FinishedPrompt> step = engine_->Step();
    if (options_.metrics != nullptr && engine_->last_step_tokens() > 0) {
      options_.metrics->RecordStep(engine_->last_step_tokens(),
                                   absl::Now() - step_start);
    }
    for (FinishedPrompt& finished : step) {
      auto it = in_engine_.find(finished.seq);
      if (it == in_engine_.end()) continue;
      PendingPtr pending = std::move(it->second);
      in_engine_.erase(it);
      if (finished.result.ok()) {
        publications.push_back({std::move(pending), *std::move(finished.result),
                                std::move(finished.new_blocks)});
      } else {
        failures.push_back({std::move(pending), finished.result.status()});
      }
    }
    {
      absl::MutexLock lock(&mu_);
      for (Publication& publication : publications) {
        to_publish_.push_back(std::move(publication));
      }
      PublishLoadLocked();
    }
    for (Failure& failure : failures) {
      Answer(failure.pending, std::move(failure.status));
    }
  }
}

void PrefillWorker::PublishLoadLocked() {
  engine_load_.queued_requests = engine_->num_queued() + engine_->num_running();
  engine_load_.queued_tokens = engine_->pending_tokens();
  engine_load_.running_sequences = engine_->num_running();
  engine_load_.waiting_sequences = engine_->num_queued();
  engine_load_.free_blocks = engine_->free_blocks();
  if (options_.metrics == nullptr) return;
  options_.metrics->SetLoad(engine_load_.queued_requests + jobs_before_engine_,
                            engine_load_.queued_tokens + tokens_before_engine_,
                            engine_load_.free_blocks,
                            engine_load_.total_blocks);
}

void PrefillWorker::SyncEngine(std::vector<FetchedPrompt> arrived,
                               std::vector<Failure>& failures) {
  for (FetchedPrompt& prompt : arrived) {
    PendingPtr pending;
    {
      absl::MutexLock lock(&mu_);
      auto it = live_.find(prompt.seq);
      if (it == live_.end()) continue;
      pending = it->second;
      pending->reached_engine = true;
      --jobs_before_engine_;
      tokens_before_engine_ -= pending->job->prompt.size();
    }
    absl::Status status = Abandoned(*pending);
    if (status.ok()) status = engine_->Add(std::move(prompt));
    if (!status.ok()) {
      failures.push_back({std::move(pending), status});
      continue;
    }
    in_engine_[pending->ticket] = std::move(pending);
  }
  for (auto it = in_engine_.begin(); it != in_engine_.end();) {
    absl::Status status = Abandoned(*it->second);
    if (status.ok()) {
      ++it;
      continue;
    }
    engine_->Remove(it->first);
    failures.push_back({std::move(it->second), std::move(status)});
    in_engine_.erase(it++);
  }
}

}  // namespace tandem
