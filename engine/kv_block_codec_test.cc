#include "engine/kv_block_codec.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/little_endian.h"
#include "gtest/gtest.h"
#include "xxhash.h"

namespace tandem {
namespace {

// 2 layers, 2 KV heads, head_dim 4, 4 tokens: 8 planes of 16 floats.
KvLayout TestLayout() { return {2, 2, 4, 4}; }
const Fingerprint kModel{{0x1111222233334444ULL, 0x5555666677778888ULL}};
const BlockKey kKey{0xaaaabbbbccccddddULL, 0xeeeeffff00001111ULL};
constexpr float kSentinel = -12345.0f;

std::vector<float> RandomBlock(const KvLayout& layout, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  std::vector<float> block(layout.BlockFloats());
  for (float& value : block) value = dist(rng);
  // Values whose bits a lossy path would change.
  block[0] = -0.0f;
  block[1] = std::numeric_limits<float>::denorm_min();
  block[2] = std::numeric_limits<float>::quiet_NaN();
  block[3] = -std::numeric_limits<float>::infinity();
  return block;
}

BlockMetadata Metadata(int token_count, bool with_key = true) {
  BlockMetadata metadata;
  metadata.model = kModel;
  metadata.token_count = token_count;
  if (with_key) metadata.key = kKey;
  return metadata;
}

std::string Export(const std::vector<float>& block, int token_count,
                   bool with_key = true) {
  auto bytes =
      ExportBlock(TestLayout(), block.data(), Metadata(token_count, with_key));
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

absl::StatusCode ImportCode(const std::string& bytes,
                            const KvLayout& layout = TestLayout(),
                            const Fingerprint& model = kModel,
                            const BlockKey* key = &kKey) {
  std::vector<float> dest(TestLayout().BlockFloats(), kSentinel);
  return ImportBlock(bytes, layout, model, key, dest.data(), nullptr).code();
}

// Rewrites the header checksum so that a deliberately edited header passes it.
void Reseal(std::string* bytes) {
  std::string checksum;
  little_endian::AppendU64(&checksum, XXH3_64bits(bytes->data(), 88));
  bytes->replace(88, 8, checksum);
}

void PutU32(std::string* bytes, size_t offset, uint32_t value) {
  std::string field;
  little_endian::AppendU32(&field, value);
  bytes->replace(offset, 4, field);
}

TEST(KvBlockCodecTest, FullBlockRoundTripsBitExactly) {
  const std::vector<float> block = RandomBlock(TestLayout(), 1);
  const std::string bytes = Export(block, 4);
  EXPECT_EQ(bytes.size(), kKvBlockHeaderBytes + TestLayout().BlockBytes());

  std::vector<float> dest(block.size(), kSentinel);
  BlockMetadata out;
  ASSERT_TRUE(
      ImportBlock(bytes, TestLayout(), kModel, &kKey, dest.data(), &out).ok());
  EXPECT_EQ(std::memcmp(dest.data(), block.data(), block.size() * 4), 0);
  EXPECT_EQ(out, Metadata(4));
}

TEST(KvBlockCodecTest, PartialBlockCarriesOnlyItsFilledSlots) {
  const KvLayout layout = TestLayout();
  const std::vector<float> block = RandomBlock(layout, 2);
  const std::string bytes = Export(block, 3, /*with_key=*/false);
  EXPECT_EQ(bytes.size(), kKvBlockHeaderBytes + KvBlockPayloadBytes(layout, 3));
  EXPECT_EQ(KvBlockPayloadBytes(layout, 3), 8u * 3 * 4 * 4);

  std::vector<float> dest(block.size(), kSentinel);
  BlockMetadata out;
  ASSERT_TRUE(
      ImportBlock(bytes, layout, kModel, nullptr, dest.data(), &out).ok());
  EXPECT_EQ(out, Metadata(3, /*with_key=*/false));
  for (size_t p = 0; p < layout.NumPlanes(); ++p) {
    const size_t plane = p * layout.HeadFloats();
    const size_t filled = 3 * layout.head_dim;
    EXPECT_EQ(std::memcmp(dest.data() + plane, block.data() + plane,
                          filled * sizeof(float)),
              0)
        << "plane " << p;
    for (size_t i = filled; i < layout.HeadFloats(); ++i) {
      EXPECT_EQ(dest[plane + i], kSentinel) << "plane " << p << " float " << i;
    }
  }
}

TEST(KvBlockCodecTest, UnusedSlotsDoNotReachTheBytes) {
  std::vector<float> a = RandomBlock(TestLayout(), 3);
  std::vector<float> b = a;
  // Change slot 3 of plane 5 only.
  b[5 * TestLayout().HeadFloats() + 3 * TestLayout().head_dim] += 1.0f;
  EXPECT_EQ(Export(a, 3), Export(b, 3));
  EXPECT_NE(Export(a, 4), Export(b, 4));
}

TEST(KvBlockCodecTest, HeaderFieldsSitAtTheirDocumentedOffsets) {
  const std::string bytes = Export(RandomBlock(TestLayout(), 4), 3);
  const char* data = bytes.data();
  EXPECT_EQ(bytes.substr(0, 8), "TNDMKVBK");
  EXPECT_EQ(little_endian::ReadU32(data + 8), 1u);     // version
  EXPECT_EQ(little_endian::ReadU32(data + 12), 0u);    // dtype F32
  EXPECT_EQ(little_endian::ReadU32(data + 16), 2u);    // num_layers
  EXPECT_EQ(little_endian::ReadU32(data + 20), 2u);    // num_kv_heads
  EXPECT_EQ(little_endian::ReadU32(data + 24), 4u);    // head_dim
  EXPECT_EQ(little_endian::ReadU32(data + 28), 4u);    // block_size
  EXPECT_EQ(little_endian::ReadU32(data + 32), 3u);    // token_count
  EXPECT_EQ(little_endian::ReadU32(data + 36), 1u);    // flags: has key
  EXPECT_EQ(little_endian::ReadU64(data + 40), 384u);  // payload bytes
  EXPECT_EQ(little_endian::ReadU64(data + 48), kModel.words[0]);
  EXPECT_EQ(little_endian::ReadU64(data + 56), kModel.words[1]);
  EXPECT_EQ(little_endian::ReadU64(data + 64), kKey.hi);
  EXPECT_EQ(little_endian::ReadU64(data + 72), kKey.lo);
  EXPECT_EQ(little_endian::ReadU64(data + 80),
            XXH3_64bits(data + 96, bytes.size() - 96));
  EXPECT_EQ(little_endian::ReadU64(data + 88), XXH3_64bits(data, 88));
}

// The worked example of docs/kv_block_format.md, byte for byte.
TEST(KvBlockCodecTest, ExportMatchesTheDocumentedExample) {
  const KvLayout layout{1, 1, 2, 2};
  // K plane: slot 0 = {1, 2}; V plane: slot 0 = {-0.5, 0.25}; slot 1 unused.
  const float block[8] = {1.0f, 2.0f, 9.0f, 9.0f, -0.5f, 0.25f, 9.0f, 9.0f};
  BlockMetadata metadata;
  metadata.model = Fingerprint{{1, 2}};
  metadata.token_count = 1;
  metadata.key = BlockKey{0xa2115319ca81f5dcULL, 0x558ae707a713e133ULL};
  auto bytes = ExportBlock(layout, block, metadata);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const unsigned char expected[] = {
      0x54, 0x4e, 0x44, 0x4d, 0x4b, 0x56, 0x42, 0x4b, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0xdc, 0xf5, 0x81, 0xca, 0x19, 0x53, 0x11, 0xa2,
      0x33, 0xe1, 0x13, 0xa7, 0x07, 0xe7, 0x8a, 0x55, 0x56, 0x3d, 0x47, 0x37,
      0xb2, 0x11, 0xcc, 0x12, 0x69, 0x36, 0xd9, 0x35, 0x0f, 0x0e, 0x15, 0x7c,
      0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0xbf,
      0x00, 0x00, 0x80, 0x3e,
  };
  EXPECT_EQ(*bytes, std::string(reinterpret_cast<const char*>(expected),
                                sizeof(expected)));
}

TEST(KvBlockCodecTest, ReadBlockHeaderNeedsOnlyTheHeader) {
  const std::string bytes = Export(RandomBlock(TestLayout(), 5), 2);
  auto header = ReadBlockHeader(bytes.substr(0, kKvBlockHeaderBytes));
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->version, kKvBlockFormatVersion);
  EXPECT_EQ(header->dtype, KvDtype::kF32);
  EXPECT_EQ(header->layout, TestLayout());
  EXPECT_EQ(header->metadata, Metadata(2));
  EXPECT_EQ(header->payload_bytes, KvBlockPayloadBytes(TestLayout(), 2));
  // VerifyBlock needs the whole block.
  EXPECT_EQ(VerifyBlock(bytes.substr(0, kKvBlockHeaderBytes)).status().code(),
            absl::StatusCode::kDataLoss);
  auto verified = VerifyBlock(bytes);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->metadata, Metadata(2));
}

TEST(KvBlockCodecTest, ExportRejectsInvalidArguments) {
  const std::vector<float> block = RandomBlock(TestLayout(), 6);
  EXPECT_EQ(
      ExportBlock({0, 2, 4, 4}, block.data(), Metadata(1)).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExportBlock(TestLayout(), nullptr, Metadata(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ExportBlock(TestLayout(), block.data(), Metadata(0)).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ExportBlock(TestLayout(), block.data(), Metadata(5)).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(KvBlockCodecTest, EveryFlippedPayloadByteIsDataLoss) {
  const std::string bytes = Export(RandomBlock(TestLayout(), 7), 4);
  for (size_t i = kKvBlockHeaderBytes; i < bytes.size(); ++i) {
    std::string corrupt = bytes;
    corrupt[i] ^= 0x10;
    ASSERT_EQ(ImportCode(corrupt), absl::StatusCode::kDataLoss) << "byte " << i;
  }
}

TEST(KvBlockCodecTest, EveryFlippedHeaderByteIsDetected) {
  const std::string bytes = Export(RandomBlock(TestLayout(), 8), 4);
  for (size_t i = 0; i < kKvBlockHeaderBytes; ++i) {
    std::string corrupt = bytes;
    corrupt[i] ^= 0x01;
    // Magic and version are read before the header checksum, so that a
    // block of another format version is reported as such.
    const absl::StatusCode expected = i < 12
                                          ? absl::StatusCode::kInvalidArgument
                                          : absl::StatusCode::kDataLoss;
    ASSERT_EQ(ImportCode(corrupt), expected) << "byte " << i;
    ASSERT_EQ(VerifyBlock(corrupt).status().code(), expected) << "byte " << i;
  }
}

TEST(KvBlockCodecTest, TruncatedOrOversizedBytesAreDataLoss) {
  const std::string bytes = Export(RandomBlock(TestLayout(), 9), 4);
  for (size_t size = 0; size < bytes.size(); ++size) {
    ASSERT_EQ(ImportCode(bytes.substr(0, size)), absl::StatusCode::kDataLoss)
        << "size " << size;
  }
  EXPECT_EQ(ImportCode(bytes + '\0'), absl::StatusCode::kDataLoss);
}

TEST(KvBlockCodecTest, WrongModelIsFailedPrecondition) {
  const std::string bytes = Export(RandomBlock(TestLayout(), 10), 4);
  Fingerprint other = kModel;
  other.words[1] ^= 1;
  EXPECT_EQ(ImportCode(bytes, TestLayout(), other),
            absl::StatusCode::kFailedPrecondition);
}

TEST(KvBlockCodecTest, WrongLayoutIsFailedPrecondition) {
  const std::string bytes = Export(RandomBlock(TestLayout(), 11), 4);
  for (int field = 0; field < 4; ++field) {
    KvLayout other = TestLayout();
    int* dims[] = {&other.num_layers, &other.num_kv_heads, &other.head_dim,
                   &other.block_size};
    *dims[field] += 1;
    EXPECT_EQ(ImportCode(bytes, other), absl::StatusCode::kFailedPrecondition)
        << "field " << field;
  }
}

TEST(KvBlockCodecTest, WrongOrMissingKeyIsFailedPrecondition) {
  const std::vector<float> block = RandomBlock(TestLayout(), 12);
  const BlockKey other{kKey.hi, kKey.lo + 1};
  EXPECT_EQ(ImportCode(Export(block, 4), TestLayout(), kModel, &other),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ImportCode(Export(block, 4, /*with_key=*/false)),
            absl::StatusCode::kFailedPrecondition);
  // Without an expected key any key, or none, is accepted.
  EXPECT_EQ(ImportCode(Export(block, 4), TestLayout(), kModel, nullptr),
            absl::StatusCode::kOk);
}

TEST(KvBlockCodecTest, FailedImportWritesNothing) {
  std::string bytes = Export(RandomBlock(TestLayout(), 13), 4);
  bytes.back() ^= 1;
  std::vector<float> dest(TestLayout().BlockFloats(), kSentinel);
  BlockMetadata out = Metadata(1, /*with_key=*/false);
  EXPECT_EQ(
      ImportBlock(bytes, TestLayout(), kModel, &kKey, dest.data(), &out).code(),
      absl::StatusCode::kDataLoss);
  for (float value : dest) ASSERT_EQ(value, kSentinel);
  EXPECT_EQ(out, Metadata(1, /*with_key=*/false));
  EXPECT_EQ(
      ImportBlock(bytes, TestLayout(), kModel, &kKey, nullptr, &out).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(KvBlockCodecTest, UnsupportedVersionIsInvalidArgument) {
  std::string bytes = Export(RandomBlock(TestLayout(), 14), 4);
  PutU32(&bytes, 8, 2);
  Reseal(&bytes);
  EXPECT_EQ(ReadBlockHeader(bytes).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KvBlockCodecTest, InconsistentHeaderFieldsAreInvalidArgument) {
  const std::string bytes = Export(RandomBlock(TestLayout(), 15), 4);
  struct Edit {
    size_t offset;
    uint32_t value;
    const char* what;
  };
  const Edit edits[] = {
      {12, 1, "dtype"},           {16, 0, "num_layers"},
      {20, 0x80000000u, "heads"}, {32, 0, "token_count"},
      {32, 5, "token_count"},     {36, 3, "flags"},
      {40, 100, "payload_bytes"},
  };
  for (const Edit& edit : edits) {
    std::string edited = bytes;
    PutU32(&edited, edit.offset, edit.value);
    Reseal(&edited);
    EXPECT_EQ(ReadBlockHeader(edited).status().code(),
              absl::StatusCode::kInvalidArgument)
        << edit.what << " = " << edit.value;
  }
  // Key bytes without the key flag.
  const std::string keyless =
      Export(RandomBlock(TestLayout(), 15), 4, /*with_key=*/false);
  std::string edited = keyless;
  edited[64] = 1;
  Reseal(&edited);
  EXPECT_EQ(ReadBlockHeader(edited).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
