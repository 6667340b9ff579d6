// The rpcs behind KvStoreClient: one reactor class per streaming call, a
// holder for unary calls, and the limiter that bounds and awaits the calls
// of one batch. Internal to the client; kvstore_client.h is the interface.
//
// Each call starts in its constructor, writes its result when it finishes
// and then releases its slot in the CallLimiter; the caller owns the call
// objects and destroys them only after CallLimiter::WaitForAll.
#ifndef TANDEM_KVSTORE_CLIENT_CALLS_H_
#define TANDEM_KVSTORE_CLIENT_CALLS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "kvstore/block_info.h"
#include "kvstore/shared_memory.h"
#include "proto/kvstore.grpc.pb.h"

namespace tandem::kvstore_internal {

// A node's reply status as an absl::Status whose message names the node.
absl::Status FromNode(absl::string_view address, const grpc::Status& status);

// Bounds the number of calls running at once and waits for them to finish.
// Thread-safe.
class CallLimiter {
 public:
  // REQUIRES: max_in_flight > 0.
  explicit CallLimiter(int max_in_flight) : max_in_flight_(max_in_flight) {}
  // Blocks while max_in_flight calls are running, then counts one more.
  void Acquire() ABSL_LOCKS_EXCLUDED(mu_);
  // A call has finished; the last thing a call does.
  void Release() ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until every acquired call has been released.
  void WaitForAll() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return running_ < max_in_flight_;
  }
  bool AllDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return running_ == 0;
  }

  const int max_in_flight_;
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

// Where and by when a call runs. The pointers are not owned and must
// outlive the call.
struct CallTarget {
  v1::KvStore::Stub* stub;
  const std::string* address;
  absl::Time deadline;
  CallLimiter* limiter;  // already acquired for this call
};

// Streams one block to a node: info and the first bytes, then the rest in
// chunks. REQUIRES: `block` and `result` outlive the call.
class PutCall final : public grpc::ClientWriteReactor<v1::PutRequest> {
 public:
  PutCall(const CallTarget& target, absl::string_view block,
          const BlockInfo& info, size_t chunk_bytes, absl::Status* result);

  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void WriteNextChunk();

  const CallTarget target_;
  const absl::string_view block_;
  const size_t chunk_bytes_;
  absl::Status* const result_;
  size_t offset_ = 0;
  grpc::ClientContext context_;
  v1::PutRequest request_;
  v1::PutResponse response_;
};

// Where GetCalls deliver their outcomes, by the index of their key.
// Implementations must accept calls for different indices concurrently.
class GetSink {
 public:
  virtual ~GetSink() = default;
  // The block of key `index`, checked against its checksum: `block` is
  // valid only during the call; `owned` is the client's own copy of it, which
  // the sink may move from, or null when `block` lies in a shared memory
  // slot.
  virtual void Deliver(size_t index, absl::string_view block,
                       std::string* owned) = 0;
  virtual void Fail(size_t index, absl::Status status) = 0;
};

// Reads one block from a node and checks it against its info: the key
// asked for, at most max_block_bytes, exactly total_bytes, the checksum.
// Offers the node a slot of `shared_memory` unless it is null or has none
// free. REQUIRES: `sink` and `shared_memory` outlive the call.
class GetCall final : public grpc::ClientReadReactor<v1::GetResponse> {
 public:
  GetCall(const CallTarget& target, const BlockKey& key,
          uint64_t max_block_bytes, SharedMemoryPool* shared_memory,
          GetSink* sink, size_t index);

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  // Takes in one reply message; FailedPrecondition if it breaks the
  // protocol.
  absl::Status Absorb();
  // Checks a reply that says the block is in the shared memory slot.
  absl::Status AbsorbSlot();
  // The block received, or why there is none.
  absl::StatusOr<absl::string_view> Received(const grpc::Status& status);

  const CallTarget target_;
  const BlockKey key_;
  const uint64_t max_block_bytes_;
  SharedMemoryPool* const shared_memory_;
  GetSink* const sink_;
  const size_t index_;
  std::optional<SharedMemoryPool::Slot> slot_;  // lent to the node
  bool in_slot_ = false;  // the node wrote the block into slot_
  bool have_info_ = false;
  BlockInfo info_;
  std::string bytes_;  // the block, when streamed
  absl::Status protocol_error_;
  grpc::ClientContext context_;
  v1::GetRequest request_;
  v1::GetResponse response_;
};

// The state of one unary call; the caller fills `request`, starts it with
// the stub's callback method on `context`, and reads `status` and
// `response` after CallLimiter::WaitForAll.
template <typename Request, typename Response>
struct UnaryCall {
  std::string address;
  grpc::ClientContext context;
  Request request;
  Response response;
  grpc::Status status;
};

}  // namespace tandem::kvstore_internal

#endif  // TANDEM_KVSTORE_CLIENT_CALLS_H_
