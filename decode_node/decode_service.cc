#include "decode_node/decode_service.h"

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "decode_node/decode_input.h"
#include "decode_node/decode_reply.h"
#include "glog/logging.h"
#include "kvstore/kvstore_proto.h"
#include "service/grpc_status.h"

namespace tandem {
namespace {

using Reactor = grpc::ServerWriteReactor<v1::DecodeResponse>;

// The replies of one Decode call, shared by the scheduler (as the
// sequence's observer) and the call's reactor. Replies queue here and are
// written one at a time; the call finishes once the queue is written and
// the sequence has ended, or at once when the call is cancelled.
class DecodeStream : public SequenceObserver {
 public:
  DecodeStream(Reactor* reactor, const Tokenizer* tokenizer,
               ReplyOptions options)
      : tokenizer_(*tokenizer),
        options_(std::move(options)),
        reactor_(reactor) {}

  void OnPromptComputed(int cached_tokens) override {
    absl::MutexLock lock(&mu_);
    cached_tokens_ = cached_tokens;
  }

  void OnToken(const GeneratedToken& token, int index) override {
    v1::DecodeResponse reply =
        MakeDecodeReply(token, index, options_, tokenizer_);
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (index == 0) reply.set_cached_tokens(cached_tokens_);
    // queue_.front() may be in flight; later replies merge into one.
    if (queue_.size() >= 2) {
      MergeDecodeReply(reply, &queue_.back());
    } else {
      queue_.push_back(std::move(reply));
    }
    if (token.finish != FinishReason::kNone) final_ = absl::OkStatus();
    ContinueLocked();
  }

  void OnError(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    final_ = status;
    ContinueLocked();
  }

  // Reactor events.
  void WriteDone(bool ok) {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    queue_.pop_front();
    if (!ok) cancelled_ = true;  // the client is gone
    ContinueLocked();
  }
  void Cancelled() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    ContinueLocked();
  }
  // Only for an error before the sequence was submitted.
  void FinishNow(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    final_ = status;
    ContinueLocked();
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  // Starts the next write, or finishes the call when nothing is left.
  void ContinueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_ || reactor_ == nullptr) return;
    if (cancelled_) {
      FinishLocked(grpc::Status::CANCELLED);
    } else if (!queue_.empty()) {
      writing_ = true;
      reactor_->StartWrite(&queue_.front());
    } else if (final_.has_value()) {
      FinishLocked(ToGrpcStatus(*final_));
    }
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    finished_ = true;
    reactor_->Finish(status);
  }

  const Tokenizer& tokenizer_;
  const ReplyOptions options_;
  absl::Mutex mu_;
  Reactor* reactor_ ABSL_GUARDED_BY(mu_);  // null once the call is done
  std::deque<v1::DecodeResponse> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int cached_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  // How the sequence ended, once it has.
  std::optional<absl::Status> final_ ABSL_GUARDED_BY(mu_);
};

// One Decode or Generate call: submits the sequence and relays the
// stream's events.
class DecodeCall final : public Reactor {
 public:
  // `input` is the converted request, or why it was refused.
  DecodeCall(Scheduler* scheduler, const Tokenizer* tokenizer,
             ReplyOptions options, absl::StatusOr<DecodeInput> input,
             const std::string& request_id)
      : scheduler_(*scheduler) {
    stream_ =
        std::make_shared<DecodeStream>(this, tokenizer, std::move(options));
    absl::StatusOr<SequenceId> id =
        input.ok() ? scheduler_.Submit(*std::move(input), stream_)
                   : input.status();
    if (!id.ok()) {
      VLOG(1) << "decode refused req=" << request_id
              << " status=" << id.status();
      stream_->FinishNow(id.status());
      return;
    }
    id_ = *id;
  }

  void OnWriteDone(bool ok) override { stream_->WriteDone(ok); }

  void OnCancel() override {
    if (id_.has_value()) scheduler_.Cancel(*id_);
    stream_->Cancelled();
  }

  void OnDone() override {
    // A write that fails without a cancellation still frees the sequence.
    if (id_.has_value()) scheduler_.Cancel(*id_);
    stream_->Detach();
    delete this;
  }

 private:
  Scheduler& scheduler_;
  std::shared_ptr<DecodeStream> stream_;
  std::optional<SequenceId> id_;
};

}  // namespace

DecodeService::DecodeService(Scheduler* scheduler, const Tokenizer* tokenizer,
                             DecodeWorkerInfo info)
    : scheduler_(*scheduler), tokenizer_(*tokenizer), info_(std::move(info)) {}

grpc::ServerWriteReactor<v1::DecodeResponse>* DecodeService::Decode(
    grpc::CallbackServerContext* context, const v1::DecodeRequest* request) {
  ReplyOptions options;
  options.logprobs = request->logprobs() >= 0;
  if (request->has_first_logprobs()) {
    options.first_logprobs = request->first_logprobs();
  }
  absl::StatusOr<DecodeInput> input =
      info_.colocated
          ? absl::FailedPreconditionError(
                "this decode worker is colocated: it serves Generate, not "
                "Decode")
          : DecodeInputFromProto(*request);
  return new DecodeCall(&scheduler_, &tokenizer_, std::move(options),
                        std::move(input), request->request_id());
}

grpc::ServerWriteReactor<v1::DecodeResponse>* DecodeService::Generate(
    grpc::CallbackServerContext* context, const v1::ColocatedRequest* request) {
  ReplyOptions options;
  options.logprobs = request->logprobs() >= 0;
  options.first_sampled_here = true;
  absl::StatusOr<DecodeInput> input =
      !info_.colocated
          ? absl::FailedPreconditionError(
                "this decode worker is not colocated (start it with "
                "--colocated); it serves Decode")
          : ColocatedInputFromProto(*request, info_.fingerprint,
                                    info_.block_size);
  return new DecodeCall(&scheduler_, &tokenizer_, std::move(options),
                        std::move(input), request->request_id());
}

grpc::ServerUnaryReactor* DecodeService::Load(
    grpc::CallbackServerContext* context, const v1::LoadRequest* request,
    v1::WorkerLoad* response) {
  *response = CurrentLoad();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

v1::WorkerLoad DecodeService::CurrentLoad() const {
  const SchedulerLoad load = scheduler_.Load();
  v1::WorkerLoad out;
  out.set_kind(info_.colocated ? v1::WORKER_KIND_COLOCATED
                               : v1::WORKER_KIND_DECODE);
  out.set_queued_tokens(load.queued_tokens);
  out.set_model(info_.model_name);
  out.set_running_sequences(load.running);
  out.set_waiting_sequences(load.waiting);
  out.set_free_blocks(load.free_blocks);
  out.set_total_blocks(load.total_blocks);
  out.set_max_batch(load.max_batch);
  ToProto(info_.fingerprint, out.mutable_fingerprint());
  out.set_block_size(info_.block_size);
  return out;
}

}  // namespace tandem
