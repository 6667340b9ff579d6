// `tandem bench` (the built binary) against a real cluster of processes
// over a small random model: a closed-loop run writes a report with the
// documented keys, a trace run reuses shared prefixes through the store,
// and bad flags are one line on stderr with a non-zero exit.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/serving_cluster.h"
#include "tests/test_files.h"
#include "tests/test_model.h"

namespace tandem::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

class BenchClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::path(::testing::TempDir()) /
                        absl::StrCat("bench_cluster_test_", getpid()));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
  }

  static void TearDownTestSuite() {
    cluster_.reset();
    fs::remove_all(*dir_);
    delete dir_;
  }

  // Starts the suite's cluster once, for the tests that need one.
  static void StartCluster() {
    if (cluster_ != nullptr) return;
    const fs::path model = *dir_ / "model";
    ASSERT_TRUE(WriteTestModel(model).ok());
    ServingClusterOptions options;
    options.model_dir = model.string();
    auto cluster = ServingCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
  }

  // Runs `tandem bench` with `args` from the source directory.
  static CommandOutcome Bench(const std::vector<std::string>& args) {
    std::string command =
        absl::StrCat("cd ", ShellQuote(SourceDir().string()), " && ",
                     ShellQuote(TANDEM_BINARY), " bench");
    for (const std::string& arg : args) {
      absl::StrAppend(&command, " ", ShellQuote(arg));
    }
    return RunCommand(command, *dir_);
  }

  static json ReadReport(const fs::path& path) {
    return json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
  }

  static fs::path* dir_;
  static std::unique_ptr<ServingCluster> cluster_;
};

fs::path* BenchClusterTest::dir_ = nullptr;
std::unique_ptr<ServingCluster> BenchClusterTest::cluster_;

void ExpectOrderedPercentiles(const json& distribution, const char* name) {
  SCOPED_TRACE(name);
  ASSERT_TRUE(distribution.is_object());
  if (distribution["count"].get<int>() == 0) return;  // ITL may have none
  EXPECT_LE(distribution["p50"].get<double>(),
            distribution["p90"].get<double>());
  EXPECT_LE(distribution["p90"].get<double>(),
            distribution["p99"].get<double>());
  EXPECT_GE(distribution["p50"].get<double>(), 0);
}

TEST_F(BenchClusterTest, ClosedLoopRunWritesAReportWithEveryRequest) {
  StartCluster();
  ASSERT_NE(cluster_, nullptr);
  const fs::path report_path = *dir_ / "closed.json";
  const fs::path plots = *dir_ / "plots";
  const CommandOutcome run =
      Bench({"--router", cluster_->router_address(), "--concurrency", "2",
             "--num-requests", "8", "--input-len", "uniform:8:40",
             "--output-len", "6", "--seed", "3", "--out", report_path.string(),
             "--plot", plots.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("TTFT"));
  EXPECT_THAT(run.out, HasSubstr("8 ok, 0 failed"));

  const json report = ReadReport(report_path);
  ASSERT_TRUE(report.is_object()) << ReadFile(report_path);
  const json& summary = report["summary"];
  for (const char* key :
       {"requests", "ok", "errors", "clipped", "slo_met", "duration_s",
        "request_throughput", "goodput", "output_token_throughput",
        "total_token_throughput", "prompt_tokens", "cached_tokens",
        "completion_tokens", "requested_output_tokens", "stopped_early",
        "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"}) {
    EXPECT_TRUE(summary.contains(key)) << key;
  }
  EXPECT_EQ(summary["ok"], 8);
  EXPECT_EQ(summary["requests"], 8);
  EXPECT_GT(summary["request_throughput"].get<double>(), 0);
  EXPECT_GT(summary["output_token_throughput"].get<double>(), 0);
  // ignore_eos: every request produced exactly what it asked for.
  EXPECT_EQ(summary["completion_tokens"], 48);
  EXPECT_EQ(summary["stopped_early"], 0);
  for (const char* name : {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"}) {
    ExpectOrderedPercentiles(summary[name], name);
  }
  EXPECT_EQ(summary["ttft_ms"]["count"], 8);
  EXPECT_EQ(summary["tpot_ms"]["count"], 8);
  EXPECT_EQ(summary["e2e_ms"]["count"], 8);
  EXPECT_EQ(report["config"]["mode"], "concurrency");
  EXPECT_EQ(report["config"]["concurrency"], 2);
  ASSERT_EQ(report["requests"].size(), 8u);
  for (const json& request : report["requests"]) {
    EXPECT_EQ(request["status"], "OK");
    EXPECT_EQ(request["generated_tokens"], 6);
    EXPECT_EQ(request["usage_completion_tokens"], 6);
    EXPECT_GT(request["router_ttft_ms"].get<double>(), 0);
    // One gap per reply after the first: the router may carry several
    // tokens in one reply.
    EXPECT_LE(request["itl_ms"].size(), 5u);
    double gaps = 0;
    for (const json& gap : request["itl_ms"]) gaps += gap.get<double>();
    EXPECT_LE(gaps, request["e2e_ms"].get<double>() -
                        request["ttft_ms"].get<double>() + 1e-6);
  }
  if (fs::exists("/usr/lib/python3/dist-packages/matplotlib")) {
    EXPECT_TRUE(fs::exists(plots / "latency_cdf.png")) << run.err;
  }
}

TEST_F(BenchClusterTest, TraceRunReusesSharedPrefixes) {
  StartCluster();
  ASSERT_NE(cluster_, nullptr);
  const fs::path report_path = *dir_ / "trace.json";
  // Scaled by 1/32: 16-token trace blocks, the cluster's KV block size.
  // The sample trace's first two requests share two blocks.
  const CommandOutcome run =
      Bench({"--router", cluster_->router_address(), "--trace",
             "bench/testdata/mooncake_sample.jsonl", "--trace-scale", "0.03125",
             "--concurrency", "1", "--num-requests", "4", "--out",
             report_path.string(), "--plot-script", "/nonexistent/plot.py",
             "--plot", (*dir_ / "no_plots").string()});
  // A failed plot is reported but keeps the report.
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("plotting failed"));
  const json report = ReadReport(report_path);
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["summary"]["ok"], 4);
  EXPECT_GE(report["summary"]["cached_tokens"].get<int>(), 32);
  EXPECT_EQ(report["config"]["mode"], "concurrency");
  EXPECT_EQ(report["config"]["trace_entries"], 40);
}

