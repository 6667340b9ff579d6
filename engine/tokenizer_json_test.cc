// Malformed and unsupported tokenizer.json files, and the model directory
// loader's errors.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A small valid tokenizer.json: BPE over a, b, c with merges to "ab" and
// "abc", an unk token and a <s> template.
nlohmann::json ValidJson() {
  return nlohmann::json::parse(R"({
    "version": "1.0",
    "added_tokens": [
      {"id": 0, "content": "<unk>", "special": true, "normalized": false,
       "lstrip": false, "rstrip": false, "single_word": false},
      {"id": 1, "content": "<s>", "special": true, "normalized": false,
       "lstrip": false, "rstrip": false, "single_word": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"},
                      "behavior": "Removed", "invert": false},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [1],
                                 "tokens": ["<s>"]}}},
    "decoder": {"type": "Fuse"},
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true,
              "byte_fallback": false,
              "vocab": {"<unk>": 0, "<s>": 1, "a": 2, "b": 3, "c": 4,
                        "ab": 5, "abc": 6},
              "merges": ["a b", ["ab", "c"]]}
  })");
}

absl::Status LoadStatus(const nlohmann::json& root) {
  return LoadTokenizerFromParsedJson(root).status();
}

void ExpectInvalid(const nlohmann::json& root, const std::string& message) {
  const absl::Status status = LoadStatus(root);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr(message));
}

TEST(TokenizerJsonTest, ValidFileEncodesWithMergesUnkAndTemplate) {
  auto tokenizer = LoadTokenizerFromParsedJson(ValidJson());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  // "abc" merges whole; "xyz" is three unknown characters fused into one.
  EXPECT_THAT(*(*tokenizer)->Encode("abc ab xyz ca"),
              ElementsAre(1, 6, 5, 0, 4, 2));
  EXPECT_EQ(*(*tokenizer)->Decode({1, 6, 5}, /*skip_special_tokens=*/true),
            "abcab");
  EXPECT_EQ((*tokenizer)->bos_id(), 1);
  EXPECT_EQ((*tokenizer)->vocab_size(), 7);
}

TEST(TokenizerJsonTest, RejectsMalformedJsonText) {
  const absl::Status status = LoadTokenizerFromJson("{\"model\": ").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("malformed JSON"));
}

TEST(TokenizerJsonTest, RejectsNonObjectAndMissingModel) {
  ExpectInvalid(nlohmann::json::array(), "expected an object");
  nlohmann::json root = ValidJson();
  root.erase("model");
  ExpectInvalid(root, "tokenizer.json: model: missing field");
}

