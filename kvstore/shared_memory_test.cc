#include "kvstore/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(SharedMemoryTest, SlotNamesHaveTheTandemForm) {
  EXPECT_TRUE(IsSharedMemorySlotName("tandem-kv-1a2b-00ff"));
  EXPECT_FALSE(IsSharedMemorySlotName("tandem-kv-"));
  EXPECT_FALSE(IsSharedMemorySlotName("tandem-kv-../../etc"));
  EXPECT_FALSE(IsSharedMemorySlotName("other-1234"));
  EXPECT_FALSE(IsSharedMemorySlotName("tandem-kv-ABCD"));
  EXPECT_FALSE(IsSharedMemorySlotName("tandem-kv-" + std::string(65, 'a')));
}

TEST(SharedMemoryTest, LoopbackAddressesAreSameHost) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:50061"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:50061"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:50061"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.7:50061"));
  EXPECT_FALSE(IsLoopbackAddress("kvstore-0.example:50061"));
  EXPECT_FALSE(IsLoopbackAddress("1270.0.0.1:1"));
}

TEST(SharedMemoryTest, NodeWritesLandInTheClientsSlot) {
  auto pool = SharedMemoryPool::Create(2, 4096);
  ASSERT_TRUE(pool.ok()) << pool.status();
  std::optional<SharedMemoryPool::Slot> first = (*pool)->TryAcquire();
  std::optional<SharedMemoryPool::Slot> second = (*pool)->TryAcquire();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_FALSE((*pool)->TryAcquire().has_value());
  const absl::Status written =
      WriteToSharedMemory((*pool)->Locate(*second), "block bytes");
  ASSERT_TRUE(written.ok()) << written;
  EXPECT_EQ(std::string(second->data, 11), "block bytes");
  (*pool)->Release(*first);
  EXPECT_TRUE((*pool)->TryAcquire().has_value());
}

TEST(SharedMemoryTest, QuarantinedSlotIsLentAgainOnlyAfterTheQuarantine) {
  auto held = SharedMemoryPool::Create(1, 16, absl::Hours(1));
  ASSERT_TRUE(held.ok()) << held.status();
  (*held)->Quarantine(*(*held)->TryAcquire());
  EXPECT_FALSE((*held)->TryAcquire().has_value());

  auto brief = SharedMemoryPool::Create(1, 16, absl::ZeroDuration());
  ASSERT_TRUE(brief.ok()) << brief.status();
  (*brief)->Quarantine(*(*brief)->TryAcquire());
  EXPECT_TRUE((*brief)->TryAcquire().has_value());
}

TEST(SharedMemoryTest, RefusesWritesThatDoNotFit) {
  auto pool = SharedMemoryPool::Create(1, 16);
  ASSERT_TRUE(pool.ok()) << pool.status();
  SharedMemorySlot slot = (*pool)->Locate(*(*pool)->TryAcquire());
  EXPECT_EQ(WriteToSharedMemory(slot, std::string(17, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
  // A slot claimed beyond the end of the memfd.
  slot.offset = 8;
  EXPECT_EQ(WriteToSharedMemory(slot, std::string(16, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
  slot.offset = ~uint64_t{0};
  EXPECT_EQ(WriteToSharedMemory(slot, "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SharedMemoryTest, DescriptorsThatAreNotTheSlotAreRefused) {
  auto pool = SharedMemoryPool::Create(1, 16);
  ASSERT_TRUE(pool.ok()) << pool.status();
  SharedMemorySlot slot = (*pool)->Locate(*(*pool)->TryAcquire());
  // Another file of this process under the slot's descriptor number.
  SharedMemorySlot elsewhere = slot;
  elsewhere.fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(elsewhere.fd, 0);
  EXPECT_EQ(WriteToSharedMemory(elsewhere, "x").code(),
            absl::StatusCode::kNotFound);
  close(elsewhere.fd);
  // A memfd of another name.
  SharedMemorySlot renamed = slot;
  renamed.name = "tandem-kv-0-beef";
  EXPECT_EQ(WriteToSharedMemory(renamed, "x").code(),
            absl::StatusCode::kNotFound);
  // A descriptor the process does not have.
  SharedMemorySlot missing = slot;
  missing.fd = 1 << 20;
  EXPECT_EQ(WriteToSharedMemory(missing, "x").code(),
            absl::StatusCode::kNotFound);
  // Malformed slots.
  SharedMemorySlot foreign = slot;
  foreign.name = "not-ours";
  EXPECT_EQ(WriteToSharedMemory(foreign, "x").code(),
            absl::StatusCode::kInvalidArgument);
  foreign = slot;
  foreign.pid = 0;
  EXPECT_EQ(WriteToSharedMemory(foreign, "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SharedMemoryTest, PoolClosesItsMemfd) {
  SharedMemorySlot slot;
  {
    auto pool = SharedMemoryPool::Create(1, 16);
    ASSERT_TRUE(pool.ok()) << pool.status();
    slot = (*pool)->Locate(*(*pool)->TryAcquire());
  }
  EXPECT_EQ(WriteToSharedMemory(slot, "x").code(), absl::StatusCode::kNotFound);
}

TEST(SharedMemoryTest, BadPoolSizesAreInvalidArgument) {
  EXPECT_EQ(SharedMemoryPool::Create(0, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedMemoryPool::Create(1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedMemoryPool::Create(1, 16, absl::Seconds(-1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
