#include "tools/bits_per_byte.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/byte_tokenizer.h"
#include "engine/paged_kv_cache.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kContext = 32;

// A random byte-level model (vocab 258, BOS 256, EOS 257) with a short
// context, so that windows are exercised on short texts.
class BitsPerByteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path dir = fs::path(::testing::TempDir()) /
                         absl::StrCat("bits_per_byte_test_", getpid());
    fs::remove_all(dir);
    ASSERT_TRUE(testing::WriteTestModel(
                    dir, {.seed = 11, .num_kv_heads = 2, .context = kContext})
                    .ok());
    auto model = Model::Load(dir);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(model).value().release();
    fs::remove_all(dir);
    tokenizer_ = ByteTokenizer::Create(256, 257).value().release();
  }

  static void TearDownTestSuite() {
    delete model_;
    delete tokenizer_;
  }

  static absl::StatusOr<ScoreResult> Score(const std::vector<std::string>& docs,
                                           ScoreOptions options = {}) {
    return ScoreDocuments(*model_, *tokenizer_, docs, options,
                          [](int64_t, int64_t) {});
  }

  // -log2 p(tokens[t] | tokens[start..t)) for t in [first, end], from one
  // prefill of tokens [start, end) alone.
  static double WindowBits(const std::vector<int32_t>& tokens, int start,
                           int end, int first) {
    const KvLayout layout = model_->kv_layout(16);
    auto cache = PagedKvCache::Create(
        layout, PagedKvCache::BlockStrideBytes(layout) * (kContext / 16 + 1));
    EXPECT_TRUE(cache.ok());
    EXPECT_TRUE((*cache)->AddSequence(0).ok());
    EXPECT_TRUE((*cache)->Append(0, end - start).ok());
    std::vector<int32_t> fed(tokens.begin() + start, tokens.begin() + end);
    const Model::Chunk chunk{0, fed};
    std::vector<float> logits;
    EXPECT_TRUE(model_
                    ->Prefill({&chunk, 1}, **cache,
                              Model::Logits::kAllPositions, &logits)
                    .ok());
    const int vocab = 258;
    double bits = 0;
    for (int t = first; t <= end; ++t) {
      const float* row = &logits[(t - 1 - start) * vocab];
      double sum = 0;
      for (int i = 0; i < vocab; ++i) sum += std::exp(double{row[i]});
      bits += (std::log(sum) - row[tokens[t]]) / std::log(2.0);
    }
    return bits;
  }

  static std::vector<int32_t> Tokens(const std::string& text) {
    std::vector<int32_t> tokens = {256};
    for (unsigned char c : text) tokens.push_back(c);
    tokens.push_back(257);
    return tokens;
  }

  static Model* model_;
  static Tokenizer* tokenizer_;
};

Model* BitsPerByteTest::model_ = nullptr;
Tokenizer* BitsPerByteTest::tokenizer_ = nullptr;

TEST_F(BitsPerByteTest, ShortDocumentsMatchOnePrefillEach) {
  const std::vector<std::string> docs = {"fortune", "a", "two words\n"};
  auto result = Score(docs);
  ASSERT_TRUE(result.ok()) << result.status();
  double expected = 0;
  for (const std::string& doc : docs) {
    const std::vector<int32_t> tokens = Tokens(doc);
    expected += WindowBits(tokens, 0, tokens.size() - 1, 1);
  }
  EXPECT_NEAR(result->total_bits, expected, 1e-4 * expected);
  EXPECT_EQ(result->documents, 3);
  EXPECT_EQ(result->bytes, 18);
  EXPECT_EQ(result->eos_tokens, 3);
  EXPECT_EQ(result->predicted_tokens, 21);  // bytes + one EOS each
  EXPECT_EQ(result->windows, 3);
  EXPECT_DOUBLE_EQ(result->bits_per_byte(), result->total_bits / 21);
}

TEST_F(BitsPerByteTest, LongDocumentIsScoredInStridedWindows) {
  const std::string text(70, 'x');  // 72 tokens, context 32
  const std::vector<int32_t> tokens = Tokens(text);
  ScoreOptions options;
  options.stride = 16;
  auto result = Score({text}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  // Windows fed [0,32) [16,48) [32,64) [48,71): each predicts the tokens
  // after the previous window's last prediction.
  const double expected =
      WindowBits(tokens, 0, 32, 1) + WindowBits(tokens, 16, 48, 33) +
      WindowBits(tokens, 32, 64, 49) + WindowBits(tokens, 48, 71, 65);
  EXPECT_NEAR(result->total_bits, expected, 1e-4 * expected);
  EXPECT_EQ(result->predicted_tokens, 71);
  EXPECT_EQ(result->windows, 4);
}

TEST_F(BitsPerByteTest, DefaultStrideIsHalfTheContext) {
  const std::string text(70, 'y');
  ScoreOptions half;
  half.stride = kContext / 2;
  auto with_default = Score({text});
  auto with_half = Score({text}, half);
  ASSERT_TRUE(with_default.ok() && with_half.ok());
  EXPECT_EQ(with_default->total_bits, with_half->total_bits);
  ScoreOptions full;
  full.stride = kContext;
  auto with_full = Score({text}, full);
  ASSERT_TRUE(with_full.ok());
  EXPECT_EQ(with_full->predicted_tokens, 71);
  EXPECT_EQ(with_full->windows, 3);
}

TEST_F(BitsPerByteTest, BatchingDoesNotChangeTheScore) {
  std::vector<std::string> docs;
  for (int i = 0; i < 20; ++i) docs.push_back(std::string(5 + i * 3, 'a' + i));
  ScoreOptions small;
  small.max_batch_tokens = 1;  // one window per prefill
  auto batched = Score(docs);
  auto single = Score(docs, small);
  ASSERT_TRUE(batched.ok() && single.ok());
  EXPECT_NEAR(batched->total_bits, single->total_bits,
              1e-5 * single->total_bits);
  EXPECT_EQ(batched->predicted_tokens, single->predicted_tokens);
}

TEST_F(BitsPerByteTest, RejectsStrideBeyondTheContext) {
  ScoreOptions options;
  options.stride = kContext + 1;
  auto result = Score({"abc"}, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("stride"));
}

TEST_F(BitsPerByteTest, RejectsInvalidUtf8NamingTheDocument) {
  auto result = Score({"fine", "bad \xff byte"});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("document 1"));
}

TEST_F(BitsPerByteTest, RejectsEmptyText) {
  auto result =
      ScoreDocuments(*model_, *tokenizer_, {}, {}, [](int64_t, int64_t) {});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SplitFortunesTest, SplitsAtPercentLinesAndTrimsNewlines) {
  EXPECT_THAT(SplitFortunes("first\nline two\n%\n\nsecond\n\n%\n"),
              ElementsAre("first\nline two", "second"));
}

TEST(SplitFortunesTest, DropsBlankFortunesAndKeepsInnerWhitespace) {
  EXPECT_THAT(SplitFortunes("%\n \t\n%\n  indented\n\tend  \n%"),
              ElementsAre("  indented\n\tend  "));
}

TEST(SplitFortunesTest, OnlyALonePercentSeparates) {
  EXPECT_THAT(SplitFortunes("100%\n%%\n % \nend"),
              ElementsAre("100%\n%%\n % \nend"));
}

}  // namespace
}  // namespace tandem
