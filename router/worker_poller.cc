#include "router/worker_poller.h"

#include <utility>

#include "glog/logging.h"
#include "proto/worker.grpc.pb.h"

namespace tandem {
namespace {

// Asks the worker at `address` for its load with `timeout`.
template <typename Service>
grpc::Status Poll(RouterCore& core, const std::string& address,
                  absl::Duration timeout, v1::WorkerLoad* load) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto stub = Service::NewStub(core.Channel(address));
  return stub->Load(&context, v1::LoadRequest(), load);
}

}  // namespace

WorkerPoller::WorkerPoller(RouterCore* core, std::vector<std::string> prefill,
                           std::vector<std::string> decode,
                           absl::Duration interval)
    : core_(core),
      prefill_(std::move(prefill)),
      decode_(std::move(decode)),
      interval_(interval) {}

WorkerPoller::~WorkerPoller() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void WorkerPoller::Start() {
  if (prefill_.empty() && decode_.empty()) return;
  PollAll();
  thread_ = std::thread([this] { Loop(); });
}

void WorkerPoller::PollAll() {
  auto poll = [&](const std::string& address, v1::WorkerKind kind,
                  grpc::Status status, v1::WorkerLoad& load) {
    if (!status.ok()) {
      VLOG(1) << "worker poll failed node=" << address
              << " status=" << status.error_message();
      return;
    }
    if (load.kind() == v1::WORKER_KIND_UNSPECIFIED) load.set_kind(kind);
    if (load.kind() != kind) {
      LOG(WARNING) << "worker poll node=" << address
                   << " reason=reports another kind than listed";
      return;
    }
    if (!ModelNameMatches(core_->model().id, load.model())) {
      LOG(WARNING) << "worker poll node=" << address
                   << " model=" << load.model()
                   << " reason=serves another model";
      return;
    }
    const absl::Status reported =
        core_->registry().Report(address, address, load);
    if (!reported.ok()) {
      LOG(WARNING) << "worker poll node=" << address << " status=" << reported;
    }
  };
  for (const std::string& address : prefill_) {
    v1::WorkerLoad load;
    grpc::Status status =
        Poll<v1::PrefillWorker>(*core_, address, interval_, &load);
    poll(address, v1::WORKER_KIND_PREFILL, status, load);
  }
  for (const std::string& address : decode_) {
    v1::WorkerLoad load;
    grpc::Status status =
        Poll<v1::DecodeWorker>(*core_, address, interval_, &load);
    poll(address, v1::WORKER_KIND_DECODE, status, load);
  }
}

void WorkerPoller::Loop() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_)) {
    mu_.Unlock();
    PollAll();
    mu_.Lock();
  }
}

}  // namespace tandem
