#include "kvstore/rendezvous.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kvstore/test_blocks.h"

namespace tandem {
namespace {

using ::tandem::testing::TestKey;

constexpr int kKeys = 4000;

std::vector<uint64_t> Seeds(const std::vector<std::string>& addresses) {
  std::vector<uint64_t> seeds;
  for (const std::string& address : addresses) {
    seeds.push_back(NodeSeed(address));
  }
  return seeds;
}

// The address of the node each of kKeys keys is placed on.
std::vector<std::string> Place(const std::vector<std::string>& addresses) {
  const std::vector<uint64_t> seeds = Seeds(addresses);
  std::vector<std::string> placed;
  for (int i = 0; i < kKeys; ++i) {
    placed.push_back(addresses[PickNode(seeds, TestKey(i))]);
  }
  return placed;
}

const std::vector<std::string> kThreeNodes = {
    "127.0.0.1:50061", "127.0.0.1:50062", "10.0.0.7:50061"};

TEST(RendezvousTest, SpreadsKeysEvenlyOverNodes) {
  const std::vector<std::string> placed = Place(kThreeNodes);
  for (const std::string& node : kThreeNodes) {
    const auto count = std::count(placed.begin(), placed.end(), node);
    EXPECT_GT(count, kKeys / 3 * 0.85) << node;
    EXPECT_LT(count, kKeys / 3 * 1.15) << node;
  }
}

TEST(RendezvousTest, PlacementDoesNotDependOnNodeOrder) {
  std::vector<std::string> reversed(kThreeNodes.rbegin(), kThreeNodes.rend());
  EXPECT_EQ(Place(kThreeNodes), Place(reversed));
}

TEST(RendezvousTest, RemovingANodeMovesOnlyItsKeys) {
  const std::vector<std::string> before = Place(kThreeNodes);
  const std::vector<std::string> after =
      Place({kThreeNodes[0], kThreeNodes[2]});
  int moved = 0;
  for (int i = 0; i < kKeys; ++i) {
    if (before[i] != kThreeNodes[1]) {
      EXPECT_EQ(after[i], before[i]) << "key " << i;
    } else {
      ++moved;
    }
  }
  EXPECT_GT(moved, 0);
}

TEST(RendezvousTest, AddingANodeMovesKeysOnlyToIt) {
  const std::vector<std::string> before = Place(kThreeNodes);
  std::vector<std::string> four = kThreeNodes;
  four.push_back("127.0.0.1:50063");
  const std::vector<std::string> after = Place(four);
  int moved = 0;
  for (int i = 0; i < kKeys; ++i) {
    if (after[i] != before[i]) {
      EXPECT_EQ(after[i], four[3]) << "key " << i;
      ++moved;
    }
  }
  // About a quarter of the keys move to the new node.
  EXPECT_GT(moved, kKeys / 4 * 0.85);
  EXPECT_LT(moved, kKeys / 4 * 1.15);
}

TEST(RendezvousTest, OneNodeHoldsEveryKey) {
  const std::vector<uint64_t> seeds = {NodeSeed("127.0.0.1:1")};
  EXPECT_EQ(PickNode(seeds, TestKey(1)), 0u);
  EXPECT_EQ(PickNode(seeds, TestKey(2)), 0u);
}

}  // namespace
}  // namespace tandem
