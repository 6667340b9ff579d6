#include "tools/random_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/model_weights.h"
#include "engine/weights_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::TempDir;
using ::testing::HasSubstr;

RandomModelFlags Flags(const fs::path& out) {
  RandomModelFlags f;
  f.out = out.string();
  f.seed = 7;
  return f;
}

absl::StatusOr<std::unique_ptr<ModelWeights>> WriteAndLoad(
    const RandomModelFlags& flags) {
  auto options = RandomModelOptionsFromFlags(flags);
  if (!options.ok()) return options.status();
  absl::Status written = WriteRandomModel(*options, flags.out);
  if (!written.ok()) return written;
  return ModelWeights::Load(flags.out);
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(RandomModelTest, WritesAModelThatLoadsWithTheFlagsConfig) {
  TempDir dir;
  RandomModelFlags f = Flags(dir.path() / "m");
  f.num_kv_heads = 2;
  f.eos_token_id = "2,3";
  auto w = WriteAndLoad(f);
  ASSERT_TRUE(w.ok()) << w.status();
  const ModelConfig& c = (*w)->config();
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{2, 3}));
  EXPECT_EQ((*w)->layers().size(), 2u);
  EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"m"});
  EXPECT_EQ(Listing(dir.path() / "m"),
            (std::vector<std::string>{"config.json", "model.safetensors"}));
}

TEST(RandomModelTest, WeightsAreScaledToKeepActivationsSane) {
  TempDir dir;
  auto w = WriteAndLoad(Flags(dir.path() / "m"));
  ASSERT_TRUE(w.ok()) << w.status();
  const LayerWeights& layer = (*w)->layers()[1];
  for (int i = 0; i < 64; ++i) {
    EXPECT_NEAR(layer.attn_norm[i], 1.0f, 0.1f);
    EXPECT_NEAR((*w)->final_norm()[i], 1.0f, 0.1f);
  }
  // down_proj is [64, 128]: uniform with standard deviation 1/sqrt(128).
  const int n = 64 * 128;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < n; ++i) {
    EXPECT_LE(std::abs(layer.down_proj[i]), std::sqrt(3.0f / 128) + 1e-6f);
    sum += layer.down_proj[i];
    sum_sq += layer.down_proj[i] * layer.down_proj[i];
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(sum_sq / n), 1.0 / std::sqrt(128.0), 0.005);
}

TEST(RandomModelTest, SameSeedGivesIdenticalFiles) {
  TempDir dir;
  RandomModelFlags a = Flags(dir.path() / "a");
  RandomModelFlags b = Flags(dir.path() / "b");
  RandomModelFlags c = Flags(dir.path() / "c");
  c.seed = 8;
  auto wa = WriteAndLoad(a);
  auto wb = WriteAndLoad(b);
  auto wc = WriteAndLoad(c);
  ASSERT_TRUE(wa.ok() && wb.ok() && wc.ok());
  EXPECT_EQ(ReadAll(dir.path() / "a" / "model.safetensors"),
            ReadAll(dir.path() / "b" / "model.safetensors"));
  EXPECT_EQ((*wa)->fingerprint(), (*wb)->fingerprint());
  EXPECT_NE((*wa)->fingerprint(), (*wc)->fingerprint());
}

// The values depend on the seed and tensor name only: sharding and dtype
// change the files, not the weights (beyond rounding).
TEST(RandomModelTest, ShardedBFloat16HoldsTheRoundedSameWeights) {
  TempDir dir;
  RandomModelFlags single = Flags(dir.path() / "single");
  RandomModelFlags sharded = Flags(dir.path() / "sharded");
  sharded.shards = 3;
  sharded.dtype = "bf16";
  auto ws = WriteAndLoad(single);
  auto wh = WriteAndLoad(sharded);
  ASSERT_TRUE(ws.ok()) << ws.status();
  ASSERT_TRUE(wh.ok()) << wh.status();
  EXPECT_TRUE(
      fs::exists(dir.path() / "sharded" / "model.safetensors.index.json"));
  for (int s = 1; s <= 3; ++s) {
    EXPECT_TRUE(fs::exists(
        dir.path() / "sharded" /
        ("model-0000" + std::to_string(s) + "-of-00003.safetensors")));
  }
  const int n = 256 * 64;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ((*wh)->lm_head()[i],
              BFloat16ToFloat(FloatToBFloat16((*ws)->lm_head()[i])));
  }
  const float* q = (*wh)->layers()[0].q_proj;
  EXPECT_EQ(q[5],
            BFloat16ToFloat(FloatToBFloat16((*ws)->layers()[0].q_proj[5])));
}

TEST(RandomModelTest, Qwen2WithBiasTiedEmbeddingsAndLlama3Rope) {
  TempDir dir;
  RandomModelFlags f = Flags(dir.path() / "m");
  f.architecture = "Qwen2ForCausalLM";
  f.attention_bias = true;
  f.tie_word_embeddings = true;
  f.rope_scaling = "llama3";
  f.rope_factor = 8;
  f.dtype = "f16";
  f.head_dim = 32;
  f.num_kv_heads = 1;
  auto w = WriteAndLoad(f);
  ASSERT_TRUE(w.ok()) << w.status();
  const ModelConfig& c = (*w)->config();
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_EQ((*w)->lm_head(), (*w)->embed_tokens());
  ASSERT_NE((*w)->layers()[0].k_bias, nullptr);
  EXPECT_LE(std::abs((*w)->layers()[0].k_bias[0]), 0.1f);
}

