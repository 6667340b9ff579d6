#include "engine/model_config.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/weights_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// A Llama 3.1-style config with every field Tandem reads.
Json FullLlamaConfig() {
  return Json::parse(R"({
    "architectures": ["LlamaForCausalLM"],
    "hidden_act": "silu",
    "vocab_size": 1000,
    "hidden_size": 256,
    "intermediate_size": 704,
    "num_hidden_layers": 3,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
    "tie_word_embeddings": true,
    "attention_bias": false,
    "max_position_embeddings": 131072,
    "bos_token_id": 998,
    "eos_token_id": [997, 999],
    "torch_dtype": "bfloat16"
  })");
}

// The fewest fields a valid config needs.
Json MinimalConfig() {
  return Json::parse(R"({
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4
  })");
}

absl::StatusOr<ModelConfig> Parse(const Json& json) {
  return ParseModelConfig(json.dump(), "dir/config.json");
}

TEST(ModelConfigTest, ParsesEveryField) {
  auto c = Parse(FullLlamaConfig());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->vocab_size, 1000);
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->intermediate_size, 704);
  EXPECT_EQ(c->num_layers, 3);
  EXPECT_EQ(c->num_heads, 8);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(c->q_dim(), 256);
  EXPECT_EQ(c->kv_dim(), 64);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_EQ(c->rope_theta, 500000.0f);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c->rope_scaling.factor, 8.0f);
  EXPECT_EQ(c->rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(c->rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->max_position_embeddings, 131072);
  EXPECT_EQ(c->bos_token_id, 998);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(997, 999));
}

TEST(ModelConfigTest, AppliesDefaultsForAbsentFields) {
  auto c = Parse(MinimalConfig());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->rms_norm_eps, 1e-6f);
  EXPECT_EQ(c->rope_theta, 10000.0f);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->max_position_embeddings, 2048);
  EXPECT_EQ(c->bos_token_id, -1);
  EXPECT_TRUE(c->eos_token_ids.empty());
}

TEST(ModelConfigTest, NullMeansAbsent) {
  Json j = MinimalConfig();
  j["head_dim"] = nullptr;
  j["rope_scaling"] = nullptr;
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_EQ(c->bos_token_id, -1);
  EXPECT_TRUE(c->eos_token_ids.empty());
}

TEST(ModelConfigTest, ExplicitHeadDimNeedNotDivideHidden) {
  Json j = MinimalConfig();
  j["architectures"] = {"MistralForCausalLM"};
  j["hidden_size"] = 60;
  j["head_dim"] = 32;
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "MistralForCausalLM");
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(c->q_dim(), 128);
}

TEST(ModelConfigTest, Qwen2HasAttentionBias) {
  Json j = MinimalConfig();
  j["architectures"] = {"Qwen2ForCausalLM"};
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->attention_bias);
}

TEST(ModelConfigTest, ModelTypeStandsInForArchitectures) {
  Json j = MinimalConfig();
  j.erase("architectures");
  j["model_type"] = "qwen2";
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "Qwen2ForCausalLM");
}

TEST(ModelConfigTest, SingleEosTokenId) {
  Json j = MinimalConfig();
  j["eos_token_id"] = 7;
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->eos_token_ids, ElementsAre(7));
}

TEST(ModelConfigTest, LinearRopeScalingWithEitherKey) {
  for (const char* key : {"type", "rope_type"}) {
    Json j = MinimalConfig();
    j["rope_scaling"] = {{key, "linear"}, {"factor", 2.0}};
    auto c = Parse(j);
    ASSERT_TRUE(c.ok()) << key << ": " << c.status();
    EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLinear);
    EXPECT_EQ(c->rope_scaling.factor, 2.0f);
  }
}

TEST(ModelConfigTest, AgreeingTypeAndRopeTypeAreAccepted) {
  Json j = MinimalConfig();
  j["rope_scaling"] = {
      {"type", "linear"}, {"rope_type", "linear"}, {"factor", 4}};
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.factor, 4.0f);
}

TEST(ModelConfigTest, DefaultRopeTypeMeansNoScaling) {
  Json j = MinimalConfig();
  j["rope_scaling"] = {{"rope_type", "default"}};
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kNone);
}

TEST(ModelConfigTest, JsonRoundTripGivesEqualConfig) {
  for (Json j : {FullLlamaConfig(), MinimalConfig()}) {
    auto c = Parse(j);
    ASSERT_TRUE(c.ok()) << c.status();
    auto again = ParseModelConfig(ModelConfigToJson(*c), "round trip");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, *c);
  }
  Json linear = MinimalConfig();
  linear["rope_scaling"] = {{"type", "linear"}, {"factor", 3.5}};
  auto c = Parse(linear);
  ASSERT_TRUE(c.ok()) << c.status();
  auto again = ParseModelConfig(ModelConfigToJson(*c), "round trip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *c);
}

