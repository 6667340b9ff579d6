#include "kvstore/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace tandem {
namespace {

constexpr absl::string_view kNamePrefix = "tandem-kv-";

absl::Status Errno(absl::string_view what, absl::string_view name) {
  const int error = errno;
  const std::string message =
      absl::StrCat(what, " shared memory ", name, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  return absl::UnavailableError(message);
}

// Writes all of `bytes` at `offset` of `fd`.
bool WriteFully(int fd, absl::string_view bytes, uint64_t offset) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = pwrite(fd, bytes.data() + done, bytes.size() - done,
                             static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// What the descriptor `fd` of this process refers to, as /proc shows it.
std::string DescriptorTarget(int fd) {
  char target[256];
  const ssize_t n = readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), target,
                             sizeof(target));
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(target)) return "";
  return std::string(target, n);
}

// Checks the opened descriptor and writes the slot.
absl::Status WriteOpened(int fd, const SharedMemorySlot& slot,
                         absl::string_view bytes) {
  // A memfd shows as "/memfd:<name> (deleted)".
  if (DescriptorTarget(fd) !=
      absl::StrCat("/memfd:", slot.name, " (deleted)")) {
    return absl::NotFoundError(
        absl::StrCat("descriptor ", slot.fd, " of process ", slot.pid,
                     " is not shared memory ", slot.name));
  }
  struct stat status;
  if (fstat(fd, &status) != 0) return Errno("cannot inspect", slot.name);
  if (slot.offset + bytes.size() > static_cast<uint64_t>(status.st_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slot at ", slot.offset, " lies outside shared memory ", slot.name));
  }
  if (!WriteFully(fd, bytes, slot.offset)) {
    return Errno("cannot write", slot.name);
  }
  return absl::OkStatus();
}

}  // namespace

bool IsSharedMemorySlotName(absl::string_view name) {
  if (!absl::StartsWith(name, kNamePrefix)) return false;
  const absl::string_view rest = name.substr(kNamePrefix.size());
  if (rest.empty() || rest.size() > 64) return false;
  for (char c : rest) {
    if (!(absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f') || c == '-')) {
      return false;
    }
  }
  return true;
}

absl::Status WriteToSharedMemory(const SharedMemorySlot& slot,
                                 absl::string_view bytes) {
  if (!IsSharedMemorySlotName(slot.name) || slot.pid == 0 || slot.fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed shared memory slot \"", slot.name, "\" pid ",
                     slot.pid, " fd ", slot.fd));
  }
  constexpr uint64_t kMaxOffset = std::numeric_limits<off_t>::max();
  if (bytes.size() > slot.capacity || slot.offset > kMaxOffset - bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block of ", bytes.size(), " bytes does not fit the slot at ",
        slot.offset, " of ", slot.capacity, " bytes"));
  }
  const int fd = open(absl::StrCat("/proc/", slot.pid, "/fd/", slot.fd).c_str(),
                      O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", slot.name);
  const absl::Status status = WriteOpened(fd, slot, bytes);
  close(fd);
  return status;
}

bool IsLoopbackAddress(absl::string_view address) {
  const size_t colon = address.rfind(':');
  absl::string_view host =
      colon == absl::string_view::npos ? address : address.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

SharedMemoryPool::SharedMemoryPool(std::string name, int fd, char* base,
                                   uint64_t size, uint64_t slot_bytes,
                                   int slots, absl::Duration quarantine)
    : name_(std::move(name)),
      fd_(fd),
      base_(base),
      size_(size),
      slot_bytes_(slot_bytes),
      quarantine_(quarantine) {
  for (int i = slots - 1; i >= 0; --i) free_slots_.push_back(i);
}

absl::StatusOr<std::unique_ptr<SharedMemoryPool>> SharedMemoryPool::Create(
    int slots, uint64_t slot_bytes, absl::Duration quarantine) {
  uint64_t size = 0;
  if (slots <= 0 || slot_bytes == 0 || quarantine < absl::ZeroDuration() ||
      __builtin_mul_overflow(static_cast<uint64_t>(slots), slot_bytes, &size) ||
      size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("bad shared memory pool of ",
                                                   slots, " slots of ",
                                                   slot_bytes, " bytes"));
  }
  std::random_device random;
  const std::string name = absl::StrFormat("%s%x-%08x%08x", kNamePrefix,
                                           getpid(), random(), random());
  const int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) return Errno("cannot create", name);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const absl::Status status = Errno("cannot size", name);
    close(fd);
    return status;
  }
  void* base = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const absl::Status status = Errno("cannot map", name);
    close(fd);
    return status;
  }
  return std::unique_ptr<SharedMemoryPool>(new SharedMemoryPool(
      name, fd, static_cast<char*>(base), size, slot_bytes, slots, quarantine));
}

SharedMemoryPool::~SharedMemoryPool() {
  munmap(base_, size_);
  close(fd_);
}

SharedMemorySlot SharedMemoryPool::Locate(const Slot& slot) const {
  return SharedMemorySlot{.name = name_,
                          .pid = static_cast<uint32_t>(getpid()),
                          .fd = fd_,
                          .offset = slot.offset,
                          .capacity = slot.capacity};
}

std::optional<SharedMemoryPool::Slot> SharedMemoryPool::TryAcquire() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  while (!quarantined_.empty() && quarantined_.front().second <= now) {
    free_slots_.push_back(quarantined_.front().first);
    quarantined_.pop_front();
  }
  if (free_slots_.empty()) return std::nullopt;
  const uint64_t index = free_slots_.back();
  free_slots_.pop_back();
  return Slot{.offset = index * slot_bytes_,
              .capacity = slot_bytes_,
              .data = base_ + index * slot_bytes_};
}

void SharedMemoryPool::Release(const Slot& slot) {
  absl::MutexLock lock(&mu_);
  free_slots_.push_back(static_cast<int>(slot.offset / slot_bytes_));
}

void SharedMemoryPool::Quarantine(const Slot& slot) {
  absl::MutexLock lock(&mu_);
  quarantined_.emplace_back(static_cast<int>(slot.offset / slot_bytes_),
                            absl::Now() + quarantine_);
}

}  // namespace tandem
