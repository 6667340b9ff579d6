#include "bench/serving_workload.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::bench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<int32_t>& Pool() {
  static const std::vector<int32_t>* pool =
      new std::vector<int32_t>{10, 11, 12, 40, 41, 42, 43, 97, 98, 99};
  return *pool;
}

PromptSpace Space(int max_context = 4096) {
  return PromptSpace{Pool(), max_context, /*seed=*/7};
}

TEST(LengthDistributionTest, ParsesEveryForm) {
  auto fixed = ParseLengthDistribution("128");
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->kind, LengthDistribution::Kind::kFixed);
  EXPECT_EQ(fixed->a, 128);
  auto uniform = ParseLengthDistribution("uniform:4:9");
  ASSERT_TRUE(uniform.ok()) << uniform.status();
  EXPECT_EQ(uniform->kind, LengthDistribution::Kind::kUniform);
  EXPECT_EQ(LengthDistributionName(*uniform), "uniform:4:9");
  auto normal = ParseLengthDistribution("normal:100:2.5");
  ASSERT_TRUE(normal.ok()) << normal.status();
  EXPECT_EQ(normal->kind, LengthDistribution::Kind::kNormal);
  EXPECT_EQ(normal->b, 2.5);
}

TEST(LengthDistributionTest, RejectsMalformedSpecsNamingThem) {
  for (const char* spec :
       {"", "0", "-3", "1.5", "abc", "uniform:5", "uniform:9:4", "uniform:0:4",
        "normal:10:-1", "normal:x:1", "poisson:3:4", "uniform:1:2:3"}) {
    auto parsed = ParseLengthDistribution(spec);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << spec;
    EXPECT_THAT(parsed.status().message(),
                HasSubstr(absl::StrCat("'", spec, "'")));
  }
}

TEST(LengthDistributionTest, SamplesStayInRange) {
  std::mt19937_64 rng(1);
  const LengthDistribution fixed = *ParseLengthDistribution("17");
  const LengthDistribution uniform = *ParseLengthDistribution("uniform:3:6");
  const LengthDistribution wide = *ParseLengthDistribution("normal:2:50");
  std::vector<int> seen(7, 0);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(SampleLength(fixed, rng), 17);
    const int u = SampleLength(uniform, rng);
    ASSERT_TRUE(u >= 3 && u <= 6) << u;
    ++seen[u];
    EXPECT_GE(SampleLength(wide, rng), 1);  // clipped at 1
  }
  for (int u = 3; u <= 6; ++u) EXPECT_GT(seen[u], 300) << u;
}

TEST(LengthDistributionTest, NormalMeanIsRoughlyRight) {
  std::mt19937_64 rng(2);
  const LengthDistribution normal = *ParseLengthDistribution("normal:200:20");
  double sum = 0;
  for (int i = 0; i < 4000; ++i) sum += SampleLength(normal, rng);
  EXPECT_NEAR(sum / 4000, 200, 2);
}

TEST(TraceTest, ParsesMooncakeLines) {
  auto trace = ParseTrace(
      "{\"timestamp\": 0, \"input_length\": 1030, \"output_length\": 7, "
      "\"hash_ids\": [0, 1, 2]}\n"
      "\n"
      "{\"timestamp\": 12.5, \"input_length\": 600, \"output_length\": 0, "
      "\"hash_ids\": [0, 5]}\n");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->size(), 2u);
  EXPECT_EQ((*trace)[0].input_length, 1030);
  EXPECT_THAT((*trace)[0].hash_ids, ElementsAre(0, 1, 2));
  EXPECT_EQ((*trace)[1].timestamp_ms, 12.5);
  EXPECT_EQ((*trace)[1].output_length, 0);
}

TEST(TraceTest, MalformedLinesNameTheLineAndField) {
  const std::string good =
      "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, "
      "\"hash_ids\": [1]}\n";
  struct Case {
    std::string line;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"not json", "line 2: not a JSON object"},
      {"[1, 2]", "line 2: not a JSON object"},
      {"{\"input_length\": 5, \"output_length\": 1, \"hash_ids\": []}",
       "line 2: field 'timestamp' is missing"},
      {"{\"timestamp\": \"x\", \"input_length\": 5, \"output_length\": 1, "
       "\"hash_ids\": []}",
       "line 2: field 'timestamp' is not a number"},
      {"{\"timestamp\": 1, \"input_length\": 0, \"output_length\": 1, "
       "\"hash_ids\": []}",
       "line 2: field 'input_length' is 0, below 1"},
      {"{\"timestamp\": 1, \"input_length\": 2.5, \"output_length\": 1, "
       "\"hash_ids\": []}",
       "line 2: field 'input_length' is not an integer"},
      {"{\"timestamp\": 1, \"input_length\": 3, \"hash_ids\": []}",
       "line 2: field 'output_length' is missing"},
      {"{\"timestamp\": 1, \"input_length\": 3, \"output_length\": 1, "
       "\"hash_ids\": 4}",
       "line 2: field 'hash_ids' is not an array"},
      {"{\"timestamp\": 1, \"input_length\": 3, \"output_length\": 1, "
       "\"hash_ids\": [1, -2]}",
       "line 2: field 'hash_ids' element 1 is not a non-negative integer"},
  };
  for (const Case& c : cases) {
    auto trace = ParseTrace(good + c.line + "\n");
    EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument)
        << c.line;
    EXPECT_THAT(trace.status().message(), HasSubstr(c.expected)) << c.line;
  }
  EXPECT_EQ(ParseTrace("\n\n").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PromptTest, BlockTokensAreDeterministicAndFromThePool) {
  const std::vector<int32_t> a = BlockTokens(42, 64, Pool());
  EXPECT_EQ(a, BlockTokens(42, 64, Pool()));
  EXPECT_NE(a, BlockTokens(43, 64, Pool()));
  for (int32_t id : a) {
    EXPECT_TRUE(std::find(Pool().begin(), Pool().end(), id) != Pool().end());
  }
  // Fixed values (an independent SplitMix64 computation), so that a change
  // of the mapping is noticed: reports of different builds must send the
  // same prompts.
  EXPECT_THAT(BlockTokens(0, 4, Pool()), ElementsAre(99, 10, 99, 43));
  EXPECT_THAT(BlockTokens(5, 6, Pool()), ElementsAre(97, 40, 97, 41, 99, 41));
}