TEST(ModelConfigTest, LoadModelConfigReadsFile) {
  testing::TempDir dir;
  testing::WriteFile(dir.path() / "config.json", MinimalConfig().dump());
  auto c = LoadModelConfig(dir.path() / "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 64);
}

TEST(ModelConfigTest, LoadModelConfigMissingFileIsNotFound) {
  testing::TempDir dir;
  auto c = LoadModelConfig(dir.path() / "config.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("config.json"));
}

TEST(ModelConfigTest, LoadModelConfigNamesFileInErrors) {
  testing::TempDir dir;
  testing::WriteFile(dir.path() / "config.json", "{");
  auto c = LoadModelConfig(dir.path() / "config.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(),
              HasSubstr((dir.path() / "config.json").string()));
}

// A bad config: a JSON merge patch on the minimal config (null deletes a
// key) and a phrase the error must contain.
struct BadCase {
  std::string name;
  std::string patch;
  std::string fault;
};

std::vector<BadCase> BadCases() {
  const std::string kLlama3 =
      R"("rope_type":"llama3","factor":8,"low_freq_factor":1,)"
      R"("high_freq_factor":4,"original_max_position_embeddings":8192)";
  return {
      {"NoArchitecture", R"({"architectures":null})",
       "field 'architectures' is missing"},
      {"EmptyArchitectures", R"({"architectures":[]})",
       "field 'architectures' must be a non-empty list"},
      {"UnsupportedArchitecture", R"({"architectures":["GPT2LMHeadModel"]})",
       "unsupported architecture 'GPT2LMHeadModel'"},
      {"UnsupportedModelType", R"({"architectures":null,"model_type":"gpt2"})",
       "field 'model_type' names unsupported architecture 'gpt2'"},
      {"NoVocabSize", R"({"vocab_size":null})", "'vocab_size' is missing"},
      {"NoHiddenSize", R"({"hidden_size":null})", "'hidden_size' is missing"},
      {"NoIntermediateSize", R"({"intermediate_size":null})",
       "'intermediate_size' is missing"},
      {"NoLayers", R"({"num_hidden_layers":null})",
       "'num_hidden_layers' is missing"},
      {"NoHeads", R"({"num_attention_heads":null})",
       "'num_attention_heads' is missing"},
      {"ZeroHidden", R"({"hidden_size":0})",
       "'hidden_size' must be between 1 and 16777216, got 0"},
      {"NegativeIntermediate", R"({"intermediate_size":-5})",
       "'intermediate_size' must be between 1 and"},
      {"ZeroLayers", R"({"num_hidden_layers":0})", "'num_hidden_layers' must"},
      {"ZeroVocab", R"({"vocab_size":0})", "'vocab_size' must"},
      {"HugeVocab", R"({"vocab_size":99999999999999999999})",
       "'vocab_size' must be an integer"},
      {"FractionalHidden", R"({"hidden_size":64.5})",
       "'hidden_size' must be an integer, got 64.5"},
      {"StringHidden", R"({"hidden_size":"64"})",
       "'hidden_size' must be an integer"},
      {"ZeroKvHeads", R"({"num_key_value_heads":0})",
       "'num_key_value_heads' must be between 1"},
      {"KvHeadsDoNotDivide", R"({"num_key_value_heads":3})",
       "'num_key_value_heads' (3) must divide num_attention_heads (4)"},
      {"HeadsDoNotDivideHidden", R"({"num_attention_heads":5})",
       "(5) must divide hidden_size (64)"},
      {"OddHeadDim", R"({"head_dim":15})", "'head_dim' must be even"},
      {"ZeroHeadDim", R"({"head_dim":0})", "'head_dim' must be between 1"},
      {"HugeQDim", R"({"num_attention_heads":65536,"head_dim":65536})",
       "'head_dim' times num_attention_heads must be at most"},
      {"ZeroEps", R"({"rms_norm_eps":0})", "'rms_norm_eps' must be > 0"},
      {"StringEps", R"({"rms_norm_eps":"1e-5"})",
       "'rms_norm_eps' must be a number"},
      {"NegativeTheta", R"({"rope_theta":-1})", "'rope_theta' must be > 0"},
      {"HugeTheta", R"({"rope_theta":1e300})", "'rope_theta' must be > 0"},
      {"ZeroMaxPositions", R"({"max_position_embeddings":0})",
       "'max_position_embeddings' must be between 1"},
      {"TieNotBool", R"({"tie_word_embeddings":"yes"})",
       "'tie_word_embeddings' must be true or false"},
      {"LlamaAttentionBias", R"({"attention_bias":true})",
       "'attention_bias' is true, which for LlamaForCausalLM also means an "
       "o_proj bias"},
      {"GeluActivation", R"({"hidden_act":"gelu"})",
       "unsupported activation \"gelu\""},
      {"BosOutsideVocab", R"({"bos_token_id":100})",
       "'bos_token_id' must be between -1 and 99, got 100"},
      {"EosOutsideVocab", R"({"eos_token_id":[1,100]})",
       "'eos_token_id' has token id 100 outside the vocabulary"},
      {"NegativeEos", R"({"eos_token_id":-1})",
       "'eos_token_id' has token id -1"},
      {"EosNotInteger", R"({"eos_token_id":"2"})",
       "'eos_token_id' must be an integer"},
      {"RopeScalingNotObject", R"({"rope_scaling":"linear"})",
       "'rope_scaling' must be an object or null"},
      {"RopeScalingNoType", R"({"rope_scaling":{"factor":2}})",
       "'rope_scaling.rope_type' is missing"},
      {"RopeScalingTypesDisagree",
       R"({"rope_scaling":{"type":"linear","rope_type":"llama3","factor":2}})",
       "'rope_scaling.rope_type' must be a string that agrees with 'type'"},
      {"RopeScalingYarn", R"({"rope_scaling":{"type":"yarn","factor":4}})",
       "unsupported rope scaling 'yarn'"},
      {"RopeScalingDynamic",
       R"({"rope_scaling":{"type":"dynamic","factor":4}})",
       "unsupported rope scaling 'dynamic'"},
      {"LinearNoFactor", R"({"rope_scaling":{"type":"linear"}})",
       "'rope_scaling.factor' is missing"},
      {"LinearFactorBelowOne",
       R"({"rope_scaling":{"type":"linear","factor":0.5}})",
       "'rope_scaling.factor' must be >= 1"},
      {"Llama3NoLowFreq",
       R"({"rope_scaling":{"rope_type":"llama3","factor":8,)"
       R"("high_freq_factor":4,"original_max_position_embeddings":8192}})",
       "'rope_scaling.low_freq_factor' is missing"},
      {"Llama3NoOriginalMax",
       R"({"rope_scaling":{"rope_type":"llama3","factor":8,)"
       R"("low_freq_factor":1,"high_freq_factor":4}})",
       "'rope_scaling.original_max_position_embeddings' is missing"},
      {"Llama3HighNotAboveLow",
       "{\"rope_scaling\":{" + kLlama3 + ",\"high_freq_factor\":1}}",
       "'rope_scaling.high_freq_factor' must be > low_freq_factor"},
      {"Llama3ZeroLowFreq",
       "{\"rope_scaling\":{" + kLlama3 + ",\"low_freq_factor\":0}}",
       "'rope_scaling.low_freq_factor' must be > 0"},
      {"Llama3ZeroOriginalMax",
       "{\"rope_scaling\":{" + kLlama3 +
           ",\"original_max_position_embeddings\":0}}",
       "'rope_scaling.original_max_position_embeddings' must be between 1"},
  };
}

class ModelConfigBadValueTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ModelConfigBadValueTest, ReturnsInvalidArgumentNamingFileAndField) {
  const BadCase& bad = GetParam();
  Json j = MinimalConfig();
  j.merge_patch(Json::parse(bad.patch));
  auto c = Parse(j);
  ASSERT_FALSE(c.ok()) << "accepted " << j.dump();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(),
              AllOf(HasSubstr("dir/config.json: "), HasSubstr(bad.fault)));
}

INSTANTIATE_TEST_SUITE_P(AllFields, ModelConfigBadValueTest,
                         ::testing::ValuesIn(BadCases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           return info.param.name;
                         });

TEST(ModelConfigTest, RejectsTextThatIsNotJson) {
  auto c = ParseModelConfig("{\"vocab_size\": ", "dir/config.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(),
              HasSubstr("dir/config.json: not valid JSON"));
}

TEST(ModelConfigTest, RejectsTopLevelThatIsNotAnObject) {
  auto c = ParseModelConfig("[1, 2]", "dir/config.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("must be a JSON object"));
}

}  // namespace
}  // namespace tandem
