#include "bench/serving_workload.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace tandem::bench {
namespace {

using json = nlohmann::json;

// SplitMix64: a portable generator, so that a hash id's block is the same
// tokens with every standard library.
uint64_t NextSplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::vector<int32_t> DrawTokens(int count, uint64_t state,
                                absl::Span<const int32_t> pool) {
  std::vector<int32_t> out(count);
  for (int32_t& id : out) id = pool[NextSplitMix(state) % pool.size()];
  return out;
}

absl::Status BadSpec(absl::string_view spec, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("length distribution '", spec, "': ", why,
                   " (expected N, uniform:A:B or normal:MEAN:SD)"));
}

absl::StatusOr<double> SpecNumber(absl::string_view spec,
                                  absl::string_view part,
                                  absl::string_view name) {
  double value = 0;
  if (!absl::SimpleAtod(part, &value) || !std::isfinite(value)) {
    return BadSpec(spec, absl::StrCat(name, " '", part, "' is not a number"));
  }
  return value;
}

absl::Status BadField(int line_number, absl::string_view field,
                      absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("line ", line_number, ": field '", field, "' ", why));
}

// The integer field `name` of `object`, at least `min`.
absl::StatusOr<int64_t> IntField(const json& object, const char* name,
                                 int64_t min, int line_number) {
  auto it = object.find(name);
  if (it == object.end()) return BadField(line_number, name, "is missing");
  if (!it->is_number_integer()) {
    return BadField(line_number, name, "is not an integer");
  }
  const int64_t value = it->is_number_unsigned()
                            ? static_cast<int64_t>(std::min<uint64_t>(
                                  it->get<uint64_t>(), INT64_MAX))
                            : it->get<int64_t>();
  if (value < min) {
    return BadField(line_number, name,
                    absl::StrCat("is ", value, ", below ", min));
  }
  return value;
}

// `value` as an int, at most `limit`.
absl::StatusOr<int> LengthField(const json& object, const char* name,
                                int64_t min, int line_number) {
  TANDEM_ASSIGN_OR_RETURN(int64_t value,
                          IntField(object, name, min, line_number));
  constexpr int64_t kLimit = 1 << 30;
  if (value > kLimit) {
    return BadField(line_number, name,
                    absl::StrCat("is ", value, ", above ", kLimit));
  }
  return static_cast<int>(value);
}

int Scaled(int length, double scale) {
  return std::max(1, static_cast<int>(std::lround(length * scale)));
}

}  // namespace

absl::StatusOr<LengthDistribution> ParseLengthDistribution(
    absl::string_view spec) {
  std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  LengthDistribution out;
  if (parts.size() == 1) {
    TANDEM_ASSIGN_OR_RETURN(out.a, SpecNumber(spec, parts[0], "N"));
    if (out.a < 1 || out.a != std::floor(out.a)) {
      return BadSpec(spec, "N must be a whole number >= 1");
    }
    return out;
  }
  if (parts.size() != 3) return BadSpec(spec, "wrong number of parts");
  if (parts[0] == "uniform") {
    out.kind = LengthDistribution::Kind::kUniform;
    TANDEM_ASSIGN_OR_RETURN(out.a, SpecNumber(spec, parts[1], "A"));
    TANDEM_ASSIGN_OR_RETURN(out.b, SpecNumber(spec, parts[2], "B"));
    if (out.a < 1 || out.a != std::floor(out.a) || out.b != std::floor(out.b)) {
      return BadSpec(spec, "A and B must be whole numbers, A >= 1");
    }
    if (out.b < out.a) return BadSpec(spec, "B is below A");
    return out;
  }
  if (parts[0] == "normal") {
    out.kind = LengthDistribution::Kind::kNormal;
    TANDEM_ASSIGN_OR_RETURN(out.a, SpecNumber(spec, parts[1], "MEAN"));
    TANDEM_ASSIGN_OR_RETURN(out.b, SpecNumber(spec, parts[2], "SD"));
    if (out.b < 0) return BadSpec(spec, "SD is negative");
    return out;
  }
  return BadSpec(spec, absl::StrCat("unknown kind '", parts[0], "'"));
}

std::string LengthDistributionName(const LengthDistribution& distribution) {
  switch (distribution.kind) {
    case LengthDistribution::Kind::kFixed:
      return absl::StrCat(distribution.a);
    case LengthDistribution::Kind::kUniform:
      return absl::StrCat("uniform:", distribution.a, ":", distribution.b);
    case LengthDistribution::Kind::kNormal:
      return absl::StrCat("normal:", distribution.a, ":", distribution.b);
  }
  return "";
}

int SampleLength(const LengthDistribution& distribution, std::mt19937_64& rng) {
  double value = distribution.a;
  switch (distribution.kind) {
    case LengthDistribution::Kind::kFixed:
      break;
    case LengthDistribution::Kind::kUniform:
      value = std::uniform_int_distribution<int64_t>(
          static_cast<int64_t>(distribution.a),
          static_cast<int64_t>(distribution.b))(rng);
      break;
    case LengthDistribution::Kind::kNormal:
      value = std::round(std::normal_distribution<double>(distribution.a,
                                                          distribution.b)(rng));
      break;
  }
  return static_cast<int>(std::clamp(value, 1.0, double{1 << 30}));
}

