#include "router/router_core.h"

#include <utility>

#include "glog/logging.h"

namespace tandem {

RouterCore::RouterCore(ServedModel model, const RouterCoreOptions& options,
                       PrefixLookup lookup)
    : model_(std::move(model)),
      max_inflight_(options.max_inflight),
      lookup_(std::move(lookup)),
      metrics_(options.metrics),
      registry_(options.worker_expiry, options.clock) {}

std::shared_ptr<grpc::Channel> RouterCore::Channel(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<grpc::Channel>& channel = channels_[address];
  if (channel == nullptr) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    // A worker that restarts on the same port is dialed again quickly.
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    channel = grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args);
  }
  return channel;
}

ClusterView RouterCore::View() {
  ClusterView view = registry_.View();
  if (view.departed.empty()) return view;
  absl::MutexLock lock(&mu_);
  for (const std::string& id : view.departed) {
    auto [begin, end] = worker_calls_.equal_range(id);
    for (auto it = begin; it != end; ++it) {
      departed_calls_.insert(it->second);
      it->second->TryCancel();
    }
  }
  return view;
}

void RouterCore::TrackWorkerCall(const std::string& worker_id,
                                 grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  worker_calls_.emplace(worker_id, context);
}

bool RouterCore::UntrackWorkerCall(const std::string& worker_id,
                                   grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  auto [begin, end] = worker_calls_.equal_range(worker_id);
  for (auto it = begin; it != end; ++it) {
    if (it->second == context) {
      worker_calls_.erase(it);
      break;
    }
  }
  return departed_calls_.erase(context) > 0;
}

bool RouterCore::TryAdmit() {
  absl::MutexLock lock(&mu_);
  if (inflight_ >= max_inflight_) return false;
  ++inflight_;
  if (metrics_ != nullptr) metrics_->SetInflight(inflight_);
  return true;
}

void RouterCore::Release() {
  absl::MutexLock lock(&mu_);
  --inflight_;
  if (metrics_ != nullptr) metrics_->SetInflight(inflight_);
}

void RouterCore::WaitIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* inflight) { return *inflight == 0; }, &inflight_));
}

int RouterCore::inflight() {
  absl::MutexLock lock(&mu_);
  return inflight_;
}

size_t RouterCore::CachedBlocks(absl::Span<const BlockKey> keys,
                                const std::string& request_id) {
  if (!lookup_ || keys.empty()) return 0;
  absl::StatusOr<size_t> cached = lookup_(keys);
  if (!cached.ok()) {
    VLOG(1) << "prefix lookup failed req=" << request_id
            << " status=" << cached.status();
    return 0;
  }
  return std::min(*cached, keys.size());
}

uint64_t RouterCore::Random() {
  absl::MutexLock lock(&mu_);
  return absl::Uniform<uint64_t>(random_);
}

}  // namespace tandem
