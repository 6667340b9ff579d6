// The tandem.v1.KvStore gRPC service over one BlockStore, on the callback
// API: one reactor per streaming call. This is the only place where the
// store's absl::Status becomes a grpc::Status; proto/kvstore.proto lists
// the codes each rpc returns.
//
// Gets from clients on the node's host may take the shared memory path of
// kvstore/shared_memory.h.
//
// Thread-safety: gRPC calls the service from many threads at once; the
// store is thread-safe and the service's own counter is atomic.
#ifndef TANDEM_KVSTORE_KVSTORE_SERVICE_H_
#define TANDEM_KVSTORE_KVSTORE_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "grpcpp/grpcpp.h"
#include "kvstore/block_store.h"
#include "kvstore/kvstore_metrics.h"
#include "proto/kvstore.grpc.pb.h"

namespace tandem {

// Most keys one Exists or Remove call may carry.
inline constexpr int kMaxKeysPerCall = 65536;
// Most block bytes one Put or Get message may carry.
inline constexpr size_t kMaxChunkBytes = size_t{4} << 20;
// Largest message a node or client accepts: a full chunk plus its info.
inline constexpr int kMaxMessageBytes = kMaxChunkBytes + (64 << 10);

class KvStoreService final : public v1::KvStore::CallbackService {
 public:
  // Serves `store`, streaming Get replies in messages of `chunk_bytes` bytes
  // of block data, and reports each call to `metrics` if it is not null.
  // Does not take ownership. REQUIRES: `store` and `metrics` outlive the
  // service and every call it serves; 0 < chunk_bytes <= kMaxChunkBytes.
  KvStoreService(BlockStore* store, size_t chunk_bytes,
                 KvStoreMetrics* metrics = nullptr);

  grpc::ServerReadReactor<v1::PutRequest>* Put(
      grpc::CallbackServerContext* context, v1::PutResponse* response) override;
  grpc::ServerWriteReactor<v1::GetResponse>* Get(
      grpc::CallbackServerContext* context,
      const v1::GetRequest* request) override;
  grpc::ServerUnaryReactor* Exists(grpc::CallbackServerContext* context,
                                   const v1::ExistsRequest* request,
                                   v1::ExistsResponse* response) override;
  grpc::ServerUnaryReactor* Remove(grpc::CallbackServerContext* context,
                                   const v1::RemoveRequest* request,
                                   v1::RemoveResponse* response) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context,
                                  const v1::StatsRequest* request,
                                  v1::StatsResponse* response) override;

 private:
  BlockStore* const store_;
  const size_t chunk_bytes_;
  KvStoreMetrics* const metrics_;
  std::atomic<uint64_t> shared_memory_gets_{0};
};

}  // namespace tandem

#endif  // TANDEM_KVSTORE_KVSTORE_SERVICE_H_