absl::StatusOr<TraceEntry> ParseTraceLine(absl::string_view line,
                                          int line_number) {
  const json object = json::parse(line.begin(), line.end(), nullptr,
                                  /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line_number, ": not a JSON object"));
  }
  TraceEntry entry;
  auto timestamp = object.find("timestamp");
  if (timestamp == object.end()) {
    return BadField(line_number, "timestamp", "is missing");
  }
  if (!timestamp->is_number()) {
    return BadField(line_number, "timestamp", "is not a number");
  }
  entry.timestamp_ms = timestamp->get<double>();
  if (!(entry.timestamp_ms >= 0) || !std::isfinite(entry.timestamp_ms)) {
    return BadField(line_number, "timestamp", "is negative or not finite");
  }
  TANDEM_ASSIGN_OR_RETURN(entry.input_length,
                          LengthField(object, "input_length", 1, line_number));
  TANDEM_ASSIGN_OR_RETURN(entry.output_length,
                          LengthField(object, "output_length", 0, line_number));
  auto ids = object.find("hash_ids");
  if (ids == object.end())
    return BadField(line_number, "hash_ids", "is missing");
  if (!ids->is_array()) {
    return BadField(line_number, "hash_ids", "is not an array");
  }
  for (size_t i = 0; i < ids->size(); ++i) {
    const json& id = (*ids)[i];
    const bool in_range =
        id.is_number_unsigned()
            ? id.get<uint64_t>() <= uint64_t{INT64_MAX}
            : id.is_number_integer() && id.get<int64_t>() >= 0;
    if (!in_range) {
      return BadField(
          line_number, "hash_ids",
          absl::StrCat("element ", i, " is not a non-negative integer"));
    }
    entry.hash_ids.push_back(id.get<int64_t>());
  }
  return entry;
}

absl::StatusOr<std::vector<TraceEntry>> ParseTrace(absl::string_view text) {
  std::vector<TraceEntry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    TANDEM_ASSIGN_OR_RETURN(TraceEntry entry,
                            ParseTraceLine(line, line_number));
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) return absl::InvalidArgumentError("the trace is empty");
  return entries;
}

std::vector<int32_t> BlockTokens(int64_t hash_id, int block_tokens,
                                 absl::Span<const int32_t> pool) {
  // Blocks live in their own stream of the generator, apart from the
  // per-request random tokens.
  return DrawTokens(block_tokens,
                    static_cast<uint64_t>(hash_id) * 0x2545f4914f6cdd1dULL ^
                        0x5bd1e9955bd1e995ULL,
                    pool);
}

std::vector<int32_t> RandomTokens(int count, uint64_t seed,
                                  absl::Span<const int32_t> pool) {
  uint64_t state = seed;
  return DrawTokens(count, NextSplitMix(state), pool);
}

bool ClipToContext(int max_context, int* input, int* output) {
  if (*input + *output <= max_context) return false;
  *output = std::max(1, max_context - *input);
  *input = std::min(*input, max_context - *output);
  return true;
}

BenchRequest MakeSyntheticRequest(int64_t index,
                                  const LengthDistribution& input,
                                  const LengthDistribution& output,
                                  const PromptSpace& space) {
  std::mt19937_64 rng(space.seed * 1000003 + static_cast<uint64_t>(index));
  BenchRequest request;
  request.index = index;
  request.wanted_input = SampleLength(input, rng);
  request.wanted_output = SampleLength(output, rng);
  int prompt = request.wanted_input;
  request.max_tokens = request.wanted_output;
  request.clipped =
      ClipToContext(space.max_context, &prompt, &request.max_tokens);
  request.prompt = RandomTokens(prompt, rng(), space.pool);
  return request;
}

BenchRequest MakeTraceRequest(int64_t index, const TraceEntry& entry,
                              const TraceScaling& scaling,
                              const PromptSpace& space) {
  BenchRequest request;
  request.index = index;
  request.wanted_input = Scaled(entry.input_length, scaling.scale);
  request.wanted_output =
      Scaled(std::max(entry.output_length, 1), scaling.scale);
  int prompt = request.wanted_input;
  request.max_tokens = request.wanted_output;
  request.clipped =
      ClipToContext(space.max_context, &prompt, &request.max_tokens);
  const int block = Scaled(scaling.block_tokens, scaling.scale);
  const size_t full_blocks =
      std::min<size_t>(entry.hash_ids.size(), prompt / block);
  for (size_t i = 0; i < full_blocks; ++i) {
    std::vector<int32_t> tokens =
        BlockTokens(entry.hash_ids[i], block, space.pool);
    request.prompt.insert(request.prompt.end(), tokens.begin(), tokens.end());
  }
  const int rest = prompt - static_cast<int>(request.prompt.size());
  std::vector<int32_t> tail = RandomTokens(
      rest, space.seed * 1000003 + static_cast<uint64_t>(index), space.pool);
  request.prompt.insert(request.prompt.end(), tail.begin(), tail.end());
  return request;
}

ArrivalSchedule ArrivalSchedule::Poisson(double rate, uint64_t seed) {
  ArrivalSchedule schedule;
  schedule.rate_ = rate;
  schedule.rng_.seed(seed);
  return schedule;
}

ArrivalSchedule ArrivalSchedule::Trace(absl::Span<const TraceEntry> entries,
                                       double time_scale) {
  ArrivalSchedule schedule;
  for (const TraceEntry& entry : entries) {
    schedule.times_.push_back(
        absl::Milliseconds(entry.timestamp_ms / time_scale));
  }
  return schedule;
}

std::optional<absl::Duration> ArrivalSchedule::Next() {
  if (rate_ > 0) {
    now_s_ += std::exponential_distribution<double>(rate_)(rng_);
    return absl::Seconds(now_s_);
  }
  if (next_ >= times_.size()) return std::nullopt;
  return times_[next_++];
}

}  // namespace tandem::bench
