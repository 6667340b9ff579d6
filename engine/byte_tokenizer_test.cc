#include "engine/byte_tokenizer.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/bpe_tokenizer.h"
#include "engine/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const char kReplacement[] = "\xEF\xBF\xBD";

// The default model's tokenizer.json, as tools/train_default_model.py
// writes it.
std::string DefaultModelTokenizerJson() {
  const char* root = std::getenv("TANDEM_SOURCE_DIR");
  std::ifstream in(fs::path(root == nullptr ? "." : root) / "engine" /
                   "testdata" / "tokenizers" / "byte" / "tokenizer.json");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A model directory laid out like models/fortune.
class ModelDir {
 public:
  ModelDir() {
    path_ = fs::temp_directory_path() /
            ("tandem_byte_tokenizer_test_" + std::to_string(::getpid()));
    fs::create_directories(path_);
    WriteFile(path_ / "tokenizer.json", DefaultModelTokenizerJson());
    WriteFile(path_ / "config.json",
              R"({"vocab_size": 258, "bos_token_id": 256,
                  "eos_token_id": 257})");
    WriteFile(path_ / "tokenizer_config.json",
              R"({"tokenizer_class": "PreTrainedTokenizerFast",
                  "bos_token": "<s>", "eos_token": "</s>",
                  "add_bos_token": true, "add_eos_token": false})");
  }
  ~ModelDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::unique_ptr<ByteTokenizer> DefaultByteTokenizer() {
  auto tokenizer = ByteTokenizer::Create(256, 257);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

TEST(ByteTokenizerTest, EncodesUtf8BytesAsIdsAfterBos) {
  auto tokenizer = DefaultByteTokenizer();
  auto ids = tokenizer->Encode("Hé😀");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(256, 'H', 0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80));
  auto bare = tokenizer->Encode("Hi", /*add_special_tokens=*/false);
  ASSERT_TRUE(bare.ok());
  EXPECT_THAT(*bare, ElementsAre('H', 'i'));
}

TEST(ByteTokenizerTest, EmptyTextEncodesToBosAlone) {
  auto tokenizer = DefaultByteTokenizer();
  EXPECT_THAT(*tokenizer->Encode(""), ElementsAre(256));
  EXPECT_THAT(*tokenizer->Encode("", false), IsEmpty());
}

TEST(ByteTokenizerTest, ReportsVocabularyAndSpecialIds) {
  auto tokenizer = DefaultByteTokenizer();
  EXPECT_EQ(tokenizer->vocab_size(), 258);
  EXPECT_EQ(tokenizer->bos_id(), 256);
  EXPECT_THAT(tokenizer->eos_ids(), ElementsAre(257));
  EXPECT_TRUE(tokenizer->IsEos(257));
  EXPECT_FALSE(tokenizer->IsEos(256));
  EXPECT_TRUE(tokenizer->IsSpecialToken(256));
  EXPECT_FALSE(tokenizer->IsSpecialToken('a'));
  EXPECT_EQ(tokenizer->TokenToId("</s>"), 257);
  EXPECT_EQ(tokenizer->TokenToId("<0x0A>"), 10);
  EXPECT_EQ(tokenizer->TokenToId("<0xFF>"), 255);
  EXPECT_EQ(tokenizer->TokenToId("<0x0a>"), std::nullopt);
  EXPECT_EQ(tokenizer->TokenToId("a"), std::nullopt);
}

TEST(ByteTokenizerTest, SpecialTokenTextEncodesAsItsId) {
  auto tokenizer = DefaultByteTokenizer();
  auto ids = tokenizer->Encode("<s>a</s><s", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(256, 'a', 257, '<', 's'));
}

TEST(ByteTokenizerTest, DecodeShowsOrSkipsSpecialTokens) {
  auto tokenizer = DefaultByteTokenizer();
  const std::vector<int32_t> ids = {256, 'O', 'K', 257};
  EXPECT_EQ(*tokenizer->Decode(ids), "<s>OK</s>");
  EXPECT_EQ(*tokenizer->Decode(ids, /*skip_special_tokens=*/true), "OK");
}

