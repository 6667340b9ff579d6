// Runs the built `tandem` binary as a subprocess against a small random
// byte-level model (vocab 258, BOS 256, EOS 257, context 128) written into
// a temporary directory with the default model's tokenizer files.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_files.h"
#include "tests/test_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using testing::CommandOutcome;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using testing::ReadFile;
using testing::RunCommand;
using testing::ShellQuote;
using testing::SourceDir;
using ::testing::StartsWith;
using testing::WriteFile;

fs::path ByteTokenizerFile() {
  return SourceDir() / "engine/testdata/tokenizers/byte/tokenizer.json";
}

class TandemCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::path(::testing::TempDir()) /
                        absl::StrCat("tandem_cli_test_", getpid()));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    ASSERT_TRUE(testing::WriteTestModel(
                    ModelDir(), {.seed = 5, .num_kv_heads = 2, .context = 128})
                    .ok());
  }

  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  static fs::path ModelDir() { return *dir_ / "model"; }

  // Runs tandem with `args`, feeding `input` on stdin.
  static CommandOutcome Tandem(const std::vector<std::string>& args,
                               const std::string& input = "") {
    std::string command = ShellQuote(TANDEM_BINARY);
    for (const std::string& arg : args) {
      absl::StrAppend(&command, " ", ShellQuote(arg));
    }
    return RunCommand(command, *dir_, input);
  }

  static std::vector<std::string> Generate(std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate", "--model", ModelDir().string(),
                                     "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  static std::vector<std::string> Score(std::vector<std::string> extra) {
    std::vector<std::string> args = {"score", "--model", ModelDir().string(),
                                     "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  static fs::path* dir_;
};

fs::path* TandemCliTest::dir_ = nullptr;

// Asserts that `err` is exactly one line.
void ExpectOneLine(const std::string& err) {
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_TRUE(!err.empty() && err.back() == '\n') << err;
}

TEST_F(TandemCliTest, TokenizeRoundTripsThroughATokenizerFile) {
  const std::string text = "H\xc3\xa9llo, world\n";
  CommandOutcome encoded =
      Tandem({"tokenize", "--tokenizer", ByteTokenizerFile().string()}, text);
  ASSERT_EQ(encoded.exit_code, 0) << encoded.err;
  EXPECT_EQ(encoded.out,
            "[72,195,169,108,108,111,44,32,119,111,114,108,100,10]\n");
  CommandOutcome decoded = Tandem(
      {"tokenize", "--tokenizer", ByteTokenizerFile().string(), "--decode"},
      encoded.out);
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(decoded.out, text);
}

TEST_F(TandemCliTest, TokenizeModelDirAddsBosUnlessSpecialTokensAreOff) {
  CommandOutcome with_bos =
      Tandem({"tokenize", "--tokenizer", ModelDir().string(), "--text", "hi"});
  ASSERT_EQ(with_bos.exit_code, 0) << with_bos.err;
  EXPECT_EQ(with_bos.out, "[256,104,105]\n");
  CommandOutcome decoded =
      Tandem({"tokenize", "--tokenizer", ModelDir().string(), "--decode",
              "--no-special-tokens"},
             "[256, 104, 105, 257]");
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(decoded.out, "hi");
}

TEST_F(TandemCliTest, TokenizeRejectsMalformedIds) {
  CommandOutcome run = Tandem(
      {"tokenize", "--tokenizer", ByteTokenizerFile().string(), "--decode"},
      "[72, \"x\"]");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("element 1"));
  ExpectOneLine(run.err);
}

TEST_F(TandemCliTest, UnknownFlagIsAOneLineUsageError) {
  CommandOutcome run = Tandem(Generate({"--bogus-flag=3"}));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("unknown flag --bogus-flag"));
  ExpectOneLine(run.err);
  EXPECT_EQ(run.out, "");
}

TEST_F(TandemCliTest, MalformedFlagValueIsAUsageError) {
  CommandOutcome run = Tandem(Generate({"--max-tokens", "many"}));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("--max-tokens"));
  ExpectOneLine(run.err);
}

TEST_F(TandemCliTest, OutOfRangeSamplingParameterIsAUsageError) {
  CommandOutcome run = Tandem(Generate({"--temperature=-1"}));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("temperature"));
  ExpectOneLine(run.err);
}

