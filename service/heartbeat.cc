#include "service/heartbeat.h"

#include <glog/logging.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tandem {

HeartbeatSender::HeartbeatSender(std::string router, std::string worker_id,
                                 std::string address,
                                 std::function<v1::WorkerLoad()> load,
                                 absl::Duration interval)
    : router_(std::move(router)),
      worker_id_(std::move(worker_id)),
      address_(std::move(address)),
      load_(std::move(load)),
      interval_(interval),
      stub_(v1::Membership::NewStub(
          grpc::CreateChannel(router_, grpc::InsecureChannelCredentials()))) {}

HeartbeatSender::~HeartbeatSender() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void HeartbeatSender::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void HeartbeatSender::Loop() {
  bool connected = false;
  bool first = true;
  while (true) {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker_id_);
    request.set_address(address_);
    *request.mutable_load() = load_();
    v1::HeartbeatResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(interval_));
    const grpc::Status status = stub_->Heartbeat(&context, request, &response);
    if (status.ok() != connected || first) {
      if (status.ok()) {
        LOG(INFO) << "registered with router router=" << router_
                  << " worker=" << worker_id_;
      } else {
        LOG(WARNING) << "router unreachable router=" << router_
                     << " worker=" << worker_id_
                     << " status=" << status.error_message();
      }
      connected = status.ok();
      first = false;
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_)) return;
  }
}

std::unique_ptr<HeartbeatSender> StartWorkerHeartbeat(
    const std::string& router, const std::string& worker_id,
    const std::string& advertise_address, const std::string& bound,
    absl::string_view kind, std::function<v1::WorkerLoad()> load) {
  if (router.empty()) return nullptr;
  const std::string address =
      advertise_address.empty() ? bound : advertise_address;
  const std::string id =
      worker_id.empty() ? absl::StrCat(kind, "@", address) : worker_id;
  auto heartbeat =
      std::make_unique<HeartbeatSender>(router, id, address, std::move(load));
  heartbeat->Start();
  return heartbeat;
}

}  // namespace tandem
