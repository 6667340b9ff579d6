#include "engine/model_weights.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/safetensors_writer.h"
#include "engine/test_checkpoint.h"
#include "engine/weights_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::RawSafetensors;
using ::tandem::testing::TempDir;
using ::tandem::testing::WriteFile;
using ::testing::AllOf;
using ::testing::HasSubstr;

using ::tandem::testing::ExpectedValue;
using ::tandem::testing::NumElements;
using ::tandem::testing::PlanTensors;
using ::tandem::testing::TensorPlan;
using ::tandem::testing::TinyConfig;
using ::tandem::testing::WriteModel;

// Checks that every element of `data` is ExpectedValue(id, i).
void ExpectValues(const float* data, int64_t n, int id) {
  ASSERT_NE(data, nullptr);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(data[i], ExpectedValue(id, i)) << "id " << id << " at " << i;
  }
}

// The address ranges at which `path` is mapped into this process.
std::vector<std::pair<uintptr_t, uintptr_t>> MappingsOf(const fs::path& path) {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const std::string wanted = fs::canonical(path).string();
  while (std::getline(maps, line)) {
    if (!line.ends_with(" " + wanted)) continue;
    uintptr_t begin = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    uintptr_t end = std::stoull(line.substr(line.find('-') + 1), nullptr, 16);
    ranges.push_back({begin, end});
  }
  return ranges;
}

bool IsInside(const void* p,
              const std::vector<std::pair<uintptr_t, uintptr_t>>& ranges) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (auto [begin, end] : ranges) {
    if (a >= begin && a < end) return true;
  }
  return false;
}

// All pointers of a loaded model, each with its tensor id in PlanTensors.
std::vector<std::pair<const float*, int>> Pointers(const ModelWeights& w) {
  const ModelConfig& c = w.config();
  std::vector<std::pair<const float*, int>> out = {{w.embed_tokens(), 0}};
  int id = 1;
  for (const LayerWeights& l : w.layers()) {
    for (const float* p : {l.attn_norm, l.q_proj, l.k_proj, l.v_proj}) {
      out.push_back({p, id++});
    }
    if (c.attention_bias) {
      for (const float* p : {l.q_bias, l.k_bias, l.v_bias}) {
        out.push_back({p, id++});
      }
    }
    for (const float* p :
         {l.o_proj, l.mlp_norm, l.gate_proj, l.up_proj, l.down_proj}) {
      out.push_back({p, id++});
    }
  }
  out.push_back({w.final_norm(), id++});
  if (!c.tie_word_embeddings) out.push_back({w.lm_head(), id++});
  return out;
}

void ExpectAllValues(const ModelWeights& w,
                     const std::vector<TensorPlan>& plan) {
  auto pointers = Pointers(w);
  ASSERT_EQ(pointers.size(), plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    ExpectValues(pointers[i].first, NumElements(plan[i].entry), plan[i].id);
  }
}

TEST(ModelWeightsTest, LoadsF32InPlaceFromTheMapping) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  const auto plan = PlanTensors(c, false);
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->config(), c);
  EXPECT_EQ((*w)->layers().size(), 2u);
  ExpectAllValues(**w, plan);
  const auto mapped = MappingsOf(dir.path() / "model.safetensors");
  ASSERT_FALSE(mapped.empty());
  for (auto [p, id] : Pointers(**w)) {
    EXPECT_TRUE(IsInside(p, mapped)) << "tensor " << id << " was copied";
  }
  EXPECT_EQ((*w)->layers()[0].q_bias, nullptr);
}

TEST(ModelWeightsTest, ConvertsF16AndBF16ExactlyAndUnmapsTheFile) {
  for (SafetensorsDtype dtype :
       {SafetensorsDtype::kF16, SafetensorsDtype::kBF16}) {
    TempDir dir;
    const ModelConfig c = TinyConfig();
    auto plan = PlanTensors(c, false);
    for (TensorPlan& t : plan) t.entry.dtype = dtype;
    WriteModel(dir.path(), c, plan);
    auto w = ModelWeights::Load(dir.path());
    ASSERT_TRUE(w.ok()) << w.status();
    ExpectAllValues(**w, plan);
    // Nothing points into the file, so it is no longer mapped.
    EXPECT_TRUE(MappingsOf(dir.path() / "model.safetensors").empty());
  }
}

