// The JSON of the router's OpenAI-compatible HTTP API (docs/api.md): a
// `POST /v1/completions` body becomes a tandem.v1.GenerateRequest, the
// router's replies become OpenAI's legacy completion objects and stream
// chunks, and a Status becomes an HTTP status with OpenAI's error body
// {"error":{"message","type","param","code"}}.
//
// Errors name the offending field in OpenAI's terms: every InvalidArgument
// message here starts with the field ("temperature must be a number"), and
// ParamOf reads it back, also from the router's own messages ("sampling
// parameter temperature must be in [0, inf)").
//
// Thread-safety: the functions are thread-safe; the accumulator is not.
#ifndef TANDEM_ROUTER_OPENAI_JSON_H_
#define TANDEM_ROUTER_OPENAI_JSON_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "proto/generate.pb.h"

namespace tandem {

// OpenAI's default max_tokens for completions.
inline constexpr int kOpenAiDefaultMaxTokens = 16;

// A parsed `POST /v1/completions` body.
struct CompletionRequest {
  // The router's request; request_id is left for the caller to set.
  v1::GenerateRequest generate;
  bool stream = false;
  // stream_options.include_usage: a last chunk with no choices and the
  // usage, as OpenAI sends it.
  bool include_usage = false;
};

// Parses a completion request body. InvalidArgument naming the field for a
// body that is not JSON or not an object, a field of the wrong JSON type or
// out of range, a prompt that is empty or a batch of more than one, and the
// features that would change what the reply means (n or best_of above 1,
// echo, suffix, logit_bias). Unknown fields are ignored.
absl::StatusOr<CompletionRequest> ParseCompletionRequest(
    absl::string_view body);

// The OpenAI parameter a Status message names, or "" if none. Reads a
// leading field name, after an optional "sampling parameter " prefix, and
// keeps it only if it is a known parameter ("stop[1] is empty" -> "stop",
// "prompt.text: ..." -> "prompt", "num_logprobs" -> "logprobs").
std::string ParamOf(absl::string_view message);

// The HTTP status for a non-OK status code: InvalidArgument 400,
// Unauthenticated 401, NotFound 404, ResourceExhausted 429, Unavailable
// 503, DeadlineExceeded 504, anything else 500.
int HttpStatusFor(absl::StatusCode code);

// OpenAI's error body for `status` (REQUIRES: not OK). `param` overrides
// ParamOf(status.message()) when not empty.
nlohmann::json ErrorJson(const absl::Status& status,
                         absl::string_view param = "");

// `value` as compact JSON text; invalid UTF-8 becomes U+FFFD.
std::string DumpJson(const nlohmann::json& value);

// Builds completion objects from the router's replies, in order. One per
// request.
class CompletionBuilder {
 public:
  // `id` is "cmpl-<request id>"; `created` Unix seconds; `logprobs`
  // whether the request asked for them.
  CompletionBuilder(std::string id, int64_t created, std::string model,
                    bool logprobs);

  // A stream chunk for `reply`: its text delta, its logprobs, and on the
  // last reply the finish reason and the usage.
  nlohmann::json Chunk(const v1::GenerateResponse& reply);
  // The chunk that stream_options.include_usage adds: no choices, the
  // usage of the last reply given to Chunk or Add.
  nlohmann::json UsageChunk() const;

  // Adds `reply` to the whole completion that Completion returns.
  void Add(const v1::GenerateResponse& reply);
  nlohmann::json Completion() const;

 private:
  nlohmann::json Base() const;
  nlohmann::json Logprobs(const v1::GenerateResponse& reply);

  const std::string id_;
  const int64_t created_;
  const std::string model_;
  const bool logprobs_;
  // Characters of completion text before the next token (text_offset).
  int64_t offset_ = 0;
  std::string text_;
  nlohmann::json all_logprobs_;
  v1::FinishReason finish_ = v1::FINISH_REASON_UNSPECIFIED;
  v1::Usage usage_;
};

}  // namespace tandem

#endif  // TANDEM_ROUTER_OPENAI_JSON_H_
