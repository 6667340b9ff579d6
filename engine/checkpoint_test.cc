#include "engine/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/test_checkpoint.h"
#include "engine/weights_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::Materialize;
using ::tandem::testing::PlanTensors;
using ::tandem::testing::TempDir;
using ::tandem::testing::TinyConfig;
using ::tandem::testing::WriteFile;
using ::tandem::testing::WriteModel;
using ::testing::AllOf;
using ::testing::HasSubstr;

absl::Status LoadStatus(const fs::path& dir) {
  return OpenCheckpointFiles(dir).status();
}

TEST(CheckpointTest, OpensASingleFile) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  WriteModel(dir.path(), c, PlanTensors(c, false));
  auto files = OpenCheckpointFiles(dir.path());
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(files->files.size(), 1u);
  EXPECT_EQ(files->source, (dir.path() / "model.safetensors").string());
  EXPECT_EQ(files->tensors.size(), PlanTensors(c, false).size());
  EXPECT_TRUE(files->tensors.contains("model.norm.weight"));
}

TEST(CheckpointTest, OpensShardsInFileNameOrder) {
  TempDir dir;
  const ModelConfig c = TinyConfig();
  WriteModel(dir.path(), c, PlanTensors(c, false), 3);
  auto files = OpenCheckpointFiles(dir.path());
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->files.size(), 3u);
  EXPECT_EQ(files->files[0]->path().filename(),
            "model-00001-of-00003.safetensors");
  EXPECT_EQ(files->files[2]->path().filename(),
            "model-00003-of-00003.safetensors");
  EXPECT_EQ(files->tensors.size(), PlanTensors(c, false).size());
  EXPECT_EQ(files->tensors.at("model.layers.0.input_layernorm.weight")
                .file->path()
                .filename(),
            "model-00002-of-00003.safetensors");
}

TEST(CheckpointTest, RotaryInverseFrequenciesAreIgnored) {
  EXPECT_TRUE(IsIgnoredTensor("model.layers.3.self_attn.rotary_emb.inv_freq"));
  EXPECT_TRUE(IsIgnoredTensor("model.rotary_emb.inv_freq"));
  EXPECT_FALSE(IsIgnoredTensor("model.norm.weight"));
}

TEST(CheckpointTest, ReadFileBytesOfMissingFileIsNotFound) {
  TempDir dir;
  EXPECT_EQ(ReadFileBytes(dir.path() / "nope").status().code(),
            absl::StatusCode::kNotFound);
}

class CheckpointIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteModel(dir_.path(), c_, PlanTensors(c_, false), 2);
    index_ = nlohmann::json::parse(std::ifstream(IndexPath()));
  }
  fs::path IndexPath() const {
    return dir_.path() / "model.safetensors.index.json";
  }
  void RewriteIndex() { WriteFile(IndexPath(), index_.dump()); }

  TempDir dir_;
  ModelConfig c_ = TinyConfig();
  nlohmann::json index_;
};

TEST_F(CheckpointIndexTest, MissingShardIsNotFound) {
  fs::remove(dir_.path() / "model-00002-of-00002.safetensors");
  absl::Status s = LoadStatus(dir_.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("model-00002-of-00002.safetensors"));
}

TEST_F(CheckpointIndexTest, IndexThatIsNotJsonIsInvalidArgument) {
  WriteFile(IndexPath(), "{\"weight_map\": ");
  absl::Status s = LoadStatus(dir_.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr(IndexPath().string()),
                                 HasSubstr("not valid JSON")));
}

TEST_F(CheckpointIndexTest, IndexWithoutWeightMapIsInvalidArgument) {
  index_.erase("weight_map");
  RewriteIndex();
  absl::Status s = LoadStatus(dir_.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'weight_map' is missing"));
}

TEST_F(CheckpointIndexTest, ShardNameOutsideTheDirectoryIsInvalidArgument) {
  index_["weight_map"]["model.norm.weight"] = "../model.safetensors";
  RewriteIndex();
  absl::Status s = LoadStatus(dir_.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("'model.norm.weight'"),
                                 HasSubstr("is not a plain file name")));
}

TEST_F(CheckpointIndexTest, IndexListingTheWrongShardIsInvalidArgument) {
  // layer 0's input_layernorm (tensor 1) lives in shard 2.
  index_["weight_map"]["model.layers.0.input_layernorm.weight"] =
      "model-00001-of-00002.safetensors";
  RewriteIndex();
  absl::Status s = LoadStatus(dir_.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("model-00002-of-00002.safetensors: holds "
                              "tensor 'model.layers.0.input_layernorm."
                              "weight'"),
                    HasSubstr("does not list for this file")));
}

TEST_F(CheckpointIndexTest, IndexListingAnAbsentTensorIsInvalidArgument) {
  index_["weight_map"]["model.extra.weight"] =
      "model-00001-of-00002.safetensors";
  RewriteIndex();
  absl::Status s = LoadStatus(dir_.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr(IndexPath().string()),
                    HasSubstr("lists tensor 'model.extra.weight' in "
                              "model-00001-of-00002.safetensors, which does "
                              "not contain it")));
}

TEST_F(CheckpointIndexTest, TensorInTwoShardsIsInvalidArgument) {
  const ModelConfig c = TinyConfig();
  auto plan = PlanTensors(c, false);
  // Shard 1 of a 2-way split holds the even tensors; add tensor 1 to it.
  std::vector<SafetensorsTensorBytes> tensors;
  for (size_t i = 0; i < plan.size(); i += 2) {
    tensors.push_back(Materialize(plan[i]));
  }
  tensors.push_back(Materialize(plan[1]));
  WriteFile(dir_.path() / "model-00001-of-00002.safetensors",
            EncodeSafetensors(tensors));
  absl::Status s = LoadStatus(dir_.path());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'model.layers.0.input_layernorm.weight' "
                                     "is also in"));
}

}  // namespace
}  // namespace tandem
