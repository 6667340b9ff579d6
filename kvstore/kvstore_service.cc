#include "kvstore/kvstore_service.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "kvstore/kvstore_proto.h"
#include "kvstore/shared_memory.h"
#include "service/grpc_status.h"

namespace tandem {
namespace {

std::vector<BlockKey> KeysOf(
    const google::protobuf::RepeatedPtrField<v1::BlockKey>& keys) {
  std::vector<BlockKey> out;
  out.reserve(keys.size());
  for (const v1::BlockKey& key : keys) out.push_back(FromProto(key));
  return out;
}

absl::Status CheckKeyCount(int count) {
  if (count > kMaxKeysPerCall) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request has ", count, " keys, more than ", kMaxKeysPerCall));
  }
  return absl::OkStatus();
}

// Receives one block: the first message's info starts a BlockWriter, data
// goes into it, and the end of the stream commits it. Dropping the writer
// on any failure or cancellation abandons the write.
class PutReactor final : public grpc::ServerReadReactor<v1::PutRequest> {
 public:
  PutReactor(BlockStore* store, KvStoreMetrics* metrics,
             grpc::CallbackServerContext* context, v1::PutResponse* response)
      : store_(store),
        metrics_(metrics),
        context_(context),
        response_(response),
        start_(absl::Now()) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(ToGrpcStatus(Complete()));
      return;
    }
    absl::Status status = Absorb();
    if (!status.ok()) {
      writer_.reset();
      VLOG(1) << "put rejected status=" << status;
      Finish(ToGrpcStatus(status));
      return;
    }
    if (response_->already_present()) {
      Finish(grpc::Status::OK);
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override {
    if (metrics_ != nullptr) metrics_->RecordPut(stored_, absl::Now() - start_);
    delete this;
  }

 private:
  // Takes in one message of the stream.
  absl::Status Absorb() {
    if (writer_ == nullptr) {
      if (!request_.has_info() || !request_.info().has_key()) {
        return absl::InvalidArgumentError(
            "first PutRequest of a stream carries no info with a key");
      }
      absl::StatusOr<std::unique_ptr<BlockWriter>> writer =
          store_->BeginPut(FromProto(request_.info()));
      if (writer.status().code() == absl::StatusCode::kAlreadyExists) {
        response_->set_already_present(true);
        return absl::OkStatus();
      }
      if (!writer.ok()) return writer.status();
      writer_ = std::move(*writer);
    } else if (request_.has_info()) {
      return absl::InvalidArgumentError(
          "PutRequest after the first carries info");
    }
    return writer_->Append(request_.data());
  }

  // The client has stopped sending: commit, unless it cancelled.
  absl::Status Complete() {
    std::unique_ptr<BlockWriter> writer = std::move(writer_);
    if (context_->IsCancelled()) {
      return absl::CancelledError("put cancelled by the client");
    }
    if (writer == nullptr) {
      return absl::InvalidArgumentError("put stream carried no messages");
    }
    absl::Status status = writer->Commit();
    if (status.ok()) stored_ = writer->info().total_bytes;
    VLOG(2) << "put key=" << writer->info().key
            << " bytes=" << writer->info().total_bytes
            << (status.ok() ? "" : " status=") << status.message();
    return status;
  }

  BlockStore* const store_;
  KvStoreMetrics* const metrics_;
  grpc::CallbackServerContext* const context_;
  v1::PutResponse* const response_;
  const absl::Time start_;
  v1::PutRequest request_;
  std::unique_ptr<BlockWriter> writer_;
  uint64_t stored_ = 0;  // bytes committed
};

// Sends one pinned block: into the client's shared memory slot if it
// offers one that works, else streamed in chunks. The pin goes as soon as
// the last bytes have left the block.
class GetReactor final : public grpc::ServerWriteReactor<v1::GetResponse> {
 public:
  GetReactor(BlockStore* store, size_t chunk_bytes,
             std::atomic<uint64_t>* shared_memory_gets, KvStoreMetrics* metrics,
             grpc::CallbackServerContext* context,
             const v1::GetRequest& request)
      : chunk_bytes_(chunk_bytes),
        metrics_(metrics),
        context_(context),
        start_(absl::Now()) {
    absl::StatusOr<PinnedBlock> block =
        request.has_key()
            ? store->Get(FromProto(request.key()))
            : absl::InvalidArgumentError("GetRequest carries no key");
    if (!block.ok()) {
      VLOG(2) << "get miss status=" << block.status();
      Finish(ToGrpcStatus(block.status()));
      return;
    }
    block_.emplace(std::move(*block));
    ToProto(block_->info(), response_.mutable_info());
    if (request.has_shared_memory() && WriteToSlot(request.shared_memory())) {
      shared_memory_gets->fetch_add(1, std::memory_order_relaxed);
      in_shared_memory_ = true;
      offset_ = block_->bytes().size();
      response_.set_in_shared_memory(true);
      block_.reset();  // the client has the bytes; see WriteNextChunk
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    WriteNextChunk();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "get stream broken"));
      return;
    }
    response_.Clear();
    WriteNextChunk();
  }

  void OnDone() override {
    if (metrics_ != nullptr) {
      metrics_->RecordGet(offset_, in_shared_memory_, absl::Now() - start_);
    }
    delete this;
  }

 private:
  // True if the block is now in the slot; on failure the block is streamed
  // instead.
  bool WriteToSlot(const v1::SharedMemorySlot& slot) {
    // A client that has given up may lend the slot to another Get soon.
    if (context_->IsCancelled() ||
        std::chrono::system_clock::now() >= context_->deadline()) {
      return false;
    }
    const absl::Status status =
        WriteToSharedMemory(SharedMemorySlot{.name = slot.name(),
                                             .pid = slot.pid(),
                                             .fd = slot.fd(),
                                             .offset = slot.offset(),
                                             .capacity = slot.capacity()},
                            block_->bytes());
    if (!status.ok()) {
      VLOG(1) << "get key=" << block_->info().key
              << " streams instead of shared memory status=" << status;
    }
    return status.ok();
  }

  void WriteNextChunk() {
    const absl::string_view bytes = block_->bytes();
    const size_t size = std::min(chunk_bytes_, bytes.size() - offset_);
    response_.set_data(bytes.data() + offset_, size);
    offset_ += size;
    if (offset_ == bytes.size()) {
      VLOG(2) << "get key=" << block_->info().key << " bytes=" << bytes.size();
      // The last bytes are copied into the reply: unpin before the client
      // can see the end of the stream, so that its next call finds the
      // block evictable.
      block_.reset();
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&response_);
    }
  }

  const size_t chunk_bytes_;
  KvStoreMetrics* const metrics_;
  grpc::CallbackServerContext* const context_;
  const absl::Time start_;
  std::optional<PinnedBlock> block_;
  size_t offset_ = 0;  // block bytes sent so far
  bool in_shared_memory_ = false;
  v1::GetResponse response_;
};

