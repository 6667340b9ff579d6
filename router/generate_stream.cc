#include "router/generate_stream.h"

#include <utility>

#include "router/api_key.h"
#include "service/grpc_status.h"

namespace tandem {

GenerateStream::GenerateStream(v1::Router::StubInterface& stub,
                               v1::GenerateRequest request,
                               const std::string& authorization)
    : request_(std::move(request)) {
  if (!authorization.empty()) {
    context_.AddMetadata(kAuthorizationMetadata, authorization);
  }
  stub.async()->Generate(&context_, &request_, this);
  // Held until no more reads will start, so that OnDone cannot run while
  // Next may still call StartRead.
  AddHold();
  StartRead(&incoming_);
  StartCall();
}

GenerateStream::~GenerateStream() {
  bool done;
  {
    absl::MutexLock lock(&mu_);
    done = done_;
  }
  if (!done) context_.TryCancel();
  ReleaseHold();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&done_));
}

void GenerateStream::ReleaseHold() {
  {
    absl::MutexLock lock(&mu_);
    if (hold_released_) return;
    hold_released_ = true;
  }
  RemoveHold();
}

GenerateStream::Event GenerateStream::Next(absl::Duration timeout,
                                           v1::GenerateResponse* reply,
                                           absl::Status* status) {
  bool got_reply = false;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return has_reply_ || read_ended_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
      return Event::kTimeout;
    }
    if (has_reply_) {
      *reply = std::move(incoming_);
      incoming_.Clear();
      has_reply_ = false;
      got_reply = true;
    }
  }
  if (got_reply) {
    // The hold is still in place, so the call cannot have finished.
    StartRead(&incoming_);
    return Event::kReply;
  }
  ReleaseHold();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&done_));
  *status = FromGrpcStatus(status_);
  return Event::kEnd;
}

void GenerateStream::OnReadDone(bool ok) {
  absl::MutexLock lock(&mu_);
  if (ok) {
    has_reply_ = true;
  } else {
    read_ended_ = true;
  }
}

void GenerateStream::OnDone(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  status_ = status;
  done_ = true;
}

}  // namespace tandem
