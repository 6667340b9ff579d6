// The requests of a serving benchmark (`tandem bench`): prompt and output
// lengths drawn from a distribution or read from a trace, prompts
// synthesized as token ids, and the times at which requests arrive.
//
// Traces use the format of the public Mooncake traces: one JSON object per
// line with `timestamp` (ms since the trace's start), `input_length`,
// `output_length` and `hash_ids`, the ids of the prompt's consecutive
// prefix blocks. Equal ids mean equal blocks, so a synthesized prompt
// repeats the same tokens wherever the trace repeats an id: block i of a
// prompt is BlockTokens(hash_ids[i]) while it is a full block, and the
// rest of the prompt (a partial last block, or blocks the trace gives no
// id for) is random per request.
//
// Every function is deterministic in its arguments (the seeds included)
// and thread-compatible; none does I/O.
#ifndef TANDEM_BENCH_SERVING_WORKLOAD_H_
#define TANDEM_BENCH_SERVING_WORKLOAD_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace tandem::bench {

// A distribution of lengths in tokens, written as "N" (always N),
// "uniform:A:B" (each integer in [A, B] equally likely) or
// "normal:MEAN:SD" (rounded, clipped to at least 1).
struct LengthDistribution {
  enum class Kind { kFixed, kUniform, kNormal };
  Kind kind = Kind::kFixed;
  double a = 1;  // N, A or MEAN
  double b = 0;  // B or SD; unused for kFixed
};

// Parses `spec` (see LengthDistribution). InvalidArgument naming `spec` for
// an unknown kind, a malformed or missing number, N or A below 1, B below
// A, or a negative SD.
absl::StatusOr<LengthDistribution> ParseLengthDistribution(
    absl::string_view spec);

// `distribution` written back in the form ParseLengthDistribution reads.
std::string LengthDistributionName(const LengthDistribution& distribution);

// One draw from `distribution`, at least 1.
int SampleLength(const LengthDistribution& distribution, std::mt19937_64& rng);

// One line of a trace.
struct TraceEntry {
  double timestamp_ms = 0;
  int input_length = 0;
  int output_length = 0;
  std::vector<int64_t> hash_ids;
};

// Parses one trace line. InvalidArgument "line N: ..." naming the field for
// text that is not a JSON object, a missing field, a field of the wrong
// type, a negative timestamp or hash id, or a length below 1 (input) or 0
// (output).
absl::StatusOr<TraceEntry> ParseTraceLine(absl::string_view line,
                                          int line_number);

// Parses a whole trace (lines numbered from 1; blank lines skipped), in
// file order. InvalidArgument as ParseTraceLine for the first bad line, or
// if there is no entry at all.
absl::StatusOr<std::vector<TraceEntry>> ParseTrace(absl::string_view text);

// The token ids of the prefix block `hash_id`: `block_tokens` ids drawn
// from `pool`, the same for the same arguments on every machine.
// REQUIRES: pool is not empty; block_tokens >= 0.
std::vector<int32_t> BlockTokens(int64_t hash_id, int block_tokens,
                                 absl::Span<const int32_t> pool);

// `count` ids drawn from `pool` by a generator seeded with `seed`.
// REQUIRES: pool is not empty; count >= 0.
std::vector<int32_t> RandomTokens(int count, uint64_t seed,
                                  absl::Span<const int32_t> pool);

// A request ready to send.
struct BenchRequest {
  int64_t index = 0;
  std::vector<int32_t> prompt;
  int max_tokens = 1;
  // The lengths the workload asked for, before clipping to the context.
  int wanted_input = 0;
  int wanted_output = 0;
  bool clipped = false;
};

// What every request needs to know about the served model and the run.
struct PromptSpace {
  // Ordinary token ids to build prompts from (no BOS, EOS or other special
  // token). Not empty.
  std::vector<int32_t> pool;
  // The model's context: prompt + max_tokens must fit in it. At least 2.
  int max_context = 0;
  uint64_t seed = 0;
};

// Shrinks `*input` and `*output` so that input + output <= max_context and
// both stay >= 1: the output first, down to what the context leaves after
// the prompt (at least 1), then the prompt. Returns whether anything
// changed. REQUIRES: max_context >= 2; *input >= 1; *output >= 1.
bool ClipToContext(int max_context, int* input, int* output);

// Request `index` with lengths drawn from the distributions by a generator
// seeded from space.seed and `index`; its prompt is random ids.
BenchRequest MakeSyntheticRequest(int64_t index,
                                  const LengthDistribution& input,
                                  const LengthDistribution& output,
                                  const PromptSpace& space);

// How trace lengths map to this run: lengths and the block size are
// multiplied by `scale` (rounded, at least 1).
struct TraceScaling {
  int block_tokens = 512;
  double scale = 1.0;
};

// Request `index` from `entry` (see the file comment), scaled, then clipped
// to the context. An output_length of 0 becomes 1.
BenchRequest MakeTraceRequest(int64_t index, const TraceEntry& entry,
                              const TraceScaling& scaling,
                              const PromptSpace& space);

// When requests arrive, relative to the run's start.
class ArrivalSchedule {
 public:
  // Poisson arrivals at `rate` requests per second (exponential gaps drawn
  // with `seed`); the first arrives after one gap. REQUIRES: rate > 0.
  static ArrivalSchedule Poisson(double rate, uint64_t seed);
  // The entries' timestamps divided by `time_scale` (2 replays twice as
  // fast). REQUIRES: time_scale > 0.
  static ArrivalSchedule Trace(absl::Span<const TraceEntry> entries,
                               double time_scale);

  // The arrival time of the next request; nullopt once a trace is used up.
  std::optional<absl::Duration> Next();

 private:
  ArrivalSchedule() = default;

  double rate_ = 0;
  std::mt19937_64 rng_;
  double now_s_ = 0;
  std::vector<absl::Duration> times_;  // trace arrivals, in order
  size_t next_ = 0;
};

}  // namespace tandem::bench

#endif  // TANDEM_BENCH_SERVING_WORKLOAD_H_
