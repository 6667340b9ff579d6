// `tandem generate`: local generation from a model directory, streamed to
// stdout piece by piece. See docs/cli.md.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/generation.h"
#include "engine/status_macros.h"
#include "tools/cli_args.h"
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "tools/remote_generate.h"
#include "tools/token_display.h"

ABSL_FLAG(std::string, router, "",
          "host:port of a running cluster's router: generate through it "
          "instead of loading --model here (--model and --threads are "
          "ignored)");
ABSL_FLAG(std::string, prompt, "",
          "text to continue; empty starts from BOS alone (for the default "
          "model: a fresh fortune)");
ABSL_FLAG(int, max_tokens, 128,
          "most tokens to generate, an ending EOS included; the prompt plus "
          "this must fit in the model's context");
ABSL_FLAG(float, temperature, 0.8f, "sampling temperature; 0 is greedy");
ABSL_FLAG(int, top_k, -1, "keep the k most probable tokens; -1 or 0: off");
ABSL_FLAG(float, top_p, 1.0f, "nucleus sampling mass in (0, 1]; 1: off");
ABSL_FLAG(float, min_p, 0.0f,
          "keep tokens with p >= min_p * p_max, in [0, 1]; 0: off");
ABSL_FLAG(float, repetition_penalty, 1.0f,
          "divide positive (multiply negative) logits of prompt and "
          "generated tokens by this; 1: off");
ABSL_FLAG(float, presence_penalty, 0.0f,
          "subtracted once from each generated token's logit, in [-2, 2]");
ABSL_FLAG(float, frequency_penalty, 0.0f,
          "subtracted per occurrence of each generated token, in [-2, 2]");
ABSL_FLAG(std::string, stop, "",
          "stop string; repeatable, and each value is also split at commas. "
          "Escapes: \\n newline, \\t tab, \\, comma, \\\\ backslash. The stop "
          "string is not printed");
ABSL_FLAG(std::string, stop_token_ids, "",
          "comma-separated token ids that end generation besides EOS");
ABSL_FLAG(bool, ignore_eos, false, "keep generating past EOS");
ABSL_FLAG(int64_t, seed, -1,
          "random seed; -1 picks one (printed in the summary line)");
ABSL_FLAG(int, logprobs, 0,
          "after the text, print each token's logprob and this many top "
          "alternatives (0-20) to stderr");

namespace tandem {
namespace {

constexpr std::string_view kCommand = "generate";

const FlagScope& Scope() {
  static const FlagScope* scope = new FlagScope{
      {"generate_command.cc", kModelFlagsFile, kRouterFlagsFile}, {"stop"}};
  return *scope;
}

constexpr char kUsage[] =
    "Usage: tandem generate [--model DIR | --router HOST:PORT]\n"
    "                       [--api-key KEY] [--prompt TEXT] [flags]\n\n"
    "Streams a continuation of --prompt to stdout, then one summary line to\n"
    "stderr (tokens, tokens/s, finish reason, seed).\n\nFlags:\n";

// Splits one --stop value at unescaped commas, resolving escapes.
absl::Status AppendStopStrings(std::string_view value,
                               std::vector<std::string>* out) {
  std::string current;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == ',') {
      out->push_back(std::move(current));
      current.clear();
      continue;
    }
    if (c == '\\') {
      if (++i == value.size()) {
        return absl::InvalidArgumentError("--stop ends in a lone backslash");
      }
      switch (value[i]) {
        case 'n':
          c = '\n';
          break;
        case 't':
          c = '\t';
          break;
        case ',':
          c = ',';
          break;
        case '\\':
          c = '\\';
          break;
        default:
          return absl::InvalidArgumentError(absl::StrCat(
              "--stop has unknown escape \\", std::string(value.substr(i, 1)),
              " (known: \\n \\t \\, \\\\)"));
      }
    }
    current.push_back(c);
  }
  out->push_back(std::move(current));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> StopStrings(const ParsedArgs& args) {
  std::vector<std::string> stops;
  auto it = args.repeated.find("stop");
  if (it == args.repeated.end()) return stops;
  for (const std::string& value : it->second) {
    TANDEM_RETURN_IF_ERROR(AppendStopStrings(value, &stops));
  }
  for (const std::string& stop : stops) {
    if (stop.empty()) {
      return absl::InvalidArgumentError(
          "--stop holds an empty stop string (a stray comma?)");
    }
  }
  return stops;
}

absl::StatusOr<std::vector<int32_t>> StopTokenIds() {
  std::vector<int32_t> ids;
  const std::string text = absl::GetFlag(FLAGS_stop_token_ids);
  if (text.empty()) return ids;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int32_t id;
    if (!absl::SimpleAtoi(part, &id) || id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--stop-token-ids: '", part, "' is not a token id"));
    }
    ids.push_back(id);
  }
  return ids;
}

uint64_t PickSeed() {
  const int64_t flag = absl::GetFlag(FLAGS_seed);
  if (flag >= 0) return flag;
  std::random_device device;
  return ((uint64_t{device()} << 32) | device()) >> 1;  // fits an int64
}

