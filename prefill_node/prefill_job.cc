#include "prefill_node/prefill_job.h"

#include "absl/strings/str_cat.h"

namespace tandem {
namespace {

absl::Status CheckPrompt(const PrefillJob& job, const ModelConfig& config) {
  if (job.prompt.empty()) {
    return absl::InvalidArgumentError("prompt_token_ids is empty");
  }
  for (size_t i = 0; i < job.prompt.size(); ++i) {
    const int32_t token = job.prompt[i];
    if (token < 0 || token >= config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt_token_ids[", i, "]=", token,
                       " is outside the model's vocabulary of ",
                       config.vocab_size, " tokens"));
    }
  }
  // The first generated token takes the position after the prompt.
  if (job.prompt.size() >=
      static_cast<size_t>(config.max_position_embeddings)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt_token_ids has ", job.prompt.size(),
                     " tokens, which leaves no room in the model's context of ",
                     config.max_position_embeddings, " tokens"));
  }
  return absl::OkStatus();
}

absl::Status CheckBlockKeys(const PrefillJob& job, const ServedModel& model) {
  const std::vector<BlockKey> chain =
      ComputeKeyChain(model.fingerprint, job.prompt, model.block_size);
  if (job.block_keys.size() != chain.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_keys has ", job.block_keys.size(), " keys; a ",
                     job.prompt.size(), "-token prompt has ", chain.size(),
                     " full blocks of ", model.block_size, " tokens"));
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    if (job.block_keys[i] != chain[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("block_keys[", i, "]=", job.block_keys[i].ToHex(),
                       " is not the key of the prompt's block ", i,
                       " under this "
                       "worker's model and block size ",
                       model.block_size, " (expected ", chain[i].ToHex(), ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePrefillJob(const PrefillJob& job,
                                const ServedModel& model) {
  if (absl::Status s = CheckPrompt(job, model.config); !s.ok()) return s;
  if (absl::Status s = CheckBlockKeys(job, model); !s.ok()) return s;
  if (job.cached_blocks_hint < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cached_blocks_hint must not be negative, got ",
                     job.cached_blocks_hint));
  }
  return ValidateSamplingParams(job.sampling);
}

std::optional<BlockKey> PartialBlockKey(const Fingerprint& model,
                                        absl::Span<const BlockKey> full_keys,
                                        absl::Span<const int32_t> prompt,
                                        int block_size) {
  const size_t full_tokens = full_keys.size() * block_size;
  if (full_tokens >= prompt.size()) return std::nullopt;
  const BlockKey* parent = full_keys.empty() ? nullptr : &full_keys.back();
  return ComputeBlockKey(model, parent, prompt.subspan(full_tokens));
}

}  // namespace tandem
