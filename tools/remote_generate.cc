#include "tools/remote_generate.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "router/router_client.h"
#include "tools/cli_common.h"
#include "tools/token_display.h"

ABSL_FLAG(std::string, api_key, "",
          "with --router: the API key of a router started with --api_key; "
          "empty: $TANDEM_API_KEY if set");

namespace tandem {
namespace {

constexpr std::string_view kCommand = "generate";

// A token as the router reported it: its text when given, else its id.
std::string DisplayRemoteToken(const v1::TokenLogprob& token) {
  if (token.text().empty()) return absl::StrCat("<id ", token.token_id(), ">");
  return QuoteBytes(token.text());
}

// The logprobs table of local generation, from the router's replies.
std::string RemoteLogprobTable(const std::vector<v1::Logprobs>& tokens) {
  std::string out =
      "logprobs (natural log, the model's distribution):\n"
      "  index  id      token         logprob  | top alternatives\n";
  for (size_t i = 0; i < tokens.size(); ++i) {
    const v1::TokenLogprob& chosen = tokens[i].chosen();
    absl::StrAppendFormat(&out, "  %5d  %-6d  %-12s  %8.4f  |", i,
                          chosen.token_id(), DisplayRemoteToken(chosen),
                          chosen.logprob());
    for (const v1::TokenLogprob& alt : tokens[i].top()) {
      absl::StrAppendFormat(&out, " %s %.4f", DisplayRemoteToken(alt),
                            alt.logprob());
    }
    out.push_back('\n');
  }
  return out;
}

const char* FinishName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    default:
      return "none";
  }
}

void PrintSummary(const v1::GenerateResponse& last, absl::Duration decode) {
  const v1::Usage& usage = last.usage();
  const double seconds = absl::ToDoubleSeconds(decode);
  const double rate =
      seconds > 0 ? (usage.completion_tokens() - 1) / seconds : 0.0;
  std::fprintf(stderr,
               "prompt_tokens=%d cached_tokens=%d completion_tokens=%d "
               "tokens_per_s=%.1f ttft_ms=%.1f finish=%s seed=%llu\n",
               usage.prompt_tokens(), usage.cached_tokens(),
               usage.completion_tokens(), rate, usage.time_to_first_token_ms(),
               FinishName(last.finish_reason()),
               static_cast<unsigned long long>(usage.seed()));
}

}  // namespace

std::string RouterApiKey() {
  std::string key = absl::GetFlag(FLAGS_api_key);
  if (key.empty()) {
    if (const char* env = std::getenv("TANDEM_API_KEY")) key = env;
  }
  return key;
}

absl::StatusOr<v1::GenerateRequest> ToRouterRequest(
    const std::string& prompt, const GenerationRequest& request) {
  v1::GenerateRequest out;
  out.set_text(prompt);
  const SamplingParams& s = request.sampling;
  v1::SamplingParams* sampling = out.mutable_sampling();
  sampling->set_temperature(s.temperature);
  sampling->set_top_p(s.top_p);
  sampling->set_top_k(s.top_k);
  sampling->set_min_p(s.min_p);
  sampling->set_repetition_penalty(s.repetition_penalty);
  sampling->set_presence_penalty(s.presence_penalty);
  sampling->set_frequency_penalty(s.frequency_penalty);
  sampling->set_seed(s.seed);
  out.set_max_tokens(request.max_tokens);
  out.set_ignore_eos(request.ignore_eos);
  for (const std::string& stop : request.stop) out.add_stop(stop);
  out.mutable_stop_token_ids()->Add(request.stop_token_ids.begin(),
                                    request.stop_token_ids.end());
  // Local generation prints logprobs only when asked for alternatives.
  out.set_logprobs(s.num_logprobs > 0 ? s.num_logprobs : -1);
  return out;
}

int GenerateThroughRouter(const std::string& router, const std::string& api_key,
                          const std::string& prompt,
                          const GenerationRequest& request) {
  absl::StatusOr<v1::GenerateRequest> remote = ToRouterRequest(prompt, request);
  if (!remote.ok()) {
    return ReportError(kCommand, remote.status(), kExitUsageError);
  }
  std::unique_ptr<v1::Router::Stub> stub = NewRouterStub(router);
  std::vector<v1::Logprobs> logprobs;
  v1::GenerateResponse last;
  bool ends_in_newline = true;
  absl::Time first_token = absl::InfiniteFuture();
  const absl::Status status = StreamGenerate(
      *stub, *remote,
      [&](const v1::GenerateResponse& reply) {
        if (first_token == absl::InfiniteFuture()) first_token = absl::Now();
        logprobs.insert(logprobs.end(), reply.logprobs().begin(),
                        reply.logprobs().end());
        if (!reply.text().empty())
          ends_in_newline = reply.text().back() == '\n';
        last = reply;
        return WriteStdout(reply.text());
      },
      absl::InfiniteDuration(), api_key);
  if (!status.ok()) {
    const bool rejected = status.code() == absl::StatusCode::kInvalidArgument ||
                          status.code() == absl::StatusCode::kNotFound ||
                          status.code() == absl::StatusCode::kUnauthenticated;
    return ReportError(
        kCommand,
        absl::Status(status.code(),
                     absl::StrCat("router ", router, ": ", status.message())),
        rejected ? kExitUsageError : kExitRuntimeError);
  }
  if (!ends_in_newline && isatty(STDOUT_FILENO)) {
    WriteStdout("\n").IgnoreError();
  }
  if (request.sampling.num_logprobs > 0) {
    std::fputs(RemoteLogprobTable(logprobs).c_str(), stderr);
  }
  PrintSummary(last, absl::Now() - first_token);
  return 0;
}

}  // namespace tandem