TEST(TokenizerJsonTest, NamesUnsupportedComponentTypes) {
  nlohmann::json root = ValidJson();
  root["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_EQ(LoadStatus(root).message(),
            "tokenizer.json: unsupported pre_tokenizer type 'Whitespace'");
  root = ValidJson();
  root["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "Digits"}}}}};
  ExpectInvalid(root, "unsupported pre_tokenizer type 'Digits'");
  root = ValidJson();
  root["normalizer"] = {{"type", "Lowercase"}};
  ExpectInvalid(root, "unsupported normalizer type 'Lowercase'");
  root = ValidJson();
  root["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
  ExpectInvalid(root, "unsupported decoder type 'WordPiece'");
  root = ValidJson();
  root["post_processor"] = {{"type", "Mystery"}};
  ExpectInvalid(root, "unsupported post_processor type 'Mystery'");
  root = ValidJson();
  root["model"]["type"] = "WordPiece";
  ExpectInvalid(root, "unsupported model type 'WordPiece'");
}

TEST(TokenizerJsonTest, RejectsMergesNamingUnknownTokens) {
  nlohmann::json root = ValidJson();
  root["model"]["merges"] = {"a b", "c zz"};
  ExpectInvalid(root, "model.merges[1]: token 'zz' is not in model.vocab");
  root["model"]["merges"] = {"b c"};  // "bc" itself is missing
  ExpectInvalid(root, "model.merges[0]: token 'bc' is not in model.vocab");
}

TEST(TokenizerJsonTest, RejectsMalformedMerges) {
  nlohmann::json root = ValidJson();
  root["model"]["merges"] = {"abc"};
  ExpectInvalid(root, "model.merges[0]: expected two tokens");
  root["model"]["merges"] = {{"a"}};
  ExpectInvalid(root, "model.merges[0]: expected");
  root["model"]["merges"] = "a b";
  ExpectInvalid(root, "model.merges: expected a list");
  root["model"].erase("merges");
  ExpectInvalid(root, "model.merges: missing field");
}

TEST(TokenizerJsonTest, RejectsBadVocabularies) {
  nlohmann::json root = ValidJson();
  root["model"]["vocab"]["a"] = -2;
  ExpectInvalid(root, "model.vocab.a: expected a non-negative integer id");
  root = ValidJson();
  root["model"]["vocab"]["x"] = 2;
  ExpectInvalid(root, "id 2 is used twice");
  root = ValidJson();
  root["model"]["vocab"] = {"a", "b"};
  ExpectInvalid(root, "model.vocab: expected an object");
  root = ValidJson();
  root["model"]["unk_token"] = "<missing>";
  ExpectInvalid(root, "model.unk_token: '<missing>' is not in model.vocab");
  root = ValidJson();
  root["model"]["dropout"] = 0.1;
  ExpectInvalid(root, "model.dropout");
}

TEST(TokenizerJsonTest, RejectsBadAddedTokens) {
  nlohmann::json root = ValidJson();
  root["added_tokens"][1].erase("content");
  ExpectInvalid(root, "added_tokens[1].content: missing field");
  root = ValidJson();
  root["added_tokens"][1]["content"] = "<unk>";
  ExpectInvalid(root, "added_tokens[1].content: '<unk>' is listed twice");
  root = ValidJson();
  root["added_tokens"][0]["special"] = "yes";
  ExpectInvalid(root, "added_tokens[0].special: expected true or false");
}

TEST(TokenizerJsonTest, RejectsBadPreTokenizerFields) {
  nlohmann::json root = ValidJson();
  root["pre_tokenizer"]["pattern"] = {{"Regex", "(unclosed"}};
  ExpectInvalid(root, "pre_tokenizer.pattern.Regex: bad regex");
  root = ValidJson();
  root["pre_tokenizer"]["behavior"] = "Sideways";
  ExpectInvalid(root, "pre_tokenizer.behavior: unknown split behavior");
  root = ValidJson();
  root["pre_tokenizer"]["pattern"] = "\\s+";
  ExpectInvalid(root, "pre_tokenizer.pattern: expected {\"String\"");
  root = ValidJson();
  root["pre_tokenizer"] = {{"type", "Metaspace"},
                           {"replacement", "▁"},
                           {"prepend_scheme", "sometimes"}};
  ExpectInvalid(root, "pre_tokenizer.prepend_scheme: unknown");
  root = ValidJson();
  root["pre_tokenizer"] = {{"kind", "Split"}};
  ExpectInvalid(root, "pre_tokenizer.type: missing field");
}

TEST(TokenizerJsonTest, RejectsBadTemplates) {
  nlohmann::json root = ValidJson();
  root["post_processor"]["single"][0]["SpecialToken"]["id"] = "<x>";
  ExpectInvalid(root, "no entry for special token '<x>'");
  root = ValidJson();
  root["post_processor"]["single"].push_back(
      {{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  ExpectInvalid(root, "post_processor.single: must hold the sequence");
  root = ValidJson();
  root["post_processor"]["special_tokens"]["<s>"]["ids"] = {99};
  ExpectInvalid(root, "special token id 99 is outside the vocabulary");
}

TEST(TokenizerJsonTest, RejectsBadDecoderFields) {
  nlohmann::json root = ValidJson();
  root["decoder"] = {
      {"type", "Strip"}, {"content", " "}, {"start", -1}, {"stop", 0}};
  ExpectInvalid(root, "decoder:");
  root["decoder"] = {{"type", "Sequence"},
                     {"decoders", nlohmann::json::array({"Fuse"})}};
  ExpectInvalid(root, "decoder.decoders[0]");
}

TEST(TokenizerJsonTest, EncodeAndDecodeRejectBadInput) {
  auto tokenizer = LoadTokenizerFromParsedJson(ValidJson());
  ASSERT_TRUE(tokenizer.ok());
  EXPECT_EQ((*tokenizer)->Encode("a\xC3").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*tokenizer)->Decode({2, 7}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*tokenizer)->TokenBytes(-3, false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TokenizerJsonTest, EncodesFromManyThreadsAtOnce) {
  auto tokenizer = LoadTokenizerFromParsedJson(ValidJson());
  ASSERT_TRUE(tokenizer.ok());
  const Tokenizer& shared = **tokenizer;
  const std::vector<int32_t> expected = {1, 6, 5, 0, 4, 2};
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&shared, &expected, &mismatches, t] {
      for (int i = 0; i < 200; ++i) {
        // Distinct words per thread fill the word cache concurrently.
        auto ids = shared.Encode("abc ab xyz ca " + std::string(i % 7, 'a') +
                                 std::string(t, 'b'));
        if (!ids.ok() ||
            !std::equal(expected.begin(), expected.end(), ids->begin())) {
          ++mismatches;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

class TokenizerDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tandem_tokenizer_json_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }

  fs::path dir_;
};

TEST_F(TokenizerDirTest, MissingTokenizerJsonIsNotFound) {
  EXPECT_EQ(LoadTokenizer(dir_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadTokenizer(dir_ / "nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(TokenizerDirTest, ErrorsNameTheDirectory) {
  Write("tokenizer.json", "{]");
  const absl::Status status = LoadTokenizer(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(dir_.string()));
  EXPECT_THAT(status.message(), HasSubstr("malformed JSON"));
}

TEST_F(TokenizerDirTest, ReadsSpecialIdsFromConfigFiles) {
  Write("tokenizer.json", ValidJson().dump());
  Write("config.json", R"({"bos_token_id": 1, "eos_token_id": [4, 5]})");
  Write("generation_config.json", R"({"eos_token_id": 6})");
  auto tokenizer = LoadTokenizer(dir_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->bos_id(), 1);
  EXPECT_THAT((*tokenizer)->eos_ids(), ElementsAre(6));
}

TEST_F(TokenizerDirTest, RejectsMalformedConfigFiles) {
  Write("tokenizer.json", ValidJson().dump());
  Write("config.json", R"({"eos_token_id": "</s>"})");
  auto status = LoadTokenizer(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("config.json: eos_token_id"));
  Write("config.json", "not json");
  EXPECT_THAT(LoadTokenizer(dir_).status().message(),
              HasSubstr("config.json: not a JSON object"));
  Write("config.json", "{}");
  Write("tokenizer_config.json", R"({"eos_token": "<nope>"})");
  EXPECT_THAT(LoadTokenizer(dir_).status().message(),
              HasSubstr("eos_token: '<nope>' is not a token"));
  Write("tokenizer_config.json", R"({"eos_token": {"content": "c"}})");
  auto tokenizer = LoadTokenizer(dir_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT((*tokenizer)->eos_ids(), ElementsAre(4));
}

TEST_F(TokenizerDirTest, ConfigIdsOutsideTheVocabularyAreRejected) {
  Write("tokenizer.json", ValidJson().dump());
  Write("config.json", R"({"bos_token_id": 1000})");
  const absl::Status status = LoadTokenizer(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("1000 is outside the vocabulary"));
}

}  // namespace
}  // namespace tandem
