#include "engine/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace tandem {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

std::string Lossy(std::string_view bytes) {
  std::string out;
  AppendUtf8Lossy(bytes, &out);
  return out;
}

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("ascii"));
  EXPECT_TRUE(IsValidUtf8("é中😀\xF4\x8F\xBF\xBF"));  // up to U+10FFFF
}

TEST(Utf8Test, RejectsIllFormedSequences) {
  EXPECT_FALSE(IsValidUtf8("\x80"));              // stray continuation
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE4\xB8"));          // cut short
}

TEST(Utf8Test, LossyReplacesEachMaximalSubpartOnce) {
  EXPECT_EQ(Lossy("a\xE4\xB8z"), "a" + kFffd + "z");
  EXPECT_EQ(Lossy("\x80\x80"), kFffd + kFffd);
  EXPECT_EQ(Lossy("\xF0\x9F\x98"), kFffd);
  EXPECT_EQ(Lossy("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(Lossy("\xF0\x9F\x98\x80"), "😀");
}

TEST(Utf8Test, CompletePrefixLeavesAnUnfinishedCharacter) {
  std::string out;
  EXPECT_EQ(AppendCompleteUtf8Lossy("ok\xF0\x9F", &out), 2u);
  EXPECT_EQ(out, "ok");
  out.clear();
  EXPECT_EQ(AppendCompleteUtf8Lossy("\xF0\x41", &out), 2u);
  EXPECT_EQ(out, kFffd + "A");
}

TEST(Utf8Test, EncodesAndDecodesCodePoints) {
  for (char32_t cp : {U'A', U'é', U'中', U'😀', char32_t{0x10FFFF}}) {
    std::string text;
    AppendUtf8(cp, &text);
    char32_t back = 0;
    EXPECT_EQ(DecodeUtf8Char(text, 0, &back), text.size());
    EXPECT_EQ(back, cp);
  }
}

}  // namespace
}  // namespace tandem
