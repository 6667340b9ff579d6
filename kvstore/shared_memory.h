// The same-host fast path of KV store Gets: a client on the node's host
// offers a slot of a POSIX shared memory object it owns, and the node writes
// the block into that slot instead of streaming its bytes over the socket.
// The block then crosses once through the kernel (the node's pwrite) and
// once into the caller's buffer, instead of through gRPC's buffers and the
// TCP stack, and the client still checks it against its checksum.
//
// The node opens the object by name for each Get and writes with pwrite, so
// it never maps client memory (a client that shrinks its object cannot
// crash the node) and keeps no descriptor once the Get is done. Names are
// restricted to the form SharedMemoryPool creates, so a node only ever
// writes into objects made for this purpose. Anyone who can reach a node
// from the same host and user could aim its writes at another client's
// slots; the path trusts same-host, same-user clients to that extent. A
// node still writing for a Get its client has abandoned (deadline passed)
// can only make a later Get through the same slot fail its checksum, never
// return wrong bytes.
#ifndef TANDEM_KVSTORE_SHARED_MEMORY_H_
#define TANDEM_KVSTORE_SHARED_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tandem {

// True if `name` has the form of a SharedMemoryPool object:
// "/tandem-kv-" followed by 1 to 64 lowercase hex digits or dashes.
bool IsSharedMemorySlotName(absl::string_view name);

// Writes `bytes` at `offset` of the shared memory object `name` (node
// side). InvalidArgument if the name is not a slot name or the bytes exceed
// `capacity`; NotFound if no such object exists on this host; Unavailable
// if it cannot be written (permissions, no space).
absl::Status WriteToSharedMemory(const std::string& name, uint64_t offset,
                                 uint64_t capacity, absl::string_view bytes);

// True if `address` ("host:port") names this host over loopback: a host of
// localhost, 127.x.x.x or [::1].
bool IsLoopbackAddress(absl::string_view address);

// A client's shared memory object, split into equal slots that Gets lend
// to nodes. Thread-safe. The object is removed from /dev/shm when the pool
// is destroyed (or stays behind if the process dies).
class SharedMemoryPool {
 public:
  // A slot lent to one Get; give it back with Release.
  struct Slot {
    uint64_t offset = 0;
    uint64_t capacity = 0;
    const char* data = nullptr;  // the slot's bytes, mapped read-only
  };

  // Creates an object of `slots` slots of `slot_bytes` each, with its space
  // reserved up front (so that a full /dev/shm fails here, not later).
  // InvalidArgument for zero sizes; Unavailable if the object cannot be
  // created, sized or mapped.
  static absl::StatusOr<std::unique_ptr<SharedMemoryPool>> Create(
      int slots, uint64_t slot_bytes);

  ~SharedMemoryPool();

  // The object's name, for GetRequest.shared_memory.name.
  const std::string& name() const { return name_; }

  // A free slot, or nullopt if every slot is lent.
  std::optional<Slot> TryAcquire() ABSL_LOCKS_EXCLUDED(mu_);
  // Returns a slot from TryAcquire.
  void Release(const Slot& slot) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  SharedMemoryPool(std::string name, char* base, uint64_t size,
                   uint64_t slot_bytes, int slots);

  // Constant after construction.
  const std::string name_;
  char* const base_;
  const uint64_t size_;
  const uint64_t slot_bytes_;

  absl::Mutex mu_;
  std::vector<int> free_slots_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_KVSTORE_SHARED_MEMORY_H_