absl::Status AnswerExists(const BlockStore& store,
                          const v1::ExistsRequest& request,
                          v1::ExistsResponse* response) {
  const absl::Status count = CheckKeyCount(request.keys_size());
  if (!count.ok()) return count;
  const std::vector<bool> present = store.Contains(KeysOf(request.keys()));
  const auto first_missing = std::find(present.begin(), present.end(), false);
  response->set_prefix_length(
      static_cast<uint32_t>(first_missing - present.begin()));
  response->set_present(EncodePresenceBitmap(present));
  return absl::OkStatus();
}

absl::Status AnswerRemove(BlockStore& store, const v1::RemoveRequest& request,
                          v1::RemoveResponse* response) {
  const absl::Status count = CheckKeyCount(request.keys_size());
  if (!count.ok()) return count;
  response->set_removed(
      static_cast<uint32_t>(store.Remove(KeysOf(request.keys()))));
  return absl::OkStatus();
}

}  // namespace

KvStoreService::KvStoreService(BlockStore* store, size_t chunk_bytes,
                               KvStoreMetrics* metrics)
    : store_(store), chunk_bytes_(chunk_bytes), metrics_(metrics) {
  CHECK_GT(chunk_bytes, 0u);
  CHECK_LE(chunk_bytes, kMaxChunkBytes);
}

grpc::ServerReadReactor<v1::PutRequest>* KvStoreService::Put(
    grpc::CallbackServerContext* context, v1::PutResponse* response) {
  return new PutReactor(store_, metrics_, context, response);
}

grpc::ServerWriteReactor<v1::GetResponse>* KvStoreService::Get(
    grpc::CallbackServerContext* context, const v1::GetRequest* request) {
  return new GetReactor(store_, chunk_bytes_, &shared_memory_gets_, metrics_,
                        context, *request);
}

grpc::ServerUnaryReactor* KvStoreService::Exists(
    grpc::CallbackServerContext* context, const v1::ExistsRequest* request,
    v1::ExistsResponse* response) {
  if (metrics_ != nullptr) metrics_->RecordExists();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(AnswerExists(*store_, *request, response)));
  return reactor;
}

grpc::ServerUnaryReactor* KvStoreService::Remove(
    grpc::CallbackServerContext* context, const v1::RemoveRequest* request,
    v1::RemoveResponse* response) {
  if (metrics_ != nullptr) metrics_->RecordRemove();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(AnswerRemove(*store_, *request, response)));
  return reactor;
}

grpc::ServerUnaryReactor* KvStoreService::Stats(
    grpc::CallbackServerContext* context, const v1::StatsRequest* request,
    v1::StatsResponse* response) {
  ToProto(store_->Stats(), response);
  response->set_shared_memory_gets(
      shared_memory_gets_.load(std::memory_order_relaxed));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace tandem
