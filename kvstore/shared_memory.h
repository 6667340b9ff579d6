// The same-host fast path of KV store Gets: a client on the node's host
// offers a slot of a memory file it owns (a memfd), and the node writes the
// block into that slot instead of streaming its bytes over the socket. The
// block then crosses once through the kernel (the node's pwrite) and once
// into the caller's buffer, instead of through gRPC's buffers and the TCP
// stack, and the client still checks it against its checksum.
//
// The node reaches the memfd through /proc/<client pid>/fd/<fd>, checks that
// what it opened is a memfd of the slot's name (random per pool, so a
// reused pid or descriptor, or a client in another pid namespace, never
// matches), writes with pwrite and closes it again. It never maps client
// memory, so a client that shrinks its memfd cannot crash the node, and a
// memfd disappears with its process, so a client that dies leaves nothing
// behind. The node can only open the memfds of processes it could trace
// (the same user); anyone who can reach a node as that user could aim its
// writes at another client's slots, and the path trusts same-host,
// same-user clients to that extent. A node writes a slot only for a Get
// that is neither cancelled nor past its deadline, and a client lends a
// slot whose Get failed again only after a quarantine, so that a late write
// for an abandoned Get cannot land in a slot lent to a later one.
#ifndef TANDEM_KVSTORE_SHARED_MEMORY_H_
#define TANDEM_KVSTORE_SHARED_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem {

// Where a client's slot is, as a node on the same host reaches it.
struct SharedMemorySlot {
  std::string name;  // the memfd's name, IsSharedMemorySlotName
  uint32_t pid = 0;  // the client's process
  int32_t fd = -1;   // the client's descriptor of the memfd
  uint64_t offset = 0;
  uint64_t capacity = 0;
};

// True if `name` has the form of a SharedMemoryPool memfd name:
// "tandem-kv-" followed by 1 to 64 lowercase hex digits or dashes.
bool IsSharedMemorySlotName(absl::string_view name);

// Writes `bytes` into `slot` (node side). InvalidArgument if the slot is
// malformed (name, pid, fd) or the bytes exceed its capacity or its memfd;
// NotFound if the process has no such descriptor or it is not a memfd of
// that name; Unavailable if it cannot be opened or written (permissions,
// no memory).
absl::Status WriteToSharedMemory(const SharedMemorySlot& slot,
                                 absl::string_view bytes);

// True if `address` ("host:port") names this host over loopback: a host of
// localhost, 127.x.x.x or [::1].
bool IsLoopbackAddress(absl::string_view address);

// A client's memfd, split into equal slots that Gets lend to nodes. It is
// freed when the pool is destroyed or the process ends. Thread-safe.
class SharedMemoryPool {
 public:
  // A slot lent to one Get; give it back with Release.
  struct Slot {
    uint64_t offset = 0;
    uint64_t capacity = 0;
    const char* data = nullptr;  // the slot's bytes, mapped read-only
  };

  // Creates a memfd of `slots` slots of `slot_bytes` each. It is sparse:
  // memory is taken as nodes write blocks into slots. Quarantined slots are
  // lent again after `quarantine`. InvalidArgument for zero sizes or a
  // negative quarantine; Unavailable if the memfd cannot be created, sized
  // or mapped.
  static absl::StatusOr<std::unique_ptr<SharedMemoryPool>> Create(
      int slots, uint64_t slot_bytes,
      absl::Duration quarantine = absl::Seconds(10));

  ~SharedMemoryPool();

  // Where `slot` is, for a node to write into.
  SharedMemorySlot Locate(const Slot& slot) const;

  // A free slot, or nullopt if every slot is lent or quarantined.
  std::optional<Slot> TryAcquire() ABSL_LOCKS_EXCLUDED(mu_);
  // Returns a slot from TryAcquire whose Get succeeded.
  void Release(const Slot& slot) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns a slot from TryAcquire whose Get failed: a node may still be
  // writing into it, so it is lent again only after the quarantine.
  void Quarantine(const Slot& slot) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  SharedMemoryPool(std::string name, int fd, char* base, uint64_t size,
                   uint64_t slot_bytes, int slots, absl::Duration quarantine);

  // Constant after construction.
  const std::string name_;
  const int fd_;
  char* const base_;
  const uint64_t size_;
  const uint64_t slot_bytes_;
  const absl::Duration quarantine_;

  absl::Mutex mu_;
  std::vector<int> free_slots_ ABSL_GUARDED_BY(mu_);
  // Quarantined slots and when each may be lent again, oldest first.
  std::deque<std::pair<int, absl::Time>> quarantined_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_KVSTORE_SHARED_MEMORY_H_
