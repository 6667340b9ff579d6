// Checks the engine on the shipped byte-level models against PyTorch:
// greedy continuations from tools/make_greedy_fixture.py
// (tests/testdata/<model>_greedy.json), through Generate and through the
// `tandem` binary, and the held-out bits per byte that
// tools/train_default_model.py recorded in the model's training.json.
// After retraining a model, regenerate its fixture:
//   /usr/bin/python3 tools/make_greedy_fixture.py --model models/fortune
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/generation.h"
#include "engine/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_files.h"
#include "tools/bits_per_byte.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using testing::CommandOutcome;
using testing::ReadFile;
using testing::RunCommand;
using testing::ShellQuote;
using testing::SourceDir;

nlohmann::json ReadJson(const fs::path& path) {
  return nlohmann::json::parse(ReadFile(path), nullptr,
                               /*allow_exceptions=*/false);
}

// Parameter: the model's name, e.g. "fortune" for models/fortune.
class FortuneModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = ReadJson(SourceDir() / "tests/testdata" /
                        absl::StrCat(GetParam(), "_greedy.json"));
    ASSERT_FALSE(fixture_.is_discarded());
    auto model = Model::Load(ModelDir(), ModelOptions{.threads = 1});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(model).value();
    auto tokenizer = LoadTokenizer(ModelDir());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(tokenizer).value();
  }

  fs::path ModelDir() const {
    return SourceDir() / fixture_.at("model").get<std::string>();
  }

  nlohmann::json fixture_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(FortuneModelTest, GreedyGenerationMatchesPyTorchTokenForToken) {
  ASSERT_GE(fixture_.at("cases").size(), 4u);
  for (const nlohmann::json& c : fixture_.at("cases")) {
    const std::string prompt = c.at("prompt").get<std::string>();
    SCOPED_TRACE(prompt);
    const auto expected = c.at("greedy_ids").get<std::vector<int32_t>>();
    ASSERT_FALSE(expected.empty());
    auto ids = tokenizer_->Encode(prompt);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, c.at("prompt_ids").get<std::vector<int32_t>>());
    GenerationRequest request;
    request.prompt_ids = *ids;
    request.sampling.temperature = 0.0f;
    request.max_tokens = expected.size();
    auto result =
        Generate(*model_, *tokenizer_, request,
                 [](const GeneratedToken&) { return absl::OkStatus(); });
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->tokens, expected);
    EXPECT_EQ(result->text, c.at("text").get<std::string>());
  }
}

TEST_P(FortuneModelTest, TandemGenerateGreedyPrintsThePyTorchText) {
  const nlohmann::json& c = fixture_.at("cases").at(1);
  const std::string text = c.at("text").get<std::string>();
  ASSERT_TRUE(IsValidUtf8(text));
  const fs::path scratch =
      fs::path(::testing::TempDir()) / absl::StrCat("fortune_", getpid());
  fs::create_directories(scratch);
  const std::string command = absl::StrCat(
      ShellQuote(TANDEM_BINARY), " generate --model ",
      ShellQuote(ModelDir().string()),
      " --threads 1 --temperature 0 --max-tokens ", c.at("greedy_ids").size(),
      " --prompt ", ShellQuote(c.at("prompt").get<std::string>()));
  const CommandOutcome run = RunCommand(command, scratch);
  EXPECT_EQ(run.exit_code, 0) << command << "\n" << run.err;
  EXPECT_EQ(run.out, text);
  fs::remove_all(scratch);
}

TEST_P(FortuneModelTest, HeldOutBitsPerByteMatchesTheTrainingFigure) {
  const nlohmann::json training = ReadJson(ModelDir() / "training.json");
  ASSERT_FALSE(training.is_discarded());
  const std::vector<std::string> docs =
      SplitFortunes(ReadFile(SourceDir() / "tests/testdata" /
                             fixture_.at("held_out_file").get<std::string>()));
  ASSERT_EQ(docs.size(), training.at("held_out_documents").get<size_t>());
  auto result =
      ScoreDocuments(*model_, *tokenizer_, docs, {}, [](int64_t, int64_t) {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->predicted_tokens,
            training.at("held_out_predicted_tokens").get<int64_t>());
  EXPECT_EQ(result->windows, result->documents);  // each scored whole
  EXPECT_NEAR(result->bits_per_byte(),
              training.at("held_out_bpb").get<double>(), 0.01);
}

INSTANTIATE_TEST_SUITE_P(DefaultModels, FortuneModelTest,
                         ::testing::Values("fortune"));

}  // namespace
}  // namespace tandem
