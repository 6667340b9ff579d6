#include "engine/safetensors.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/safetensors_writer.h"
#include "engine/weights_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::RawSafetensors;
using ::tandem::testing::TempDir;
using ::tandem::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string F32Bytes(std::vector<float> values) {
  return EncodeFloats(values, SafetensorsDtype::kF32);
}

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint32_t Bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

TEST(SafetensorsTest, ParsesHandWrittenFile) {
  const std::string header =
      R"({"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[8,10]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("__metadata__":{"format":"pt"}})";
  const std::string data = F32Bytes({1.5f, -2.0f}) + std::string("\x80\x3f");
  const std::string file = RawSafetensors(header, data);

  auto contents = ParseSafetensors(Bytes(file), "hand.safetensors");
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->data_offset, 8 + header.size());
  EXPECT_THAT(contents->metadata, ElementsAre(std::pair("format", "pt")));
  ASSERT_EQ(contents->tensors.size(), 2u);
  const SafetensorsTensor* a = contents->Find("a");
  const SafetensorsTensor* b = contents->Find("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(contents->Find("c"), nullptr);
  EXPECT_EQ(a->dtype, SafetensorsDtype::kF32);
  EXPECT_THAT(a->shape, ElementsAre(2));
  EXPECT_EQ(a->num_elements, 2u);
  EXPECT_EQ(a->data.data(), Bytes(file).data() + 8 + header.size());
  EXPECT_EQ(a->data.size(), 8u);
  EXPECT_EQ(b->dtype, SafetensorsDtype::kBF16);
  EXPECT_THAT(b->shape, ElementsAre(1, 1));
  EXPECT_EQ(b->data.data(), a->data.data() + 8);

  std::vector<float> a_values(2), b_values(1);
  ASSERT_TRUE(ConvertToF32(*a, absl::MakeSpan(a_values)).ok());
  ASSERT_TRUE(ConvertToF32(*b, absl::MakeSpan(b_values)).ok());
  EXPECT_THAT(a_values, ElementsAre(1.5f, -2.0f));
  EXPECT_THAT(b_values, ElementsAre(1.0f));
}

TEST(SafetensorsTest, AcceptsScalarsAndEmptyTensors) {
  const std::string header =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("e":{"dtype":"F16","shape":[0,3],"data_offsets":[4,4]}})";
  const std::string file = RawSafetensors(header, F32Bytes({7.0f}));
  auto contents = ParseSafetensors(Bytes(file), "x");
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->Find("s")->num_elements, 1u);
  EXPECT_EQ(contents->Find("e")->num_elements, 0u);
}

TEST(SafetensorsTest, HalfToFloatIsExactForNamedValues) {
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(HalfToFloat(0x7c00), INFINITY);
  EXPECT_EQ(HalfToFloat(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_EQ(Bits(HalfToFloat(0x8000)), 0x80000000u);
}

// Checks every half value against the textbook formula.
TEST(SafetensorsTest, HalfToFloatMatchesDefinitionForAllValues) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    const float sign = (h & 0x8000) ? -1.0f : 1.0f;
    const float got = HalfToFloat(static_cast<uint16_t>(h));
    if (exponent == 0x1f) {
      EXPECT_EQ(std::isnan(got), mantissa != 0) << h;
      continue;
    }
    const float want =
        exponent == 0
            ? sign * std::ldexp(static_cast<float>(mantissa), -24)
            : sign * std::ldexp(1.0f + mantissa / 1024.0f, exponent - 15);
    ASSERT_EQ(Bits(got), Bits(want)) << "half bits " << h;
  }
}

TEST(SafetensorsTest, BFloat16ToFloatIsExact) {
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0xc0a0), -5.0f);
  EXPECT_EQ(BFloat16ToFloat(0x3e20), 0.15625f);
  EXPECT_EQ(BFloat16ToFloat(0x0001), FromBits(0x00010000));
  EXPECT_EQ(BFloat16ToFloat(0x7f80), INFINITY);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(0x7fc0)));
}

TEST(SafetensorsWriterTest, HalfRoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));
      continue;
    }
    ASSERT_EQ(FloatToHalf(f), h);
  }
}

TEST(SafetensorsWriterTest, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie: even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);     // tie: even
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -26)), 0x0001);     // 0.75 ulp
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);  // to normal
  EXPECT_EQ(FloatToHalf(-1e-30f), 0x8000);
}

