#include "kvstore/byte_size.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(ByteSizeTest, ParsesPlainNumbersAndUnits) {
  EXPECT_EQ(ParseByteSize("1000").value(), 1000u);
  EXPECT_EQ(ParseByteSize("512MiB").value(), 512u << 20);
  EXPECT_EQ(ParseByteSize("2GiB").value(), uint64_t{2} << 30);
  EXPECT_EQ(ParseByteSize("3 kib").value(), 3u * 1024);
  EXPECT_EQ(ParseByteSize("5MB").value(), 5'000'000u);
  EXPECT_EQ(ParseByteSize("7B").value(), 7u);
  EXPECT_EQ(ParseByteSize("1TiB").value(), uint64_t{1} << 40);
}

TEST(ByteSizeTest, RejectsMalformedSizes) {
  for (const char* bad : {"", "MiB", "-1", "1.5GiB", "12 parsecs", "0x10",
                          "99999999999TiB", "18446744073709551616"}) {
    EXPECT_EQ(ParseByteSize(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(ByteSizeTest, FormatsWithTheLargestExactBinaryUnit) {
  EXPECT_EQ(FormatByteSize(512u << 20), "512MiB");
  EXPECT_EQ(FormatByteSize(1536u << 10), "1536KiB");
  EXPECT_EQ(FormatByteSize(1000), "1000");
  EXPECT_EQ(FormatByteSize(0), "0");
  EXPECT_EQ(ParseByteSize(FormatByteSize(uint64_t{3} << 30)).value(),
            uint64_t{3} << 30);
}

TEST(ByteSizeTest, FlagParsingReportsTheError) {
  ByteSize size;
  std::string error;
  EXPECT_TRUE(AbslParseFlag("64MiB", &size, &error));
  EXPECT_EQ(size.bytes, 64u << 20);
  EXPECT_FALSE(AbslParseFlag("64 furlongs", &size, &error));
  EXPECT_NE(error.find("unknown unit"), std::string::npos) << error;
  EXPECT_EQ(AbslUnparseFlag(size), "64MiB");
}

}  // namespace
}  // namespace tandem