TEST(ByteTokenizerTest, DecodeReplacesEveryByteOfAnInvalidRun) {
  auto tokenizer = DefaultByteTokenizer();
  // As a ByteFallback decoder: the run 'A' F0 9F is not UTF-8 as a whole.
  const std::vector<int32_t> ids = {'A', 0xF0, 0x9F, 256, 'B'};
  EXPECT_EQ(*tokenizer->Decode(ids),
            std::string(kReplacement) + kReplacement + kReplacement + "<s>B");
  // Skipping the special token joins the runs around it: é is whole again.
  EXPECT_EQ(*tokenizer->Decode({0xC3, 256, 0xA9}, true), "é");
}

TEST(ByteTokenizerTest, RejectsIdsOutsideTheVocabulary) {
  auto tokenizer = DefaultByteTokenizer();
  EXPECT_EQ(tokenizer->Decode({'a', 258}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokenizer->Decode({-1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokenizer->TokenBytes(300, false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ByteTokenizerTest, RejectsTextThatIsNotUtf8) {
  auto tokenizer = DefaultByteTokenizer();
  auto ids = tokenizer->Encode("ok\xFF");
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ids.status().message(), HasSubstr("UTF-8"));
}

TEST(ByteTokenizerTest, CreateRejectsSpecialIdsAmongTheBytes) {
  EXPECT_EQ(ByteTokenizer::Create(255, 257).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ByteTokenizer::Create(256, 256).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ByteTokenizerTest, TokenBytesAreTheByteOrTheSpecialText) {
  auto tokenizer = DefaultByteTokenizer();
  EXPECT_EQ(*tokenizer->TokenBytes(0xE4, true), "\xE4");
  EXPECT_EQ(*tokenizer->TokenBytes(257, false), "</s>");
}

TEST(ByteTokenizerTest, LoadsDefaultModelDirectoryAsByteTokenizer) {
  ModelDir dir;
  for (const fs::path& path : {dir.path(), dir.path() / "tokenizer.json"}) {
    auto tokenizer = LoadTokenizer(path);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    EXPECT_NE(dynamic_cast<const ByteTokenizer*>(tokenizer->get()), nullptr);
    EXPECT_EQ((*tokenizer)->vocab_size(), 258);
    EXPECT_EQ((*tokenizer)->bos_id(), 256);
    EXPECT_THAT((*tokenizer)->eos_ids(), ElementsAre(257));
    // tokenizer_config.json's add_bos_token applies: no post_processor.
    EXPECT_THAT(*(*tokenizer)->Encode("Hi"), ElementsAre(256, 'H', 'i'));
    EXPECT_EQ(*(*tokenizer)->Decode({256, 'H', 'i', 257}, true), "Hi");
  }
}

TEST(ByteTokenizerTest, TokenizerJsonAloneAddsNoBosLikeHuggingFace) {
  auto tokenizer = LoadTokenizerFromJson(DefaultModelTokenizerJson());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT(*(*tokenizer)->Encode("Hi"), ElementsAre('H', 'i'));
  // BOS and EOS still come from the added tokens' names.
  EXPECT_EQ((*tokenizer)->bos_id(), 256);
  EXPECT_THAT((*tokenizer)->eos_ids(), ElementsAre(257));
}

TEST(ByteTokenizerTest, GeneralBpeGivesTheSameIdsAndText) {
  TokenizerOptions bpe_options;
  bpe_options.allow_byte_tokenizer = false;
  auto bytes = LoadTokenizerFromJson(DefaultModelTokenizerJson());
  auto bpe = LoadTokenizerFromJson(DefaultModelTokenizerJson(), bpe_options);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  ASSERT_NE(dynamic_cast<const ByteTokenizer*>(bytes->get()), nullptr);
  ASSERT_NE(dynamic_cast<const BpeTokenizer*>(bpe->get()), nullptr);
  const std::vector<std::string> texts = {
      "",
      "Hello, world!",
      "  tabs\tand\nnew lines  ",
      "naïve 你好 😀👨‍👩‍👧",
      "<s>special</s> <s",
      std::string("nul\0byte", 8)};
  for (const std::string& text : texts) {
    auto a = (*bytes)->Encode(text);
    auto b = (*bpe)->Encode(text);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << text;
    EXPECT_EQ(*(*bytes)->Decode(*a), *(*bpe)->Decode(*b)) << text;
  }
  const std::vector<int32_t> broken = {0xE4, 0xB8, 256, 0x80, 'x'};
  EXPECT_EQ(*(*bytes)->Decode(broken), *(*bpe)->Decode(broken));
}

}  // namespace
}  // namespace tandem