TEST(SafetensorsWriterTest, FloatToBFloat16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3f808000)), 0x3f80);  // tie: even
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3f818000)), 0x3f82);  // tie: even
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3f808001)), 0x3f81);
  EXPECT_EQ(FloatToBFloat16(FromBits(0x7f7fffff)), 0x7f80);  // to infinity
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(NAN))));
}

TEST(SafetensorsTest, ConvertsF16AndBF16TensorsExactly) {
  const std::vector<float> values = {0.0f, -1.5f, 0.125f, 3.0f, -1024.0f};
  for (SafetensorsDtype dtype :
       {SafetensorsDtype::kF16, SafetensorsDtype::kBF16}) {
    const std::string file =
        EncodeSafetensors({{{"t", dtype, {5}}, EncodeFloats(values, dtype)}});
    auto contents = ParseSafetensors(Bytes(file), "x");
    ASSERT_TRUE(contents.ok()) << contents.status();
    std::vector<float> out(5);
    ASSERT_TRUE(ConvertToF32(contents->tensors[0], absl::MakeSpan(out)).ok());
    EXPECT_EQ(out, values);
  }
}

TEST(SafetensorsTest, ConvertRejectsIntegerDtype) {
  const std::string file = RawSafetensors(
      R"({"n":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
      std::string(4, '\0'));
  auto contents = ParseSafetensors(Bytes(file), "x");
  ASSERT_TRUE(contents.ok()) << contents.status();
  std::vector<float> out(1);
  absl::Status status = ConvertToF32(contents->tensors[0], absl::MakeSpan(out));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("has dtype I32"));
}

TEST(SafetensorsTest, WriterPadsHeaderToEightBytes) {
  const std::string file = EncodeSafetensors(
      {{{"abc", SafetensorsDtype::kF32, {1}}, F32Bytes({2})}});
  auto contents = ParseSafetensors(Bytes(file), "x");
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->data_offset % 8, 0u);
}

// One malformed file: its bytes and a phrase the error must contain.
struct MalformedCase {
  std::string name;
  std::string bytes;
  std::string fault;
};

// Names the case in test listings instead of dumping its bytes.
void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

std::string Entry(const std::string& name, const std::string& body) {
  return "\"" + name + "\":{" + body + "}";
}

std::string OneTensor(const std::string& body, size_t data_bytes) {
  return RawSafetensors("{" + Entry("w", body) + "}",
                        std::string(data_bytes, '\0'));
}

std::vector<MalformedCase> MalformedCases() {
  std::string length_too_long = RawSafetensors("{}", "");
  length_too_long[0] = 3;  // claims a 3-byte header in a 2-byte remainder
  std::string absurd = RawSafetensors("{}", "");
  absurd[5] = 1;  // 2^40 bytes
  const std::string f32_2 = R"("dtype":"F32","shape":[2],)";
  return {
      {"TooShort", "abc", "too short for the 8-byte header length"},
      {"HeaderPastEnd", length_too_long, "runs past the end of the file"},
      {"HeaderAbsurd", absurd, "exceeds the limit"},
      {"NotJson", RawSafetensors("{\"w\": nope}", ""), "not valid JSON"},
      {"NotObject", RawSafetensors("[1, 2]", ""), "not a JSON object"},
      {"EntryNotObject", RawSafetensors(R"({"w": 3})", ""),
       "tensor 'w': entry is not an object"},
      {"UnknownDtype",
       OneTensor(R"("dtype":"F128","shape":[1],"data_offsets":[0,16])", 16),
       "unknown dtype 'F128'"},
      {"MissingDtype", OneTensor(R"("shape":[1],"data_offsets":[0,4])", 4),
       "dtype is missing"},
      {"ShapeNotList",
       OneTensor(R"("dtype":"F32","shape":4,"data_offsets":[0,16])", 16),
       "shape is missing or not a list"},
      {"NegativeDim",
       OneTensor(R"("dtype":"F32","shape":[-2,-2],"data_offsets":[0,16])", 16),
       "negative dim -2"},
      {"FractionalDim",
       OneTensor(R"("dtype":"F32","shape":[1.5],"data_offsets":[0,4])", 4),
       "not a non-negative 64-bit integer"},
      {"ElementCountOverflow",
       OneTensor(R"("dtype":"U8","shape":[4294967296,4294967296,2],)"
                 R"("data_offsets":[0,0])",
                 0),
       "element count of shape"},
      {"ByteSizeOverflow",
       OneTensor(R"("dtype":"F32","shape":[4611686018427387905],)"
                 R"("data_offsets":[0,4])",
                 4),
       "byte size of F32 shape [4611686018427387905] overflows"},
      {"SizeMismatch",
       OneTensor(R"("dtype":"F32","shape":[2,2],"data_offsets":[0,12])", 12),
       "hold 12 bytes but dtype F32 and shape [2, 2] need 16"},
      {"OffsetsReversed", OneTensor(f32_2 + R"("data_offsets":[8,0])", 8),
       "data_offsets must be [begin, end]"},
      {"OffsetsNotPair", OneTensor(f32_2 + R"("data_offsets":[8])", 8),
       "data_offsets must be [begin, end]"},
      {"OffsetNegative", OneTensor(f32_2 + R"("data_offsets":[-8,0])", 8),
       "data_offsets must be [begin, end]"},
      {"Truncated", OneTensor(f32_2 + R"("data_offsets":[0,8])", 5),
       "run past the end of the data (5 bytes)"},
      {"OffsetsOutOfRange",
       OneTensor(f32_2 + R"("data_offsets":[1000000,1000008])", 8),
       "run past the end of the data"},
      {"Overlap",
       RawSafetensors("{" + Entry("a", f32_2 + R"("data_offsets":[0,8])") +
                          "," + Entry("b", f32_2 + R"("data_offsets":[4,12])") +
                          "}",
                      std::string(12, '\0')),
       "tensor 'b' overlaps tensor 'a'"},
      {"Hole",
       RawSafetensors("{" + Entry("a", f32_2 + R"("data_offsets":[0,8])") +
                          "," +
                          Entry("b", f32_2 + R"("data_offsets":[12,20])") + "}",
                      std::string(20, '\0')),
       "bytes [8, 12) of the data region belong to no tensor"},
      {"TrailingBytes", OneTensor(f32_2 + R"("data_offsets":[0,8])", 11),
       "3 bytes after the last tensor's data belong to no tensor"},
      {"MetadataNotObject", RawSafetensors(R"({"__metadata__":[]})", ""),
       "__metadata__ is not an object"},
      {"MetadataValueNotString",
       RawSafetensors(R"({"__metadata__":{"k":1}})", ""),
       "__metadata__ value 'k' is not a string"},
  };
}