TEST(PromptTest, EqualHashIdsGiveEqualBlocksAcrossRequests) {
  TraceEntry first{0, 50, 4, {7, 8, 9, 10}};
  TraceEntry second{0, 45, 4, {7, 8, 11}};
  const TraceScaling scaling{.block_tokens = 16, .scale = 1.0};
  const BenchRequest a = MakeTraceRequest(0, first, scaling, Space());
  const BenchRequest b = MakeTraceRequest(1, second, scaling, Space());
  ASSERT_EQ(a.prompt.size(), 50u);
  ASSERT_EQ(b.prompt.size(), 45u);
  // Blocks 7 and 8 are shared; block 2 differs (9 against 11).
  EXPECT_TRUE(
      std::equal(a.prompt.begin(), a.prompt.begin() + 32, b.prompt.begin()));
  EXPECT_EQ(std::vector<int32_t>(a.prompt.begin(), a.prompt.begin() + 16),
            BlockTokens(7, 16, Pool()));
  // b's last 13 tokens are its own random tail, not block 9.
  EXPECT_NE(std::vector<int32_t>(a.prompt.begin() + 32, a.prompt.begin() + 45),
            std::vector<int32_t>(b.prompt.begin() + 32, b.prompt.end()));
  EXPECT_EQ(a.max_tokens, 4);
  EXPECT_FALSE(a.clipped);
}

TEST(PromptTest, TraceScaleShrinksLengthsAndBlocks) {
  TraceEntry entry{0, 1024, 100, {1, 2}};
  const TraceScaling scaling{.block_tokens = 512, .scale = 0.125};
  const BenchRequest r = MakeTraceRequest(0, entry, scaling, Space());
  ASSERT_EQ(r.prompt.size(), 128u);
  EXPECT_EQ(r.max_tokens, 13);  // 12.5 rounds away from zero
  EXPECT_EQ(std::vector<int32_t>(r.prompt.begin(), r.prompt.begin() + 64),
            BlockTokens(1, 64, Pool()));
  EXPECT_EQ(std::vector<int32_t>(r.prompt.begin() + 64, r.prompt.end()),
            BlockTokens(2, 64, Pool()));
}

TEST(PromptTest, ClipsToTheContextOutputFirst) {
  int input = 100, output = 50;
  EXPECT_FALSE(ClipToContext(150, &input, &output));
  EXPECT_TRUE(ClipToContext(120, &input, &output));
  EXPECT_EQ(input, 100);
  EXPECT_EQ(output, 20);
  input = 300;
  output = 10;
  EXPECT_TRUE(ClipToContext(128, &input, &output));
  EXPECT_EQ(input, 127);
  EXPECT_EQ(output, 1);

  TraceEntry entry{0, 600, 64, {1, 2}};
  const BenchRequest r = MakeTraceRequest(
      3, entry, {.block_tokens = 512, .scale = 1.0}, Space(512));
  EXPECT_TRUE(r.clipped);
  EXPECT_EQ(r.prompt.size() + r.max_tokens, 512u);
  EXPECT_EQ(r.wanted_input, 600);
  EXPECT_EQ(r.wanted_output, 64);
}

TEST(PromptTest, SyntheticRequestsAreReproducible) {
  const LengthDistribution input = *ParseLengthDistribution("uniform:5:50");
  const LengthDistribution output = *ParseLengthDistribution("normal:9:3");
  const BenchRequest a = MakeSyntheticRequest(4, input, output, Space());
  const BenchRequest b = MakeSyntheticRequest(4, input, output, Space());
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.max_tokens, b.max_tokens);
  EXPECT_EQ(static_cast<int>(a.prompt.size()), a.wanted_input);
  EXPECT_NE(a.prompt, MakeSyntheticRequest(5, input, output, Space()).prompt);
}

TEST(ArrivalScheduleTest, PoissonGapsAverageTheRate) {
  ArrivalSchedule schedule = ArrivalSchedule::Poisson(20, 3);
  absl::Duration last;
  for (int i = 0; i < 4000; ++i) {
    std::optional<absl::Duration> next = schedule.Next();
    ASSERT_TRUE(next.has_value());
    ASSERT_GE(*next, last);
    last = *next;
  }
  EXPECT_NEAR(absl::ToDoubleSeconds(last), 200, 10);  // 4000 / 20 per s
}

TEST(ArrivalScheduleTest, TraceTimestampsAreScaledAndEnd) {
  const std::vector<TraceEntry> entries = {{0, 1, 1, {}}, {1000, 1, 1, {}}};
  ArrivalSchedule schedule = ArrivalSchedule::Trace(entries, 4.0);
  EXPECT_EQ(schedule.Next(), absl::ZeroDuration());
  EXPECT_EQ(schedule.Next(), absl::Milliseconds(250));
  EXPECT_EQ(schedule.Next(), std::nullopt);
}

}  // namespace
}  // namespace tandem::bench
