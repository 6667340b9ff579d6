// The client of a KV store cluster: puts, gets, existence and prefix
// queries and removals of encoded KV blocks, spread over the store nodes by
// rendezvous hashing on the block key (rendezvous.h), so that every client
// with the same node list agrees where a block lives.
//
// Batch calls run their rpcs concurrently (up to max_in_flight at a time)
// and group key queries into one rpc per node, keeping each node's keys in
// the order given. Every rpc carries a deadline of options.timeout. Gets
// from a node on the same host receive the block through shared memory
// when they can (options.shared_memory).
//
// Status codes, besides those named per call:
//   Unavailable       a node is down or unreachable; the message names its
//                     address. Retry safe.
//   DeadlineExceeded  a node did not answer within options.timeout.
//   FailedPrecondition a node broke the protocol (a reply that does not fit
//                     the request).
//   Other codes come from the node, as proto/kvstore.proto documents, with
//   the node's address in the message.
//
// Thread-safety: a KvStoreClient is thread-safe; calls block the calling
// thread until all their rpcs are done.
#ifndef TANDEM_KVSTORE_KVSTORE_CLIENT_H_
#define TANDEM_KVSTORE_KVSTORE_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/block_key.h"
#include "kvstore/block_store.h"
#include "kvstore/shared_memory.h"

namespace tandem {
namespace kvstore_internal {
class GetSink;
}  // namespace kvstore_internal

struct KvStoreClientOptions {
  // host:port of every store node; each distinct, at least one.
  std::vector<std::string> nodes;
  // Deadline of each rpc, from when it starts.
  absl::Duration timeout = absl::Seconds(10);
  // Block bytes per Put message, at most kMaxChunkBytes (4 MiB).
  size_t chunk_bytes = size_t{1} << 20;
  // Most rpcs one batch call runs at a time.
  int max_in_flight = 32;
  // Largest block a Get accepts from a node.
  uint64_t max_block_bytes = uint64_t{64} << 20;
  // Gets from nodes on this host (loopback addresses) offer a slot of a
  // shared memory pool (kvstore/shared_memory.h) of max_in_flight slots of
  // this many bytes; larger blocks, and Gets that find every slot in use,
  // stream over the socket. False turns the pool off.
  bool shared_memory = true;
  uint64_t shared_memory_slot_bytes = uint64_t{2} << 20;
};

// One node's counters.
struct KvStoreNodeStats {
  std::string address;
  BlockStoreStats stats;
  uint64_t shared_memory_gets = 0;  // Gets answered through shared memory
};

class KvStoreClient {
 public:
  // Connects lazily: no rpc is made here. InvalidArgument if there are no
  // nodes, a node is listed twice, a size or the timeout is not positive,
  // or chunk_bytes is above kMaxChunkBytes.
  static absl::StatusOr<std::unique_ptr<KvStoreClient>> Create(
      const KvStoreClientOptions& options);

  ~KvStoreClient();

  // The address of the node that holds `key`.
  const std::string& NodeFor(const BlockKey& key) const;

  // Stores an encoded block (docs/kv_block_format.md) on its node; its key,
  // model and token count come from its header. OK if it was stored or was
  // already there. InvalidArgument if `block` is not a keyed KV block (the
  // header is checked here, the payload by the node); otherwise the node's
  // codes: InvalidArgument, DataLoss, ResourceExhausted.
  absl::Status Put(absl::string_view block);
  // Put for each block, concurrently; one status per block, in order.
  std::vector<absl::Status> PutMany(absl::Span<const absl::string_view> blocks);

  // The encoded block keyed `key`, checked against its checksum. NotFound
  // if its node does not hold it; DataLoss if the bytes do not match their
  // checksum.
  absl::StatusOr<std::string> Get(const BlockKey& key);
  // Get for each key, concurrently; one result per key, in order.
  std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys);

  // Consumes a block received by GetManyInto: `index` is its key's index,
  // `block` its bytes, valid only during the call.
  using BlockConsumer =
      absl::FunctionRef<absl::Status(size_t index, absl::string_view block)>;
  // Gets each key's block, concurrently, and passes it, checked against its
  // checksum, to `consume` without copying it first (a same-host block is
  // read straight from shared memory), for callers that copy blocks into
  // memory of their own such as a KV cache. `consume` runs on the client's
  // threads, for different keys at once. One status per key, in order: the
  // Get's error as for Get, else what `consume` returned.
  std::vector<absl::Status> GetManyInto(absl::Span<const BlockKey> keys,
                                        BlockConsumer consume);

  // Whether each key is stored, one rpc per node involved. InvalidArgument
  // if more than 65536 keys go to one node.
  absl::StatusOr<std::vector<bool>> Exists(absl::Span<const BlockKey> keys);

  // For a key chain in sequence order, the number of leading keys that are
  // stored (the index of the first missing one). Codes as Exists.
  absl::StatusOr<size_t> LongestPrefix(absl::Span<const BlockKey> chain);

  // Removes the keys from their nodes; returns how many were stored. Codes
  // as Exists. Keys removed from nodes that answered stay removed if
  // another node fails.
  absl::StatusOr<uint64_t> Remove(absl::Span<const BlockKey> keys);

  // Every node's counters, in the order of options.nodes.
  absl::StatusOr<std::vector<KvStoreNodeStats>> Stats();

 private:
  struct Node;
  explicit KvStoreClient(const KvStoreClientOptions& options);
  // Creates shared_memory_ if the options and the nodes call for it.
  void StartSharedMemory();
  // Runs a Get for each key, delivering to `sink`.
  void RunGets(absl::Span<const BlockKey> keys,
               kvstore_internal::GetSink* sink);

  // The keys of `keys` grouped by node: for each node, the indices into
  // `keys` of the keys it holds, in order. InvalidArgument if a node gets
  // more keys than one rpc may carry.
  absl::StatusOr<std::vector<std::vector<size_t>>> GroupByNode(
      absl::Span<const BlockKey> keys) const;

  const KvStoreClientOptions options_;
  std::vector<uint64_t> node_seeds_;
  std::vector<std::unique_ptr<Node>> nodes_;
  // Null unless a node is on this host and options_.shared_memory is set.
  std::unique_ptr<SharedMemoryPool> shared_memory_;
};

}  // namespace tandem

#endif  // TANDEM_KVSTORE_KVSTORE_CLIENT_H_