TEST(ModelWeightsTest, CopiesMisalignedF32Tensors) {
  TempDir dir;
  ModelConfig c = TinyConfig();
  c.hidden_size = 5;  // odd: a BF16 norm of 5 elements misaligns what follows
  auto plan = PlanTensors(c, false);
  plan[1].entry.dtype = SafetensorsDtype::kBF16;  // layer 0 input_layernorm
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  ASSERT_TRUE(w.ok()) << w.status();
  ExpectAllValues(**w, plan);
  const float* q_proj = (*w)->layers()[0].q_proj;  // right after the norm
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q_proj) % alignof(float), 0u);
  const auto mapped = MappingsOf(dir.path() / "model.safetensors");
  EXPECT_FALSE(IsInside(q_proj, mapped));
  EXPECT_TRUE(IsInside((*w)->embed_tokens(), mapped));
}

TEST(ModelWeightsTest, LoadsShardsListedInIndex) {
  TempDir single, sharded;
  const ModelConfig c = TinyConfig();
  const auto plan = PlanTensors(c, false);
  WriteModel(single.path(), c, plan);
  WriteModel(sharded.path(), c, plan, 3);
  auto w = ModelWeights::Load(sharded.path());
  ASSERT_TRUE(w.ok()) << w.status();
  ExpectAllValues(**w, plan);
  for (int s = 1; s <= 3; ++s) {
    EXPECT_FALSE(
        MappingsOf(sharded.path() /
                   absl::StrCat("model-0000", s, "-of-00003.safetensors"))
            .empty());
  }
  auto one = ModelWeights::Load(single.path());
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_NE((*one)->fingerprint(), (*w)->fingerprint());
}

TEST(ModelWeightsTest, TiedEmbeddingsShareTheEmbeddingTable) {
  TempDir dir;
  ModelConfig c = TinyConfig();
  c.tie_word_embeddings = true;
  const auto plan = PlanTensors(c, false);
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->lm_head(), (*w)->embed_tokens());
  ExpectAllValues(**w, plan);
}

TEST(ModelWeightsTest, TiedEmbeddingsAcceptAnEqualLmHead) {
  TempDir dir;
  ModelConfig c = TinyConfig();
  c.tie_word_embeddings = true;
  auto plan = PlanTensors(c, false);
  plan.push_back(
      {{"lm_head.weight", SafetensorsDtype::kBF16, plan[0].entry.shape},
       plan[0].id});  // same values as the embeddings
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->lm_head(), (*w)->embed_tokens());
}

TEST(ModelWeightsTest, TiedEmbeddingsRejectADifferentLmHead) {
  TempDir dir;
  ModelConfig c = TinyConfig();
  c.tie_word_embeddings = true;
  auto plan = PlanTensors(c, false);
  plan.push_back(
      {{"lm_head.weight", SafetensorsDtype::kF32, plan[0].entry.shape}, 99});
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(w.status().message(),
              AllOf(HasSubstr("model.safetensors: tensor 'lm_head.weight'"),
                    HasSubstr("differs from 'model.embed_tokens.weight'")));
}

TEST(ModelWeightsTest, Qwen2BiasTensorsAreLoaded) {
  TempDir dir;
  ModelConfig c = TinyConfig();
  c.architecture = "Qwen2ForCausalLM";
  c.attention_bias = true;
  const auto plan = PlanTensors(c, true);
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE((*w)->config().attention_bias);
  EXPECT_NE((*w)->layers()[1].v_bias, nullptr);
  ExpectAllValues(**w, plan);
}

TEST(ModelWeightsTest, Qwen2WithoutBiasTensorsHasNoBias) {
  TempDir dir;
  ModelConfig c = TinyConfig();
  c.architecture = "Qwen2ForCausalLM";
  const auto plan = PlanTensors(c, false);
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_FALSE((*w)->config().attention_bias);
  EXPECT_EQ((*w)->layers()[0].q_bias, nullptr);
  ExpectAllValues(**w, plan);
}

TEST(ModelWeightsTest, Qwen2BiasMustBeInEveryLayer) {
  TempDir dir;
  ModelConfig c = TinyConfig();
  c.architecture = "Qwen2ForCausalLM";
  auto plan = PlanTensors(c, true);
  std::erase_if(plan, [](const TensorPlan& t) {
    return t.entry.name == "model.layers.1.self_attn.k_proj.bias";
  });
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      w.status().message(),
      HasSubstr("missing tensor 'model.layers.1.self_attn.k_proj.bias'"));
}

TEST(ModelWeightsTest, IgnoresRotaryInverseFrequencies) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  auto plan = PlanTensors(c, false);
  plan.push_back({{"model.layers.0.self_attn.rotary_emb.inv_freq",
                   SafetensorsDtype::kF32,
                   {2}},
                  500});
  WriteModel(dir.path(), c, plan);
  auto w = ModelWeights::Load(dir.path());
  ASSERT_TRUE(w.ok()) << w.status();
}