// The request from the flags, without the prompt ids.
absl::StatusOr<GenerationRequest> RequestFromFlags(const ParsedArgs& args) {
  GenerationRequest request;
  SamplingParams& s = request.sampling;
  s.temperature = absl::GetFlag(FLAGS_temperature);
  s.top_k = absl::GetFlag(FLAGS_top_k);
  s.top_p = absl::GetFlag(FLAGS_top_p);
  s.min_p = absl::GetFlag(FLAGS_min_p);
  s.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  s.presence_penalty = absl::GetFlag(FLAGS_presence_penalty);
  s.frequency_penalty = absl::GetFlag(FLAGS_frequency_penalty);
  s.num_logprobs = absl::GetFlag(FLAGS_logprobs);
  if (absl::GetFlag(FLAGS_seed) < -1) {
    return absl::InvalidArgumentError("--seed must be >= 0 (or -1: random)");
  }
  s.seed = PickSeed();
  if (s.num_logprobs < 0 || s.num_logprobs > kMaxLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--logprobs must be in [0, ", kMaxLogprobs, "], got ", s.num_logprobs));
  }
  TANDEM_RETURN_IF_ERROR(ValidateSamplingParams(s));
  request.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (request.max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-tokens must be at least 1, got ", request.max_tokens));
  }
  TANDEM_RETURN_IF_ERROR(CheckThreadsFlag(absl::GetFlag(FLAGS_threads)));
  TANDEM_ASSIGN_OR_RETURN(request.stop, StopStrings(args));
  TANDEM_ASSIGN_OR_RETURN(request.stop_token_ids, StopTokenIds());
  request.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
  return request;
}

void PrintSummary(const GenerationResult& result, uint64_t seed) {
  const double rate =
      result.decode_seconds > 0
          ? (result.completion_tokens - 1) / result.decode_seconds
          : 0.0;
  std::fprintf(stderr,
               "prompt_tokens=%d completion_tokens=%d tokens_per_s=%.1f "
               "prefill_ms=%.1f finish=%s seed=%llu\n",
               result.prompt_tokens, result.completion_tokens, rate,
               result.prefill_seconds * 1e3,
               std::string(FinishReasonName(result.finish_reason)).c_str(),
               static_cast<unsigned long long>(seed));
}

int Generate(const ParsedArgs& args) {
  absl::StatusOr<GenerationRequest> request = RequestFromFlags(args);
  if (!request.ok()) {
    return ReportError(kCommand, request.status(), kExitUsageError);
  }
  if (const std::string router = absl::GetFlag(FLAGS_router); !router.empty()) {
    return GenerateThroughRouter(router, RouterApiKey(),
                                 absl::GetFlag(FLAGS_prompt), *request);
  }
  absl::StatusOr<LoadedModel> loaded =
      LoadModelDir(absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_threads));
  if (!loaded.ok()) {
    return ReportError(kCommand, loaded.status(), kExitRuntimeError);
  }
  const Tokenizer& tokenizer = *loaded->tokenizer;
  absl::StatusOr<std::vector<int32_t>> ids =
      tokenizer.Encode(absl::GetFlag(FLAGS_prompt));
  if (!ids.ok()) return ReportError(kCommand, ids.status(), kExitUsageError);
  request->prompt_ids = *std::move(ids);
  absl::Status valid =
      ValidateGenerationRequest(loaded->model->config(), tokenizer, *request);
  if (!valid.ok()) return ReportError(kCommand, valid, kExitUsageError);

  std::vector<GeneratedToken> tokens;  // kept for the logprobs table
  bool ends_in_newline = true;
  absl::StatusOr<GenerationResult> result = tandem::Generate(
      *loaded->model, tokenizer, *request, [&](const GeneratedToken& token) {
        if (request->sampling.num_logprobs > 0) tokens.push_back(token);
        if (!token.text.empty()) ends_in_newline = token.text.back() == '\n';
        return WriteStdout(token.text);
      });
  if (!result.ok()) {
    return ReportError(kCommand, result.status(), kExitRuntimeError);
  }
  if (!ends_in_newline && isatty(STDOUT_FILENO))
    WriteStdout("\n").IgnoreError();
  if (request->sampling.num_logprobs > 0) {
    std::fputs(LogprobTable(tokenizer, tokens).c_str(), stderr);
  }
  PrintSummary(*result, request->sampling.seed);
  return 0;
}

}  // namespace

int RunGenerateCommand(absl::Span<char* const> args) {
  int exit_code = 0;
  std::optional<ParsedArgs> parsed =
      ParseCommandArgs(args, Scope(), kCommand, kUsage, &exit_code);
  if (!parsed.has_value()) return exit_code;
  if (!parsed->positional.empty()) {
    return ReportError(kCommand,
                       absl::InvalidArgumentError(absl::StrCat(
                           "unexpected argument '", parsed->positional[0],
                           "' (pass the prompt with --prompt)")),
                       kExitUsageError);
  }
  return Generate(*parsed);
}

}  // namespace tandem
