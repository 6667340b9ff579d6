// What the router knows of the model it serves, and the checks every
// request passes before any worker hears of it.
//
// The router reads only the model directory's config.json and tokenizer:
// never its weights. A GenerateRequest becomes a ValidatedRequest with the
// prompt tokenized, every sampling field filled in (the seed included) and
// max_tokens resolved against the context, or an error naming the field.
//
// Thread-safety: a ServedModel is immutable after loading and may be shared
// by any number of threads; the functions are thread-safe.
#ifndef TANDEM_ROUTER_REQUEST_VALIDATION_H_
#define TANDEM_ROUTER_REQUEST_VALIDATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_config.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "proto/generate.pb.h"
#include "service/sampling_proto.h"  // SamplingFromProto

namespace tandem {

// Longest request_id a client may send (ids appear in every log line).
inline constexpr size_t kMaxRequestIdBytes = 128;

struct ServedModel {
  std::string id;  // the name clients use (GenerateRequest.model)
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;

  int context() const { return config.max_position_embeddings; }
};

// Loads `dir`'s config.json and tokenizer and names the model `id` (empty:
// the directory's base name). NotFound if `dir` or a file is missing;
// InvalidArgument for a malformed config.json or tokenizer.
absl::StatusOr<ServedModel> LoadServedModel(const std::string& dir,
                                            const std::string& id);

// OK if `requested` names `model` or is empty (the cluster's only model);
// otherwise NotFound naming it.
absl::Status CheckModelName(const ServedModel& model,
                            const std::string& requested);

// Whether a worker reporting `reported` as its model serves `served_id`:
// the same id, an empty one, or a path whose last component is the id.
bool ModelNameMatches(const std::string& served_id,
                      const std::string& reported);

// A request that passed every check, ready for the workers.
struct ValidatedRequest {
  std::string request_id;
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;            // num_logprobs = max(logprobs, 0)
  v1::SamplingParams sampling_proto;  // every field set, the seed included
  bool seed_was_set = false;          // the client chose the seed
  int max_tokens = 0;                 // >= 1, fits after the prompt
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  int logprobs = -1;  // as requested: negative means none
  bool ignore_eos = false;
};

// Checks `request` against `model`. `random` supplies a seed when the
// request has none and a request id when it has none.
//
// NotFound for an unknown model. InvalidArgument naming the field for: a
// request_id over kMaxRequestIdBytes; no prompt, an empty one, token ids
// outside the vocabulary, text that is not UTF-8; a prompt that leaves no
// room in the context; max_tokens negative or not fitting after the prompt
// (0 means all the room left); a sampling value ValidateSamplingParams
// rejects; logprobs above kMaxLogprobs; an empty stop string; a stop token
// id outside the vocabulary.
absl::StatusOr<ValidatedRequest> ValidateGenerateRequest(
    const ServedModel& model, const v1::GenerateRequest& request,
    absl::FunctionRef<uint64_t()> random);

}  // namespace tandem

#endif  // TANDEM_ROUTER_REQUEST_VALIDATION_H_
