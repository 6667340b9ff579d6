#include "prefill_node/prefill_service.h"

#include <chrono>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "prefill_node/prefill_proto.h"
#include "service/grpc_status.h"

namespace tandem {
namespace {

// The call's deadline; none when the client set none (or one years away).
absl::Time CallDeadline(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  const auto now = std::chrono::system_clock::now();
  if (deadline - now > std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

// One Prefill call: submits its job, answers when the worker does, and
// cancels the job when the call is cancelled. Deletes itself in OnDone.
class PrefillReactor final : public grpc::ServerUnaryReactor {
 public:
  PrefillReactor(PrefillWorker* worker, grpc::CallbackServerContext* context,
                 const v1::PrefillRequest& request,
                 v1::PrefillResponse* response)
      : worker_(worker), response_(response) {
    absl::StatusOr<PrefillJob> job = PrefillJobFromProto(request);
    if (!job.ok()) {
      Finish(ToGrpcStatus(job.status()));
      return;
    }
    job->deadline = CallDeadline(*context);
    const bool logprobs = job->logprobs;
    absl::StatusOr<uint64_t> ticket = worker_->Submit(
        *std::move(job), [this, logprobs](absl::StatusOr<PrefillResult> r) {
          if (r.ok()) ToProto(*r, logprobs, response_);
          Finish(ToGrpcStatus(r.status()));
        });
    if (!ticket.ok()) {
      Finish(ToGrpcStatus(ticket.status()));
      return;
    }
    absl::MutexLock lock(&mu_);
    ticket_ = *ticket;
  }

  void OnCancel() override {
    uint64_t ticket;
    {
      absl::MutexLock lock(&mu_);
      ticket = ticket_;
    }
    if (ticket != 0) worker_->Cancel(ticket);
  }

  void OnDone() override { delete this; }

 private:
  PrefillWorker* const worker_;
  v1::PrefillResponse* const response_;
  absl::Mutex mu_;
  uint64_t ticket_ ABSL_GUARDED_BY(mu_) = 0;  // 0: not submitted
};

}  // namespace

PrefillService::PrefillService(PrefillWorker* worker, std::string model_name,
                               int max_batch)
    : worker_(worker),
      model_name_(std::move(model_name)),
      max_batch_(max_batch) {}

grpc::ServerUnaryReactor* PrefillService::Prefill(
    grpc::CallbackServerContext* context, const v1::PrefillRequest* request,
    v1::PrefillResponse* response) {
  return new PrefillReactor(worker_, context, *request, response);
}

grpc::ServerUnaryReactor* PrefillService::Load(
    grpc::CallbackServerContext* context, const v1::LoadRequest* request,
    v1::WorkerLoad* response) {
  *response = CurrentLoad();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

v1::WorkerLoad PrefillService::CurrentLoad() const {
  return ToWorkerLoad(worker_->Load(), worker_->served(), model_name_,
                      max_batch_);
}

}  // namespace tandem