// Asserts that `err` is exactly one line holding `expected`.
void ExpectOneLineError(const CommandOutcome& run,
                        const std::string& expected) {
  EXPECT_NE(run.exit_code, 0);
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_THAT(run.err, HasSubstr(expected));
}

TEST_F(BenchClusterTest, BadFlagsAreOneLineAndANonZeroExit) {
  const std::string router = "127.0.0.1:1";
  ExpectOneLineError(
      Bench({"--router", router, "--rate", "0", "--num-requests", "3"}),
      "--rate must be a number > 0");
  ExpectOneLineError(
      Bench({"--router", router, "--rate", "-2", "--num-requests", "3"}),
      "--rate must be a number > 0");
  ExpectOneLineError(Bench({"--router", router, "--rate", "2", "--concurrency",
                            "2", "--num-requests", "3"}),
                     "not both");
  ExpectOneLineError(Bench({"--router", router, "--concurrency", "2"}),
                     "--num-requests or --duration");
  ExpectOneLineError(Bench({"--rate", "1", "--num-requests", "3"}),
                     "--router HOST:PORT is required");
  ExpectOneLineError(
      Bench({"--router", router, "--concurrency", "1", "--num-requests", "3",
             "--input-len", "uniform:9:3"}),
      "'uniform:9:3'");
  ExpectOneLineError(Bench({"--router", router, "--trace",
                            (*dir_ / "missing.jsonl").string()}),
                     "missing.jsonl: no such file");
  ExpectOneLineError(Bench({"--router", router, "--frobnicate"}),
                     "unknown flag --frobnicate");
  // Nothing listens on port 1.
  ExpectOneLineError(
      Bench({"--router", router, "--concurrency", "1", "--num-requests", "1"}),
      "router 127.0.0.1:1");
}

TEST_F(BenchClusterTest, MalformedTraceNamesTheLine) {
  const fs::path trace = *dir_ / "bad.jsonl";
  std::ofstream(trace) << "{\"timestamp\": 0, \"input_length\": 4, "
                          "\"output_length\": 1, \"hash_ids\": [0]}\n"
                          "{\"timestamp\": 1, \"input_length\": 4}\n";
  ExpectOneLineError(
      Bench({"--router", "127.0.0.1:1", "--trace", trace.string()}),
      "line 2: field 'output_length' is missing");
}

TEST_F(BenchClusterTest, HelpListsFlagsWithoutTheirPrefix) {
  const CommandOutcome run = Bench({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.out, HasSubstr("--trace-time-scale=1"));
  EXPECT_THAT(run.out, HasSubstr("--router=\"\""));
  EXPECT_THAT(run.out, ::testing::Not(HasSubstr("bench-")));
}

}  // namespace
}  // namespace tandem::testing
