#include "kvstore/shared_memory.h"

#include <string>

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(SharedMemoryTest, SlotNamesHaveTheTandemForm) {
  EXPECT_TRUE(IsSharedMemorySlotName("/tandem-kv-1a2b-00ff"));
  EXPECT_FALSE(IsSharedMemorySlotName("/tandem-kv-"));
  EXPECT_FALSE(IsSharedMemorySlotName("/tandem-kv-../../etc"));
  EXPECT_FALSE(IsSharedMemorySlotName("/other-1234"));
  EXPECT_FALSE(IsSharedMemorySlotName("/tandem-kv-ABCD"));
  EXPECT_FALSE(IsSharedMemorySlotName("/tandem-kv-" + std::string(65, 'a')));
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
  ASSERT_TRUE(WriteToSharedMemory((*pool)->name(), second->offset,
                                  second->capacity, "block bytes")
                  .ok());
  EXPECT_EQ(std::string(second->data, 11), "block bytes");
  (*pool)->Release(*first);
  EXPECT_TRUE((*pool)->TryAcquire().has_value());
}

TEST(SharedMemoryTest, RefusesWritesThatDoNotFit) {
  auto pool = SharedMemoryPool::Create(1, 16);
  ASSERT_TRUE(pool.ok()) << pool.status();
  const std::string name = (*pool)->name();
  EXPECT_EQ(WriteToSharedMemory(name, 0, 16, std::string(17, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
  // A slot claimed beyond the end of the object.
  EXPECT_EQ(WriteToSharedMemory(name, 8, 16, std::string(16, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteToSharedMemory(name, ~uint64_t{0}, 16, "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SharedMemoryTest, UnknownOrForeignObjectsAreRefused) {
  EXPECT_EQ(WriteToSharedMemory("/tandem-kv-0-dead", 0, 16, "x").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(WriteToSharedMemory("/not-ours", 0, 16, "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SharedMemoryTest, PoolRemovesItsObject) {
  std::string name;
  {
    auto pool = SharedMemoryPool::Create(1, 16);
    ASSERT_TRUE(pool.ok()) << pool.status();
    name = (*pool)->name();
  }
  EXPECT_EQ(WriteToSharedMemory(name, 0, 16, "x").code(),
            absl::StatusCode::kNotFound);
}

TEST(SharedMemoryTest, BadPoolSizesAreInvalidArgument) {
  EXPECT_EQ(SharedMemoryPool::Create(0, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedMemoryPool::Create(1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
