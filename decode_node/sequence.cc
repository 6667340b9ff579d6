#include "decode_node/sequence.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "engine/block_key.h"
#include "engine/generation.h"
#include "engine/status_macros.h"

namespace tandem {
namespace {

std::string FingerprintHex(const Fingerprint& model) {
  return absl::StrFormat("%016x%016x", model.words[1], model.words[0]);
}

absl::Status CheckIds(absl::Span<const int32_t> ids, int vocab_size,
                      const char* field) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", i, "]=", ids[i], " is outside the model's vocabulary of ",
          vocab_size, " tokens"));
    }
  }
  return absl::OkStatus();
}

// The handoff must be for this model and block size, and its keys must be
// the prompt's own, so that the imported KV is the prompt's.
absl::Status CheckHandoff(const DecodeInput& input, const Fingerprint& model,
                          int block_size) {
  const KvHandoff& handoff = input.handoff;
  if (!(handoff.model == model)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "handoff.model ", FingerprintHex(handoff.model),
        " is not the model this worker serves (", FingerprintHex(model), ")"));
  }
  if (handoff.block_size != block_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("handoff.block_size=", handoff.block_size,
                     " differs from this worker's block size ", block_size));
  }
  const std::vector<BlockKey> chain =
      ComputeKeyChain(model, input.prompt, block_size);
  const char* field =
      input.compute_prompt ? "block_keys" : "handoff.full_blocks";
  if (chain.size() != handoff.full_blocks.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " has ", handoff.full_blocks.size(), " keys; the prompt has ",
        chain.size(), " full blocks of ", block_size, " tokens"));
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    if (chain[i] != handoff.full_blocks[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]=", handoff.full_blocks[i].ToHex(),
                       " is not the key of the prompt's tokens"));
    }
  }
  if (handoff.partial_block.has_value()) {
    const size_t start = chain.size() * block_size;
    const BlockKey expected =
        ComputeBlockKey(model, chain.empty() ? nullptr : &chain.back(),
                        absl::MakeConstSpan(input.prompt).subspan(start));
    if (expected != *handoff.partial_block) {
      return absl::InvalidArgumentError(
          absl::StrCat("handoff.partial_block=", handoff.partial_block->ToHex(),
                       " is not the key of the prompt's last tokens"));
    }
  }
  return absl::OkStatus();
}

StopCriteria MakeStopCriteria(const ModelConfig& config,
                              const Tokenizer& tokenizer,
                              const DecodeInput& input) {
  StopCriteria criteria;
  if (!input.ignore_eos) {
    criteria.eos_ids.assign(config.eos_token_ids.begin(),
                            config.eos_token_ids.end());
    criteria.eos_ids.insert(criteria.eos_ids.end(), tokenizer.eos_ids().begin(),
                            tokenizer.eos_ids().end());
  }
  criteria.stop_token_ids = input.stop_token_ids;
  criteria.stop_strings = input.stop;
  criteria.max_tokens = input.max_tokens;
  return criteria;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Sequence>> Sequence::Create(
    SequenceId id, DecodeInput input, const ModelConfig& config,
    const Fingerprint& model, int block_size, const Tokenizer& tokenizer,
    std::shared_ptr<SequenceObserver> observer) {
  TANDEM_RETURN_IF_ERROR(
      CheckIds(input.prompt, config.vocab_size, "prompt_token_ids"));
  if (!input.compute_prompt) {
    TANDEM_RETURN_IF_ERROR(
        CheckIds({&input.first_token, 1}, config.vocab_size, "first_token"));
  }
  TANDEM_RETURN_IF_ERROR(CheckFitsContext(input.prompt.size(), input.max_tokens,
                                          config.max_position_embeddings));
  TANDEM_RETURN_IF_ERROR(CheckHandoff(input, model, block_size));
  TANDEM_ASSIGN_OR_RETURN(SequenceSamplingState sampling,
                          SequenceSamplingState::Create(input.sampling));
  TANDEM_RETURN_IF_ERROR(sampling.RecordPromptTokens(input.prompt));
  sampling.set_next_draw(input.handoff.next_draw);
  TANDEM_ASSIGN_OR_RETURN(
      StopChecker stop,
      StopChecker::Create(MakeStopCriteria(config, tokenizer, input)));
  return std::unique_ptr<Sequence>(
      new Sequence(id, std::move(input), std::move(sampling), std::move(stop),
                   tokenizer, std::move(observer)));
}

Sequence::Sequence(SequenceId id, DecodeInput input,
                   SequenceSamplingState sampling, StopChecker stop,
                   const Tokenizer& tokenizer,
                   std::shared_ptr<SequenceObserver> observer)
    : id_(id),
      input_(std::move(input)),
      tokenizer_(tokenizer),
      observer_(std::move(observer)),
      sampling_(std::move(sampling)),
      stop_(std::move(stop)),
      detokenizer_(&tokenizer) {}

int Sequence::CacheTokens() const {
  const int generated = generated_.size();
  return input_.prompt.size() + (generated > 0 ? generated - 1 : 0);
}

int Sequence::MaxCacheTokens() const {
  return input_.prompt.size() + input_.max_tokens - 1;
}

std::vector<int32_t> Sequence::CacheRun() const {
  std::vector<int32_t> run = input_.prompt;
  if (!generated_.empty()) {
    run.insert(run.end(), generated_.begin(), generated_.end() - 1);
  }
  return run;
}

absl::StatusOr<bool> Sequence::AcceptFirstToken() {
  GeneratedToken token;
  token.token = input_.first_token;
  return Accept(std::move(token));
}

absl::StatusOr<bool> Sequence::AcceptSampled(SampledToken sampled) {
  GeneratedToken token;
  token.token = sampled.token;
  token.logprob = sampled.logprob;
  token.top_logprobs = std::move(sampled.top_logprobs);
  return Accept(std::move(token));
}

// The steps of engine/generation.cc's local loop, in the same order.
absl::StatusOr<bool> Sequence::Accept(GeneratedToken token) {
  TANDEM_RETURN_IF_ERROR(sampling_.RecordGeneratedToken(token.token));
  std::string piece;
  if (token.token < tokenizer_.vocab_size()) {
    absl::StatusOr<std::string> added = detokenizer_.Add(token.token);
    if (!added.ok()) {
      return absl::InternalError(absl::StrCat("detokenizing ", token.token,
                                              ": ", added.status().message()));
    }
    piece = *std::move(added);
  }
  StopStep step = stop_.Append(token.token, piece);
  token.text = std::move(step.text);
  token.finish = step.finish;
  if (step.finish != FinishReason::kNone && !step.matched_stop_string) {
    token.text += detokenizer_.Flush();
  }
  generated_.push_back(token.token);
  finish_ = token.finish;
  observer_->OnToken(token, generated_.size() - 1);
  return token.finish != FinishReason::kNone;
}

}  // namespace tandem