TEST_F(TandemCliTest, UnknownSubcommandIsAUsageError) {
  CommandOutcome run = Tandem({"frobnicate"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("unknown subcommand 'frobnicate'"));
  ExpectOneLine(run.err);
}

TEST_F(TandemCliTest, MissingModelDirNamesThePath) {
  const std::string missing = (*dir_ / "no_such_model").string();
  CommandOutcome run =
      Tandem({"generate", "--model", missing, "--prompt", "x"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr(missing));
  EXPECT_THAT(run.err, HasSubstr("does not exist"));
  ExpectOneLine(run.err);
}

TEST_F(TandemCliTest, GenerateWithASeedIsReproducible) {
  const auto args = Generate(
      {"--prompt", "Hi", "--max-tokens", "24", "--seed", "7", "--ignore-eos"});
  CommandOutcome first = Tandem(args);
  CommandOutcome second = Tandem(args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_FALSE(first.out.empty());
  EXPECT_EQ(first.out, second.out);
  EXPECT_THAT(first.err, HasSubstr("completion_tokens=24"));
  EXPECT_THAT(first.err, HasSubstr("finish=length seed=7"));
  CommandOutcome other = Tandem(Generate(
      {"--prompt", "Hi", "--max-tokens", "24", "--seed", "8", "--ignore-eos"}));
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(first.out, other.out);
}

TEST_F(TandemCliTest, EmptyPromptStartsFromBos) {
  CommandOutcome run = Tandem(Generate({"--max-tokens", "3", "--seed", "1"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("prompt_tokens=1 "));
}

TEST_F(TandemCliTest, StopStringCutsTheOutput) {
  const auto greedy = Generate({"--prompt", "Hi", "--max-tokens", "30",
                                "--temperature", "0", "--ignore-eos"});
  CommandOutcome free_run = Tandem(greedy);
  ASSERT_EQ(free_run.exit_code, 0) << free_run.err;
  ASSERT_GE(free_run.out.size(), 10u);
  // A stop string of plain ASCII bytes taken from the output.
  size_t at = 5;
  while (at + 1 < free_run.out.size() &&
         !(free_run.out[at] > 32 && free_run.out[at] < 127 &&
           free_run.out[at] != '\\' && free_run.out[at] != ',')) {
    ++at;
  }
  ASSERT_LT(at + 1, free_run.out.size());
  const std::string stop = free_run.out.substr(at, 1);
  auto args = greedy;
  args.insert(args.end(), {"--stop", stop});
  CommandOutcome stopped = Tandem(args);
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_EQ(stopped.out, free_run.out.substr(0, free_run.out.find(stop)));
  EXPECT_THAT(stopped.err, HasSubstr("finish=stop"));
}

TEST_F(TandemCliTest, LogprobsPrintOneRowPerToken) {
  CommandOutcome run =
      Tandem(Generate({"--prompt", "Hi", "--max-tokens", "3", "--logprobs", "2",
                       "--ignore-eos", "--seed", "3"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines = absl::StrSplit(run.err, '\n');
  // Header (2 lines), 3 rows, the summary, and the empty tail.
  ASSERT_EQ(lines.size(), 7u) << run.err;
  EXPECT_THAT(lines[0], StartsWith("logprobs"));
  for (int i = 2; i < 5; ++i) {
    EXPECT_THAT(lines[i],
                MatchesRegex(absl::StrCat("  +", i - 2,
                                          "  .* -?[0-9]+\\.[0-9]{4}  \\|"
                                          "( .* -?[0-9]+\\.[0-9]{4}){2}")));
  }
}

TEST_F(TandemCliTest, MaxTokensBeyondTheContextIsAUsageError) {
  CommandOutcome run =
      Tandem(Generate({"--prompt", "Hi", "--max-tokens", "500"}));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("max_tokens=500"));
  ExpectOneLine(run.err);
}

TEST_F(TandemCliTest, GenerateHelpListsEveryFlag) {
  CommandOutcome run = Tandem({"generate", "--help"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  for (const char* flag :
       {"--model", "--prompt", "--max-tokens", "--temperature", "--top-k",
        "--top-p", "--min-p", "--repetition-penalty", "--presence-penalty",
        "--frequency-penalty", "--stop=", "--stop-token-ids", "--seed",
        "--logprobs", "--threads"}) {
    EXPECT_THAT(run.out, HasSubstr(flag));
  }
  CommandOutcome top = Tandem({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_THAT(top.out, HasSubstr("generate"));
  EXPECT_THAT(top.out, HasSubstr("score"));
  EXPECT_THAT(top.out, HasSubstr("tokenize"));
}

TEST_F(TandemCliTest, ScorePrintsBitsPerByte) {
  const fs::path file = *dir_ / "text.txt";
  WriteFile(file, "The quick brown fox jumps over the lazy dog.\n");
  CommandOutcome run = Tandem(Score({file.string()}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, MatchesRegex("bits_per_byte=[0-9]+\\.[0-9]{6} "
                                    "documents=1 bytes=45 eos_tokens=1 "
                                    "predicted_tokens=46 total_bits=.*\n"));
  const double bpb = std::strtod(run.out.c_str() + 14, nullptr);
  // A random model is near uniform over 258 tokens: about 8 bits each.
  EXPECT_GT(bpb, 6.0);
  EXPECT_LT(bpb, 10.0);
}

TEST_F(TandemCliTest, ScoreSplitsFortunesIntoDocuments) {
  const fs::path file = *dir_ / "fortunes";
  WriteFile(file, "one\n%\n\ntwo\n\n%\n  \n%\n");
  CommandOutcome run = Tandem(Score({"--fortunes", file.string()}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("documents=2 bytes=6 eos_tokens=2 "
                                 "predicted_tokens=8"));
}

TEST_F(TandemCliTest, ScoreOfAMissingFileIsARuntimeError) {
  CommandOutcome run = Tandem(Score({(*dir_ / "absent.txt").string()}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("absent.txt"));
  ExpectOneLine(run.err);
}

TEST_F(TandemCliTest, ScoreWithoutAFileIsAUsageError) {
  CommandOutcome run = Tandem(Score({}));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("missing FILE"));
  ExpectOneLine(run.err);
}

}  // namespace
}  // namespace tandem
