#include "engine/block_key.h"

#include <cstdint>
#include <numeric>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash_testing.h"
#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

constexpr int kBlockSize = 4;

Fingerprint ModelA() { return Fingerprint{{0x0123456789abcdefULL, 42}}; }
Fingerprint ModelB() { return Fingerprint{{0x0123456789abcdefULL, 43}}; }

std::vector<int32_t> Tokens(int count) {
  std::vector<int32_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), 1000);
  return tokens;
}

TEST(BlockKeyTest, ChainHasOneKeyPerFullBlock) {
  EXPECT_EQ(ComputeKeyChain(ModelA(), Tokens(12), kBlockSize).size(), 3u);
  // A partial trailing block has no key.
  EXPECT_EQ(ComputeKeyChain(ModelA(), Tokens(11), kBlockSize).size(), 2u);
  EXPECT_TRUE(ComputeKeyChain(ModelA(), Tokens(3), kBlockSize).empty());
  EXPECT_TRUE(ComputeKeyChain(ModelA(), {}, kBlockSize).empty());
  EXPECT_TRUE(ComputeKeyChain(ModelA(), Tokens(8), 0).empty());
  EXPECT_TRUE(ComputeKeyChain(ModelA(), Tokens(8), -4).empty());
}

TEST(BlockKeyTest, ChainLinksEachBlockToItsParent) {
  const std::vector<int32_t> tokens = Tokens(8);
  const auto chain = ComputeKeyChain(ModelA(), tokens, kBlockSize);
  ASSERT_EQ(chain.size(), 2u);
  const absl::Span<const int32_t> span(tokens);
  EXPECT_EQ(chain[0], ComputeBlockKey(ModelA(), nullptr, span.subspan(0, 4)));
  EXPECT_EQ(chain[1], ComputeBlockKey(ModelA(), &chain[0], span.subspan(4, 4)));
}

TEST(BlockKeyTest, EqualPrefixesGiveEqualKeys) {
  std::vector<int32_t> longer = Tokens(14);
  const auto short_chain = ComputeKeyChain(ModelA(), Tokens(9), kBlockSize);
  const auto long_chain = ComputeKeyChain(ModelA(), longer, kBlockSize);
  ASSERT_EQ(short_chain.size(), 2u);
  ASSERT_EQ(long_chain.size(), 3u);
  EXPECT_EQ(short_chain[0], long_chain[0]);
  EXPECT_EQ(short_chain[1], long_chain[1]);
  // The same tokens again give the same keys.
  EXPECT_EQ(ComputeKeyChain(ModelA(), longer, kBlockSize), long_chain);
}

TEST(BlockKeyTest, ChangingATokenChangesThatKeyAndAllAfter) {
  const std::vector<int32_t> tokens = Tokens(16);
  const auto base = ComputeKeyChain(ModelA(), tokens, kBlockSize);
  for (size_t changed = 0; changed < tokens.size(); ++changed) {
    std::vector<int32_t> edited = tokens;
    edited[changed] ^= 1;
    const auto chain = ComputeKeyChain(ModelA(), edited, kBlockSize);
    ASSERT_EQ(chain.size(), base.size());
    const size_t block = changed / kBlockSize;
    for (size_t i = 0; i < chain.size(); ++i) {
      if (i < block) {
        EXPECT_EQ(chain[i], base[i]) << "token " << changed << " block " << i;
      } else {
        EXPECT_NE(chain[i], base[i]) << "token " << changed << " block " << i;
      }
    }
  }
}

TEST(BlockKeyTest, DifferentModelsGiveDifferentKeys) {
  const auto a = ComputeKeyChain(ModelA(), Tokens(8), kBlockSize);
  const auto b = ComputeKeyChain(ModelB(), Tokens(8), kBlockSize);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_NE(a[0], b[0]);
  EXPECT_NE(a[1], b[1]);
}

TEST(BlockKeyTest, FirstBlockDiffersFromChildOfAZeroKey) {
  const std::vector<int32_t> tokens = Tokens(4);
  const BlockKey zero;
  EXPECT_NE(ComputeBlockKey(ModelA(), nullptr, tokens),
            ComputeBlockKey(ModelA(), &zero, tokens));
}

TEST(BlockKeyTest, TokenOrderAndCountMatter) {
  const std::vector<int32_t> forward = {1, 2, 3, 4};
  const std::vector<int32_t> backward = {4, 3, 2, 1};
  const std::vector<int32_t> shorter = {1, 2, 3};
  const BlockKey key = ComputeBlockKey(ModelA(), nullptr, forward);
  EXPECT_NE(key, ComputeBlockKey(ModelA(), nullptr, backward));
  EXPECT_NE(key, ComputeBlockKey(ModelA(), nullptr, shorter));
}

// Pins the byte encoding of docs/kv_block_format.md: any change to it
// changes every key in every store, so it must be deliberate.
TEST(BlockKeyTest, KeysMatchTheDocumentedEncoding) {
  const Fingerprint model{{1, 2}};
  const std::vector<int32_t> tokens = {1, 2, 3, -1};
  const BlockKey first = ComputeBlockKey(model, nullptr, tokens);
  const BlockKey second = ComputeBlockKey(model, &first, tokens);
  EXPECT_EQ(first.ToHex(), "a2115319ca81f5dc558ae707a713e133");
  EXPECT_EQ(second.ToHex(), "175682cb0847179fc275a85651d783b2");
}

TEST(BlockKeyTest, HexRoundTrips) {
  const BlockKey key{0x0011223344556677ULL, 0x8899aabbccddeeffULL};
  EXPECT_EQ(key.ToHex(), "00112233445566778899aabbccddeeff");
  auto parsed = ParseBlockKey(key.ToHex());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, key);
  auto upper = ParseBlockKey("00112233445566778899AABBCCDDEEFF");
  ASSERT_TRUE(upper.ok()) << upper.status();
  EXPECT_EQ(*upper, key);
}

TEST(BlockKeyTest, ParseRejectsMalformedHex) {
  EXPECT_EQ(ParseBlockKey("").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBlockKey("0011223344556677").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBlockKey("00112233445566778899aabbccddeeff0").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBlockKey("00112233445566778899aabbccddeefg").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BlockKeyTest, KeysAreOrderedAndHashable) {
  const BlockKey a{1, 9};
  const BlockKey b{2, 0};
  const BlockKey c{2, 1};
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_TRUE(absl::VerifyTypeImplementsAbslHashCorrectly(
      {BlockKey{}, a, b, c, BlockKey{9, 1}}));
  const auto chain = ComputeKeyChain(ModelA(), Tokens(40), kBlockSize);
  const absl::flat_hash_set<BlockKey> set(chain.begin(), chain.end());
  EXPECT_EQ(set.size(), chain.size());
}

}  // namespace
}  // namespace tandem
