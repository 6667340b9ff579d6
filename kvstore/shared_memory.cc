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

constexpr absl::string_view kNamePrefix = "/tandem-kv-";

absl::Status Errno(absl::string_view what, const std::string& name) {
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

absl::Status WriteToSharedMemory(const std::string& name, uint64_t offset,
                                 uint64_t capacity, absl::string_view bytes) {
  if (!IsSharedMemorySlotName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" is not a KV store shared memory name"));
  }
  constexpr uint64_t kMaxOffset = std::numeric_limits<off_t>::max();
  if (bytes.size() > capacity || offset > kMaxOffset - bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block of ", bytes.size(), " bytes does not fit the slot at ", offset,
        " of ", capacity, " bytes"));
  }
  const int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) return Errno("cannot open", name);
  struct stat status;
  absl::Status result;
  if (fstat(fd, &status) != 0) {
    result = Errno("cannot inspect", name);
  } else if (offset + bytes.size() > static_cast<uint64_t>(status.st_size)) {
    result = absl::InvalidArgumentError(
        absl::StrCat("slot at ", offset, " lies outside shared memory ", name));
  } else if (!WriteFully(fd, bytes, offset)) {
    result = Errno("cannot write", name);
  }
  close(fd);
  return result;
}

bool IsLoopbackAddress(absl::string_view address) {
  const size_t colon = address.rfind(':');
  absl::string_view host =
      colon == absl::string_view::npos ? address : address.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

SharedMemoryPool::SharedMemoryPool(std::string name, char* base, uint64_t size,
                                   uint64_t slot_bytes, int slots)
    : name_(std::move(name)),
      base_(base),
      size_(size),
      slot_bytes_(slot_bytes) {
  for (int i = slots - 1; i >= 0; --i) free_slots_.push_back(i);
}

absl::StatusOr<std::unique_ptr<SharedMemoryPool>> SharedMemoryPool::Create(
    int slots, uint64_t slot_bytes) {
  uint64_t size = 0;
  if (slots <= 0 || slot_bytes == 0 ||
      __builtin_mul_overflow(static_cast<uint64_t>(slots), slot_bytes, &size) ||
      size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("bad shared memory pool of ",
                                                   slots, " slots of ",
                                                   slot_bytes, " bytes"));
  }
  std::random_device random;
  const std::string name = absl::StrFormat("%s%x-%08x%08x", kNamePrefix,
                                           getpid(), random(), random());
  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return Errno("cannot create", name);
  absl::Status status;
  void* base = MAP_FAILED;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    status = Errno("cannot size", name);
  } else if (const int error = posix_fallocate(fd, 0, static_cast<off_t>(size));
             error != 0) {
    errno = error;
    status = Errno("cannot reserve", name);
  } else {
    base = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) status = Errno("cannot map", name);
  }
  close(fd);
  if (!status.ok()) {
    shm_unlink(name.c_str());
    return status;
  }
  return std::unique_ptr<SharedMemoryPool>(new SharedMemoryPool(
      name, static_cast<char*>(base), size, slot_bytes, slots));
}

SharedMemoryPool::~SharedMemoryPool() {
  munmap(base_, size_);
  shm_unlink(name_.c_str());
}

std::optional<SharedMemoryPool::Slot> SharedMemoryPool::TryAcquire() {
  absl::MutexLock lock(&mu_);
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

}  // namespace tandem
