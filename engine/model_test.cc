#include "engine/model.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/kernels.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

std::filesystem::path ReferenceDir(const std::string& name) {
  const char* root = std::getenv("TANDEM_SOURCE_DIR");
  return std::filesystem::path(root == nullptr ? "." : root) / "engine" /
         "testdata" / "reference" / name;
}

struct Reference {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;  // [tokens, vocab]
};

Reference ReadReference(const std::string& name) {
  std::ifstream in(ReferenceDir(name) / "reference.json");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json json = nlohmann::json::parse(text.str());
  Reference ref;
  ref.tokens = json.at("tokens").get<std::vector<int32_t>>();
  ref.logits = json.at("logits").get<std::vector<std::vector<float>>>();
  return ref;
}

std::unique_ptr<Model> LoadReferenceModel(const std::string& name) {
  auto model = Model::Load(ReferenceDir(name));
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(model).value() : nullptr;
}

std::unique_ptr<PagedKvCache> MakeCache(const Model& model, int block_size,
                                        int blocks) {
  const KvLayout layout = model.kv_layout(block_size);
  auto cache = PagedKvCache::Create(
      layout, PagedKvCache::BlockStrideBytes(layout) * blocks);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::move(cache).value();
}

float MaxAbsDiff(const float* a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (size_t i = 0; i < b.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  return worst;
}

class ReferenceLogitsTest : public testing::TestWithParam<std::string> {};

TEST_P(ReferenceLogitsTest, PrefillMatchesPyTorchReference) {
  const Reference ref = ReadReference(GetParam());
  std::unique_ptr<Model> model = LoadReferenceModel(GetParam());
  ASSERT_NE(model, nullptr);
  auto cache = MakeCache(*model, 4, 64);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, ref.tokens.size()).ok());
  std::vector<float> logits;
  const Model::Chunk chunk{1, ref.tokens};
  ASSERT_TRUE(
      model->Prefill({&chunk, 1}, *cache, Model::Logits::kAllPositions, &logits)
          .ok());
  const int vocab = model->config().vocab_size;
  ASSERT_EQ(logits.size(), ref.tokens.size() * vocab);
  for (size_t t = 0; t < ref.tokens.size(); ++t) {
    EXPECT_LT(MaxAbsDiff(logits.data() + t * vocab, ref.logits[t]), 1e-4f)
        << "position " << t;
  }
}

TEST_P(ReferenceLogitsTest, DecodeStepsMatchPyTorchReference) {
  const Reference ref = ReadReference(GetParam());
  std::unique_ptr<Model> model = LoadReferenceModel(GetParam());
  ASSERT_NE(model, nullptr);
  auto cache = MakeCache(*model, 4, 64);
  ASSERT_TRUE(cache->AddSequence(7).ok());
  const int vocab = model->config().vocab_size;
  std::vector<float> logits;
  for (size_t t = 0; t < ref.tokens.size(); ++t) {
    ASSERT_TRUE(cache->Append(7, 1).ok());
    const SequenceId seq = 7;
    ASSERT_TRUE(
        model->DecodeStep({&seq, 1}, {&ref.tokens[t], 1}, *cache, &logits)
            .ok());
    EXPECT_LT(MaxAbsDiff(logits.data(), ref.logits[t]), 1e-4f)
        << "position " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, ReferenceLogitsTest,
                         testing::Values("mha", "gqa", "tied", "attention_bias",
                                         "rope_theta", "rope_linear",
                                         "rope_llama3", "head_dim", "bf16",
                                         "f16"));

// Sequences of different lengths prefilled together, some split into a
// prefix prefill and single decode steps, all in shared batches, must give
// the logits of one whole prefill of each sequence alone.
TEST(ModelTest, MixedBatchesOfPrefillAndDecodeMatchWholePrefill) {
  const Reference ref = ReadReference("gqa");
  std::unique_ptr<Model> model = LoadReferenceModel("gqa");
  ASSERT_NE(model, nullptr);
  const int vocab = model->config().vocab_size;
  auto cache = MakeCache(*model, 4, 128);
  const std::vector<int> prefix_lengths = {1, 5, 8, 11};
  const int total = static_cast<int>(ref.tokens.size());
  std::vector<Model::Chunk> chunks;
  for (size_t s = 0; s < prefix_lengths.size(); ++s) {
    ASSERT_TRUE(cache->AddSequence(s).ok());
    ASSERT_TRUE(cache->Append(s, prefix_lengths[s]).ok());
    chunks.push_back(
        {static_cast<SequenceId>(s),
         absl::Span<const int32_t>(ref.tokens).subspan(0, prefix_lengths[s])});
  }
  std::vector<float> logits;
  ASSERT_TRUE(
      model->Prefill(chunks, *cache, Model::Logits::kLastPerSequence, &logits)
          .ok());
  for (size_t s = 0; s < prefix_lengths.size(); ++s) {
    EXPECT_LT(MaxAbsDiff(logits.data() + s * vocab,
                         ref.logits[prefix_lengths[s] - 1]),
              1e-4f);
  }
  // Decode the rest; sequences leave the batch as they reach the end.
  std::vector<int> length = prefix_lengths;
  while (true) {
    std::vector<SequenceId> seqs;
    std::vector<int32_t> tokens;
    for (size_t s = 0; s < length.size(); ++s) {
      if (length[s] == total) continue;
      ASSERT_TRUE(cache->Append(s, 1).ok());
      seqs.push_back(s);
      tokens.push_back(ref.tokens[length[s]]);
    }
    if (seqs.empty()) break;
    ASSERT_TRUE(model->DecodeStep(seqs, tokens, *cache, &logits).ok());
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int pos = length[seqs[i]]++;
      EXPECT_LT(MaxAbsDiff(logits.data() + i * vocab, ref.logits[pos]), 1e-4f)
          << "sequence " << seqs[i] << " position " << pos;
    }
  }
}

