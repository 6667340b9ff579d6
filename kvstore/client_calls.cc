#include "kvstore/client_calls.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kvstore/kvstore_proto.h"

namespace tandem::kvstore_internal {

absl::Status FromNode(absl::string_view address, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(absl::StrCat(
        "kvstore node ", address, " is unavailable: ", status.error_message()));
  }
  return absl::Status(code, absl::StrCat("kvstore node ", address, ": ",
                                         status.error_message()));
}

// --- CallLimiter ---

void CallLimiter::Acquire() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &CallLimiter::HasRoom));
  ++running_;
}

void CallLimiter::Release() {
  absl::MutexLock lock(&mu_);
  --running_;
}

void CallLimiter::WaitForAll() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &CallLimiter::AllDone));
}

// --- PutCall ---

PutCall::PutCall(const CallTarget& target, absl::string_view block,
                 const BlockInfo& info, size_t chunk_bytes,
                 absl::Status* result)
    : target_(target),
      block_(block),
      chunk_bytes_(chunk_bytes),
      result_(result) {
  context_.set_deadline(absl::ToChronoTime(target.deadline));
  target.stub->async()->Put(&context_, &response_, this);
  ToProto(info, request_.mutable_info());
  WriteNextChunk();
  StartCall();
}

void PutCall::WriteNextChunk() {
  const size_t size = std::min(chunk_bytes_, block_.size() - offset_);
  request_.set_data(block_.data() + offset_, size);
  offset_ += size;
  if (offset_ == block_.size()) {
    StartWriteLast(&request_, grpc::WriteOptions());
  } else {
    StartWrite(&request_);
  }
}

void PutCall::OnWriteDone(bool ok) {
  // A failed write means the node has already answered (a duplicate or a
  // refusal) or the call broke; OnDone brings the status either way.
  if (!ok || offset_ == block_.size()) return;
  request_.Clear();
  WriteNextChunk();
}

void PutCall::OnDone(const grpc::Status& status) {
  *result_ = FromNode(*target_.address, status);
  target_.limiter->Release();
}

// --- GetCall ---

GetCall::GetCall(const CallTarget& target, const BlockKey& key,
                 uint64_t max_block_bytes, SharedMemoryPool* shared_memory,
                 GetSink* sink, size_t index)
    : target_(target),
      key_(key),
      max_block_bytes_(max_block_bytes),
      shared_memory_(shared_memory),
      sink_(sink),
      index_(index) {
  context_.set_deadline(absl::ToChronoTime(target.deadline));
  ToProto(key, request_.mutable_key());
  if (shared_memory != nullptr) slot_ = shared_memory->TryAcquire();
  if (slot_.has_value()) {
    const SharedMemorySlot where = shared_memory->Locate(*slot_);
    v1::SharedMemorySlot* slot = request_.mutable_shared_memory();
    slot->set_name(where.name);
    slot->set_pid(where.pid);
    slot->set_fd(where.fd);
    slot->set_offset(where.offset);
    slot->set_capacity(where.capacity);
  }
  target.stub->async()->Get(&context_, &request_, this);
  StartRead(&response_);
  StartCall();
}

void GetCall::OnReadDone(bool ok) {
  if (!ok) return;  // the stream has ended; OnDone follows
  protocol_error_ = Absorb();
  if (!protocol_error_.ok()) {
    context_.TryCancel();
    return;
  }
  StartRead(&response_);
}

absl::Status GetCall::Absorb() {
  if (!have_info_) {
    if (!response_.has_info()) {
      return absl::FailedPreconditionError("first GetResponse carries no info");
    }
    info_ = FromProto(response_.info());
    have_info_ = true;
    if (info_.key != key_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sent block ", info_.key.ToHex(), " for key ", key_.ToHex()));
    }
    if (info_.total_bytes > max_block_bytes_) {
      return absl::FailedPreconditionError(
          absl::StrCat("sent a block of ", info_.total_bytes,
                       " bytes, above max_block_bytes ", max_block_bytes_));
    }
    if (response_.in_shared_memory()) return AbsorbSlot();
    if (response_.data().size() == info_.total_bytes) {
      bytes_ = std::move(*response_.mutable_data());  // the whole block
      return absl::OkStatus();
    }
    bytes_.reserve(info_.total_bytes);
  } else if (response_.has_info()) {
    return absl::FailedPreconditionError(
        "GetResponse after the first carries info");
  }
  if (response_.data().size() > info_.total_bytes - bytes_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sent more than the block's total_bytes ", info_.total_bytes));
  }
  bytes_.append(response_.data());
  return absl::OkStatus();
}

absl::Status GetCall::AbsorbSlot() {
  if (!slot_.has_value()) {
    return absl::FailedPreconditionError(
        "answered through shared memory it was not offered");
  }
  if (info_.total_bytes > slot_->capacity || !response_.data().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "answered through shared memory with a block of ", info_.total_bytes,
        " bytes and ", response_.data().size(), " bytes of data"));
  }
  in_slot_ = true;
  return absl::OkStatus();
}

absl::StatusOr<absl::string_view> GetCall::Received(
    const grpc::Status& status) {
  if (!protocol_error_.ok()) {
    return absl::Status(protocol_error_.code(),
                        absl::StrCat("kvstore node ", *target_.address, " ",
                                     protocol_error_.message()));
  }
  if (!status.ok()) return FromNode(*target_.address, status);
  if (!have_info_) {
    return absl::FailedPreconditionError(
        absl::StrCat("kvstore node ", *target_.address,
                     " ended the Get of block ", key_.ToHex(), " without it"));
  }
  const absl::string_view block =
      in_slot_ ? absl::string_view(slot_->data, info_.total_bytes) : bytes_;
  if (block.size() != info_.total_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kvstore node ", *target_.address, " ended block ", key_.ToHex(),
        " after ", block.size(), " of ", info_.total_bytes, " bytes"));
  }
  if (BlockChecksum(block) != info_.checksum) {
    return absl::DataLossError(
        absl::StrCat("block ", key_.ToHex(), " from kvstore node ",
                     *target_.address, " does not match its checksum"));
  }
  return block;
}

void GetCall::OnDone(const grpc::Status& status) {
  absl::StatusOr<absl::string_view> block = Received(status);
  if (block.ok()) {
    sink_->Deliver(index_, *block, in_slot_ ? nullptr : &bytes_);
  } else {
    sink_->Fail(index_, block.status());
  }
  if (slot_.has_value()) {
    // After a failure the node may yet write into the slot.
    if (block.ok()) {
      shared_memory_->Release(*slot_);
    } else {
      shared_memory_->Quarantine(*slot_);
    }
  }
  target_.limiter->Release();
}

}  // namespace tandem::kvstore_internal