class SafetensorsMalformedTest
    : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(SafetensorsMalformedTest, ParseReturnsInvalidArgumentNamingFault) {
  const MalformedCase& c = GetParam();
  auto contents = ParseSafetensors(Bytes(c.bytes), "bad.safetensors");
  ASSERT_FALSE(contents.ok());
  EXPECT_EQ(contents.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(contents.status().message(),
              AllOf(HasSubstr("bad.safetensors: "), HasSubstr(c.fault)));
}

TEST_P(SafetensorsMalformedTest, OpenReturnsInvalidArgumentNamingFile) {
  const MalformedCase& c = GetParam();
  TempDir dir;
  const auto path = dir.path() / "m.safetensors";
  WriteFile(path, c.bytes);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr(path.string()), HasSubstr(c.fault)));
}

INSTANTIATE_TEST_SUITE_P(
    AllFaults, SafetensorsMalformedTest, ::testing::ValuesIn(MalformedCases()),
    [](const ::testing::TestParamInfo<MalformedCase>& info) {
      return info.param.name;
    });

TEST(SafetensorsFileTest, MapsFileAndPointsIntoIt) {
  TempDir dir;
  const auto path = dir.path() / "ok.safetensors";
  WriteFile(path, EncodeSafetensors({{{"w", SafetensorsDtype::kF32, {3}},
                                      F32Bytes({1, 2, 3})}}));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const absl::Span<const uint8_t> bytes = (*file)->bytes();
  const SafetensorsTensor* w = (*file)->contents().Find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_GE(w->data.data(), bytes.data());
  EXPECT_EQ(w->data.data() + w->data.size(), bytes.data() + bytes.size());
  EXPECT_EQ((*file)->path(), path);
}

TEST(SafetensorsFileTest, MissingFileIsNotFound) {
  TempDir dir;
  auto file = SafetensorsFile::Open(dir.path() / "absent.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("absent.safetensors"));
}

TEST(SafetensorsFileTest, DirectoryIsInvalidArgument) {
  TempDir dir;
  auto file = SafetensorsFile::Open(dir.path());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr("not a regular file"));
}

TEST(SafetensorsFileTest, EmptyFileIsInvalidArgument) {
  TempDir dir;
  WriteFile(dir.path() / "empty.safetensors", "");
  auto file = SafetensorsFile::Open(dir.path() / "empty.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr("empty.safetensors"), HasSubstr("0 bytes")));
}

}  // namespace
}  // namespace tandem
