#include "engine/streaming_detokenizer.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/byte_level.h"
#include "engine/byte_tokenizer.h"
#include "engine/tokenizer.h"
#include "engine/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

using ::testing::ElementsAre;

const std::string kFffd = "\xEF\xBF\xBD";

std::unique_ptr<Tokenizer> Bytes() {
  auto tokenizer = ByteTokenizer::Create(256, 257);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return std::move(tokenizer).value();
}

// A tokenizer.json with the given decoder whose vocabulary is <unk>, <s>,
// </s>, the 256 byte-fallback tokens (ids 3-258) and `words` after them.
std::unique_ptr<Tokenizer> SentencePieceStyle(
    const nlohmann::json& decoder, const std::vector<std::string>& words) {
  nlohmann::json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[absl::StrFormat("<0x%02X>", b)] = b + 3;
  for (size_t i = 0; i < words.size(); ++i) vocab[words[i]] = 259 + i;
  auto special = [](int id, const char* content) {
    return nlohmann::json{
        {"id", id},        {"content", content}, {"single_word", false},
        {"lstrip", false}, {"rstrip", false},    {"normalized", false},
        {"special", true}};
  };
  const nlohmann::json root = {
      {"added_tokens",
       {special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")}},
      {"normalizer", nullptr},
      {"pre_tokenizer", nullptr},
      {"post_processor", nullptr},
      {"decoder", decoder},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "<unk>"},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", nlohmann::json::array()}}}};
  auto tokenizer = LoadTokenizerFromParsedJson(root);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return std::move(tokenizer).value();
}

// Llama 2 / Mistral's decoder chain.
std::unique_ptr<Tokenizer> Llama2Style(const std::vector<std::string>& words) {
  const nlohmann::json decoder = {
      {"type", "Sequence"},
      {"decoders",
       {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
        {{"type", "ByteFallback"}},
        {{"type", "Fuse"}},
        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  return SentencePieceStyle(decoder, words);
}

std::unique_ptr<Tokenizer> MetaspaceStyle(
    const std::vector<std::string>& words) {
  const nlohmann::json decoder = {{"type", "Metaspace"},
                                  {"replacement", "▁"},
                                  {"prepend_scheme", "first"},
                                  {"split", false}};
  return SentencePieceStyle(decoder, words);
}

// A byte-level tokenizer whose ids 0-255 are the single bytes.
std::unique_ptr<Tokenizer> ByteLevelStyle() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) {
    std::string token;
    AppendByteLevelChars(std::string(1, static_cast<char>(b)), &token);
    vocab[token] = b;
  }
  const nlohmann::json root = {{"added_tokens", nlohmann::json::array()},
                               {"pre_tokenizer",
                                {{"type", "ByteLevel"},
                                 {"add_prefix_space", false},
                                 {"use_regex", true}}},
                               {"decoder", {{"type", "ByteLevel"}}},
                               {"model",
                                {{"type", "BPE"},
                                 {"vocab", vocab},
                                 {"merges", nlohmann::json::array()}}}};
  auto tokenizer = LoadTokenizerFromParsedJson(root);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return std::move(tokenizer).value();
}

// The pieces released for each id, then the flushed rest.
std::vector<std::string> Pieces(StreamingDetokenizer& detokenizer,
                                const std::vector<int32_t>& ids) {
  std::vector<std::string> pieces;
  for (int32_t id : ids) {
    auto piece = detokenizer.Add(id);
    EXPECT_TRUE(piece.ok()) << piece.status();
    pieces.push_back(piece.ok() ? *piece : "<error>");
  }
  pieces.push_back(detokenizer.Flush());
  return pieces;
}

TEST(StreamingDetokenizerTest, HoldsEmojiBytesUntilTheCharacterIsWhole) {
  auto tokenizer = Bytes();
  StreamingDetokenizer detokenizer(tokenizer.get());
  EXPECT_EQ(*detokenizer.Add(0xF0), "");
  EXPECT_EQ(detokenizer.pending_bytes(), 1u);
  EXPECT_EQ(*detokenizer.Add(0x9F), "");
  EXPECT_EQ(*detokenizer.Add(0x98), "");
  EXPECT_EQ(detokenizer.pending_bytes(), 3u);
  EXPECT_EQ(*detokenizer.Add(0x80), "😀");
  EXPECT_EQ(detokenizer.pending_bytes(), 0u);
}

TEST(StreamingDetokenizerTest, ReleasesEachCjkCharacterAsItCompletes) {
  auto tokenizer = Bytes();
  StreamingDetokenizer detokenizer(tokenizer.get());
  // 中文 is E4 B8 AD E6 96 87.
  EXPECT_THAT(Pieces(detokenizer, {'a', 0xE4, 0xB8, 0xAD, 0xE6, 0x96, 0x87}),
              ElementsAre("a", "", "", "中", "", "", "文", ""));
}

TEST(StreamingDetokenizerTest, NeverReleasesPartOfACharacter) {
  auto tokenizer = Bytes();
  const std::string text =
      "Zwölf Boxkämpfer 你好世界 مرحبا "
      "👨‍👩‍👧‍👦🇯🇵 "
      "ok\n";
  auto ids = tokenizer->Encode(text, /*add_special_tokens=*/true);
  ASSERT_TRUE(ids.ok());
  StreamingDetokenizer detokenizer(tokenizer.get());
  std::string joined;
  for (const std::string& piece : Pieces(detokenizer, *ids)) {
    EXPECT_TRUE(IsValidUtf8(piece)) << piece;
    joined += piece;
  }
  EXPECT_EQ(joined, text);
}

TEST(StreamingDetokenizerTest, ReplacesBytesThatCanNeverFormACharacter) {
  auto tokenizer = Bytes();
  StreamingDetokenizer detokenizer(tokenizer.get());
  EXPECT_EQ(*detokenizer.Add(0x80), kFffd);  // a stray continuation byte
  EXPECT_EQ(*detokenizer.Add(0xE4), "");
  EXPECT_EQ(*detokenizer.Add('A'), kFffd + "A");  // E4 cut short by 'A'
}

TEST(StreamingDetokenizerTest, FlushReleasesAnIncompleteCharacterAsFffd) {
  auto tokenizer = Bytes();
  StreamingDetokenizer detokenizer(tokenizer.get());
  EXPECT_EQ(*detokenizer.Add(0xF0), "");
  EXPECT_EQ(*detokenizer.Add(0x9F), "");
  EXPECT_EQ(detokenizer.Flush(), kFffd);
  EXPECT_EQ(detokenizer.pending_bytes(), 0u);
  EXPECT_EQ(detokenizer.Flush(), "");
  EXPECT_EQ(*detokenizer.Add('x'), "x");
}

TEST(StreamingDetokenizerTest, SkipsSpecialTokensUnlessAskedToKeepThem) {
  auto tokenizer = Bytes();
  StreamingDetokenizer skipping(tokenizer.get());
  EXPECT_THAT(Pieces(skipping, {256, 'h', 'i', 257}),
              ElementsAre("", "h", "i", "", ""));
  StreamingDetokenizer keeping(tokenizer.get(), /*skip_special_tokens=*/false);
  EXPECT_THAT(Pieces(keeping, {256, 'h', 'i', 257}),
              ElementsAre("<s>", "h", "i", "</s>", ""));
}

TEST(StreamingDetokenizerTest, RejectsIdsOutsideTheVocabularyAndKeepsState) {
  auto tokenizer = Bytes();
  StreamingDetokenizer detokenizer(tokenizer.get());
  EXPECT_EQ(*detokenizer.Add(0xC3), "");
  EXPECT_EQ(detokenizer.Add(258).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(detokenizer.Add(-1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*detokenizer.Add(0xA9), "é");
}

TEST(StreamingDetokenizerTest, JoinsByteLevelTokensHoldingPartsOfACharacter) {
  auto tokenizer = ByteLevelStyle();
  StreamingDetokenizer detokenizer(tokenizer.get());
  EXPECT_THAT(Pieces(detokenizer, {' ', 0xF0, 0x9F, 0x98, 0x80, '!'}),
              ElementsAre(" ", "", "", "", "😀", "!", ""));
  EXPECT_EQ(*tokenizer->Decode({' ', 0xF0, 0x9F, 0x98, 0x80, '!'}), " 😀!");
}

TEST(StreamingDetokenizerTest, StripsTheFirstSpaceOfTheTextLikeLlama2) {
  // Ids: 259 "▁Hello", 260 "▁world", 261 "▁".
  auto tokenizer = Llama2Style({"▁Hello", "▁world", "▁"});
  StreamingDetokenizer detokenizer(tokenizer.get());
  EXPECT_THAT(Pieces(detokenizer, {259, 260}),
              ElementsAre("Hello", " world", ""));
  // "▁" then "▁Hello": only the first of the two spaces goes.
  EXPECT_THAT(Pieces(detokenizer, {261, 259}), ElementsAre("", " Hello", ""));
  EXPECT_EQ(*tokenizer->Decode({261, 259}), " Hello");
  // A kept <s> starts the text, so nothing is stripped.
  StreamingDetokenizer keeping(tokenizer.get(), false);
  EXPECT_THAT(Pieces(keeping, {1, 259}), ElementsAre("<s>", " Hello", ""));
  EXPECT_EQ(*tokenizer->Decode({1, 259}), "<s> Hello");
}

TEST(StreamingDetokenizerTest, JoinsByteFallbackTokensIntoCharacters) {
  auto tokenizer = Llama2Style({"▁Hello"});
  StreamingDetokenizer detokenizer(tokenizer.get());
  // 中 is E4 B8 AD; byte token ids are the byte plus 3.
  EXPECT_THAT(Pieces(detokenizer, {259, 0xE4 + 3, 0xB8 + 3, 0xAD + 3}),
              ElementsAre("Hello", "", "", "中", ""));
}

TEST(StreamingDetokenizerTest, DropsMetaspaceOfTheFirstTokenOnly) {
  // Ids: 259 "▁Hello", 260 "▁world", 261 "▁▁".
  auto tokenizer = MetaspaceStyle({"▁Hello", "▁world", "▁▁"});
  StreamingDetokenizer detokenizer(tokenizer.get());
  EXPECT_THAT(Pieces(detokenizer, {259, 260}),
              ElementsAre("Hello", " world", ""));
  EXPECT_THAT(Pieces(detokenizer, {261, 259}), ElementsAre("", " Hello", ""));
  EXPECT_EQ(*tokenizer->Decode({261, 259}), " Hello");
  // A skipped special token does not count as the first token.
  EXPECT_THAT(Pieces(detokenizer, {1, 260}), ElementsAre("", "world", ""));
  EXPECT_EQ(*tokenizer->Decode({1, 260}, /*skip_special_tokens=*/true),
            "world");
}

}  // namespace
}  // namespace tandem