TEST(ModelWeightsTest, FingerprintIsStableAndCoversConfigAndWeights) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  auto plan = PlanTensors(c, false);
  WriteModel(dir.path(), c, plan);
  // Loads the directory and drops the weights (and their mappings), so that
  // the files can be rewritten safely.
  auto fingerprint = [&]() -> Fingerprint {
    auto w = ModelWeights::Load(dir.path());
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? (*w)->fingerprint() : Fingerprint{};
  };
  const Fingerprint first = fingerprint();
  EXPECT_NE(first, Fingerprint{});
  EXPECT_EQ(fingerprint(), first);

  WriteFile(dir.path() / "config.json", ModelConfigToJson(c) + " ");
  const Fingerprint config_changed = fingerprint();
  EXPECT_NE(config_changed, first);

  plan[3].id = 42;  // one tensor's values change
  WriteModel(dir.path(), c, plan);
  EXPECT_NE(fingerprint(), first);
  EXPECT_NE(fingerprint(), config_changed);
}

// --- Faults in the model directory. ---

absl::Status LoadStatus(const fs::path& dir) {
  return ModelWeights::Load(dir).status();
}

TEST(ModelWeightsTest, MissingTensorIsInvalidArgument) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  auto plan = PlanTensors(c, false);
  std::erase_if(plan, [](const TensorPlan& t) {
    return t.entry.name == "model.layers.1.mlp.up_proj.weight";
  });
  WriteModel(dir.path(), c, plan);
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr((dir.path() / "model.safetensors").string()),
                    HasSubstr("missing tensor "
                              "'model.layers.1.mlp.up_proj.weight'")));
}

TEST(ModelWeightsTest, MissingLmHeadWhenUntiedIsInvalidArgument) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  auto plan = PlanTensors(c, false);
  plan.pop_back();
  WriteModel(dir.path(), c, plan);
  EXPECT_THAT(LoadStatus(dir.path()).message(),
              HasSubstr("missing tensor 'lm_head.weight'"));
}

TEST(ModelWeightsTest, UnexpectedTensorIsInvalidArgument) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  auto plan = PlanTensors(c, false);
  plan.push_back(
      {{"model.layers.2.mlp.up_proj.weight", SafetensorsDtype::kF32, {12, 8}},
       77});
  WriteModel(dir.path(), c, plan);
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("model.safetensors: tensor "
                              "'model.layers.2.mlp.up_proj.weight'"),
                    HasSubstr("is unexpected")));
}

TEST(ModelWeightsTest, BiasTensorsInALlamaAreUnexpected) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  WriteModel(dir.path(), c, PlanTensors(c, true));
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("_proj.bias'"), HasSubstr("is unexpected")));
}

TEST(ModelWeightsTest, WrongShapeIsInvalidArgument) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  auto plan = PlanTensors(c, false);
  plan[2].entry.shape = {4, 8};  // layer 0 q_proj should be [8, 8]
  WriteModel(dir.path(), c, plan);
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("model.safetensors: tensor "
                              "'model.layers.0.self_attn.q_proj.weight'"),
                    HasSubstr("has shape [4, 8], expected [8, 8]")));
}

TEST(ModelWeightsTest, UnconvertibleDtypeIsInvalidArgument) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  auto plan = PlanTensors(c, false);
  plan[0].entry.dtype = SafetensorsDtype::kI32;
  WriteModel(dir.path(), c, plan);
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("'model.embed_tokens.weight'"),
                    HasSubstr("has dtype I32; expected F32, F16 or BF16")));
}

TEST(ModelWeightsTest, MissingConfigIsNotFound) {
  TempDir dir;
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("config.json"));
}

TEST(ModelWeightsTest, MissingWeightsIsNotFound) {
  TempDir dir;
  WriteFile(dir.path() / "config.json", ModelConfigToJson(TinyConfig()));
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("neither model.safetensors nor "
                                     "model.safetensors.index.json exists"));
}

TEST(ModelWeightsTest, BadConfigIsInvalidArgumentNamingIt) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  WriteModel(dir.path(), c, PlanTensors(c, false));
  WriteFile(dir.path() / "config.json", R"({"architectures": ["Bert"]})");
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr((dir.path() / "config.json").string()),
                    HasSubstr("unsupported architecture 'Bert'")));
}

TEST(ModelWeightsTest, MalformedWeightsFileIsInvalidArgumentNamingIt) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  WriteModel(dir.path(), c, PlanTensors(c, false));
  WriteFile(dir.path() / "model.safetensors", RawSafetensors("{]", ""));
  absl::Status s = LoadStatus(dir.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr((dir.path() / "model.safetensors").string()),
                    HasSubstr("header is not valid JSON")));
}

}  // namespace
}  // namespace tandem