// A decode step with many sequences splits its attention work by sequence
// rather than by KV head; each sequence must still get its own logits.
TEST(ModelTest, WideDecodeStepMatchesReference) {
  const Reference ref = ReadReference("gqa");
  std::unique_ptr<Model> model = LoadReferenceModel("gqa");
  ASSERT_NE(model, nullptr);
  const int vocab = model->config().vocab_size;
  const int total = static_cast<int>(ref.tokens.size());
  // More one-token sequences than any thread count splits by KV head.
  const int sequences = 8 * EngineThreads() + 3;
  auto cache = MakeCache(*model, 4, sequences * (total / 4 + 2));
  std::vector<Model::Chunk> chunks;
  std::vector<SequenceId> seqs;
  std::vector<int32_t> next_tokens;
  std::vector<int> lengths;
  for (int s = 0; s < sequences; ++s) {
    const int length = 1 + s % (total - 1);
    ASSERT_TRUE(cache->AddSequence(s).ok());
    ASSERT_TRUE(cache->Append(s, length).ok());
    chunks.push_back(
        {static_cast<SequenceId>(s),
         absl::Span<const int32_t>(ref.tokens).subspan(0, length)});
    seqs.push_back(s);
    next_tokens.push_back(ref.tokens[length]);
    lengths.push_back(length);
  }
  std::vector<float> logits;
  ASSERT_TRUE(
      model->Prefill(chunks, *cache, Model::Logits::kLastPerSequence, &logits)
          .ok());
  for (SequenceId seq : seqs) ASSERT_TRUE(cache->Append(seq, 1).ok());
  ASSERT_TRUE(model->DecodeStep(seqs, next_tokens, *cache, &logits).ok());
  for (int s = 0; s < sequences; ++s) {
    EXPECT_LT(MaxAbsDiff(logits.data() + static_cast<long>(s) * vocab,
                         ref.logits[lengths[s]]),
              1e-4f)
        << "sequence " << s;
  }
}

TEST(ModelTest, RejectsBadInputWithoutTouchingTheCache) {
  std::unique_ptr<Model> model = LoadReferenceModel("mha");
  ASSERT_NE(model, nullptr);
  auto cache = MakeCache(*model, 4, 8);
  ASSERT_TRUE(cache->AddSequence(1).ok());
  ASSERT_TRUE(cache->Append(1, 2).ok());
  std::vector<float> logits;
  const std::vector<int32_t> bad_token = {1, model->config().vocab_size};
  Model::Chunk chunk{1, bad_token};
  EXPECT_EQ(model
                ->Prefill({&chunk, 1}, *cache, Model::Logits::kLastPerSequence,
                          &logits)
                .code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> three = {1, 2, 3};
  chunk = {1, three};
  EXPECT_EQ(model
                ->Prefill({&chunk, 1}, *cache, Model::Logits::kLastPerSequence,
                          &logits)
                .code(),
            absl::StatusCode::kFailedPrecondition);
  chunk = {2, three};
  EXPECT_EQ(model
                ->Prefill({&chunk, 1}, *cache, Model::Logits::kLastPerSequence,
                          &logits)
                .code(),
            absl::StatusCode::kNotFound);
  const std::vector<int32_t> none;
  chunk = {1, none};
  EXPECT_EQ(model
                ->Prefill({&chunk, 1}, *cache, Model::Logits::kLastPerSequence,
                          &logits)
                .code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> two = {1, 2};
  const std::vector<Model::Chunk> twice = {{1, two}, {1, two}};
  EXPECT_EQ(
      model->Prefill(twice, *cache, Model::Logits::kLastPerSequence, &logits)
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->NumTokens(1), 2);
}

}  // namespace
}  // namespace tandem