TEST(RandomModelTest, LinearRopeScaling) {
  TempDir dir;
  RandomModelFlags f = Flags(dir.path() / "m");
  f.rope_scaling = "linear";
  f.rope_factor = 2;
  f.architecture = "MistralForCausalLM";
  auto w = WriteAndLoad(f);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->config().rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_EQ((*w)->config().architecture, "MistralForCausalLM");
}

TEST(RandomModelTest, RefusesANonEmptyOutputAndLeavesItAlone) {
  TempDir dir;
  fs::create_directory(dir.path() / "m");
  testing::WriteFile(dir.path() / "m" / "keep", "x");
  auto options = RandomModelOptionsFromFlags(Flags(dir.path() / "m"));
  ASSERT_TRUE(options.ok()) << options.status();
  absl::Status s = WriteRandomModel(*options, dir.path() / "m");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("exists and is not an empty directory"));
  EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"m"});
  EXPECT_EQ(Listing(dir.path() / "m"), std::vector<std::string>{"keep"});
}

TEST(RandomModelTest, FillsAnEmptyOutputDirectory) {
  TempDir dir;
  fs::create_directory(dir.path() / "m");
  auto w = WriteAndLoad(Flags(dir.path() / "m/"));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"m"});
}

TEST(RandomModelTest, RejectsInvalidOptionsWithoutWritingAnything) {
  TempDir dir;
  RandomModelOptions bad;  // an empty config
  absl::Status s = WriteRandomModel(bad, dir.path() / "m");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("invalid model"));

  auto good = RandomModelOptionsFromFlags(Flags(dir.path() / "m"));
  ASSERT_TRUE(good.ok()) << good.status();
  good->shards = 22;
  s = WriteRandomModel(*good, dir.path() / "m");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("shards=22 must be between 1 and"));
  EXPECT_TRUE(Listing(dir.path()).empty());
}

struct BadFlag {
  std::string name;
  std::function<void(RandomModelFlags&)> set;
  std::string fault;
};

// Names the case in test listings instead of dumping its bytes.
void PrintTo(const BadFlag& flag, std::ostream* os) { *os << flag.name; }

class RandomModelBadFlagTest : public ::testing::TestWithParam<BadFlag> {};

TEST_P(RandomModelBadFlagTest, IsInvalidArgumentNamingTheFlag) {
  RandomModelFlags f = Flags("/tmp/unused");
  GetParam().set(f);
  auto options = RandomModelOptionsFromFlags(f);
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(options.status().message(), HasSubstr(GetParam().fault));
}

INSTANTIATE_TEST_SUITE_P(
    AllFlags, RandomModelBadFlagTest,
    ::testing::ValuesIn(std::vector<BadFlag>{
        {"NoOut", [](auto& f) { f.out = ""; }, "--out is required"},
        {"Dtype", [](auto& f) { f.dtype = "f64"; }, "--dtype=f64 must be"},
        {"ZeroShards", [](auto& f) { f.shards = 0; }, "--shards=0 must be"},
        {"TooManyShards", [](auto& f) { f.shards = 1000; },
         "--shards=1000 exceeds the model's 21 tensors"},
        {"ZeroHidden", [](auto& f) { f.hidden_size = 0; },
         "--hidden_size=0 must be at least 1"},
        {"ZeroLayers", [](auto& f) { f.num_layers = 0; }, "--num_layers=0"},
        {"ZeroVocab", [](auto& f) { f.vocab_size = 0; }, "--vocab_size=0"},
        {"KvHeads", [](auto& f) { f.num_kv_heads = 3; },
         "--num_kv_heads=3 must divide --num_heads=4"},
        {"HeadsDivideHidden", [](auto& f) { f.num_heads = 5; },
         "--num_heads=5 must divide --hidden_size=64"},
        {"OddHeadDim", [](auto& f) { f.head_dim = 7; },
         "--head_dim=7 must be even"},
        {"Eps", [](auto& f) { f.rms_norm_eps = 0; }, "--rms_norm_eps=0"},
        {"Theta", [](auto& f) { f.rope_theta = -1; }, "--rope_theta=-1"},
        {"RopeScaling", [](auto& f) { f.rope_scaling = "yarn"; },
         "--rope_scaling=yarn must be none, linear or llama3"},
        {"RopeFactor",
         [](auto& f) {
           f.rope_scaling = "linear";
           f.rope_factor = 0.5;
         },
         "--rope_factor=0.5 must be at least 1"},
        {"Llama3Factors",
         [](auto& f) {
           f.rope_scaling = "llama3";
           f.rope_high_freq_factor = 0.5;
         },
         "must satisfy 0 < low < high"},
        {"Architecture", [](auto& f) { f.architecture = "Bert"; },
         "--architecture=Bert must be"},
        {"BiasOnLlama", [](auto& f) { f.attention_bias = true; },
         "--attention_bias needs --architecture=Qwen2ForCausalLM"},
        {"Bos", [](auto& f) { f.bos_token_id = 256; }, "--bos_token_id=256"},
        {"Eos", [](auto& f) { f.eos_token_id = "2,x"; }, "--eos_token_id=2,x"},
        {"EosRange", [](auto& f) { f.eos_token_id = "999"; },
         "--eos_token_id=999"},
        {"HugeQDim",
         [](auto& f) {
           f.num_heads = 65536;
           f.head_dim = 65536;
         },
         "invalid model: field 'head_dim'"},
    }),
    [](const ::testing::TestParamInfo<BadFlag>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace tandem
