#include "engine/generation.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/paged_kv_cache.h"
#include "engine/status_macros.h"
#include "engine/streaming_detokenizer.h"

namespace tandem {
namespace {

constexpr SequenceId kSequence = 0;
constexpr int kBlockSize = 16;

// The ids to prefill: the request's, or BOS alone for an empty prompt.
absl::StatusOr<std::vector<int32_t>> PromptIds(const ModelConfig& config,
                                               const Tokenizer& tokenizer,
                                               const GenerationRequest& req) {
  std::vector<int32_t> ids = req.prompt_ids;
  if (ids.empty()) {
    int32_t bos = config.bos_token_id;
    if (bos < 0) bos = tokenizer.bos_id().value_or(-1);
    if (bos < 0) {
      return absl::InvalidArgumentError(
          "prompt is empty and the model has no BOS token to start from");
    }
    ids.push_back(bos);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt_ids[", i, "]=", ids[i],
                       " is outside the model's vocabulary of ",
                       config.vocab_size, " tokens"));
    }
  }
  return ids;
}

absl::Status CheckContext(int prompt_tokens, int max_tokens, int context) {
  if (max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be at least 1, got ", max_tokens));
  }
  return CheckFitsContext(prompt_tokens, max_tokens, context);
}

StopCriteria MakeStopCriteria(const ModelConfig& config,
                              const Tokenizer& tokenizer,
                              const GenerationRequest& req) {
  StopCriteria criteria;
  if (!req.ignore_eos) {
    criteria.eos_ids.assign(config.eos_token_ids.begin(),
                            config.eos_token_ids.end());
    criteria.eos_ids.insert(criteria.eos_ids.end(), tokenizer.eos_ids().begin(),
                            tokenizer.eos_ids().end());
  }
  criteria.stop_token_ids = req.stop_token_ids;
  criteria.stop_strings = req.stop;
  criteria.max_tokens = req.max_tokens;
  return criteria;
}

// A KV cache holding exactly one sequence of up to `tokens` tokens.
absl::StatusOr<std::unique_ptr<PagedKvCache>> MakeCache(const Model& model,
                                                        int tokens) {
  const KvLayout layout = model.kv_layout(kBlockSize);
  const size_t blocks = (tokens + kBlockSize - 1) / kBlockSize;
  TANDEM_ASSIGN_OR_RETURN(
      auto cache, PagedKvCache::Create(
                      layout, PagedKvCache::BlockStrideBytes(layout) * blocks));
  TANDEM_RETURN_IF_ERROR(cache->AddSequence(kSequence));
  return cache;
}

// The state of one running sequence, from the first sample on.
class SequenceRun {
 public:
  SequenceRun(Model& model, const Tokenizer& tokenizer, PagedKvCache& cache,
              SequenceSamplingState state, StopChecker checker)
      : model_(model),
        tokenizer_(tokenizer),
        cache_(cache),
        state_(std::move(state)),
        checker_(std::move(checker)),
        detokenizer_(&tokenizer) {}

  // Samples from logits_ and returns the token with its released text.
  absl::StatusOr<GeneratedToken> Sample() {
    SequenceSamplingState* rows[] = {&state_};
    TANDEM_ASSIGN_OR_RETURN(std::vector<SampledToken> sampled,
                            sampler_.Sample(absl::MakeSpan(logits_),
                                            model_.config().vocab_size, rows));
    GeneratedToken out;
    out.token = sampled[0].token;
    out.logprob = sampled[0].logprob;
    out.top_logprobs = std::move(sampled[0].top_logprobs);
    TANDEM_RETURN_IF_ERROR(state_.RecordGeneratedToken(out.token));
    std::string piece;
    if (out.token < tokenizer_.vocab_size()) {
      TANDEM_ASSIGN_OR_RETURN(piece, detokenizer_.Add(out.token));
    }
    StopStep step = checker_.Append(out.token, piece);
    out.text = std::move(step.text);
    out.finish = step.finish;
    if (step.finish != FinishReason::kNone && !step.matched_stop_string) {
      out.text += detokenizer_.Flush();
    }
    return out;
  }

  absl::Status Prefill(absl::Span<const int32_t> prompt) {
    TANDEM_RETURN_IF_ERROR(state_.RecordPromptTokens(prompt));
    TANDEM_RETURN_IF_ERROR(cache_.Append(kSequence, prompt.size()));
    const Model::Chunk chunk{kSequence, prompt};
    return model_.Prefill({&chunk, 1}, cache_, Model::Logits::kLastPerSequence,
                          &logits_);
  }

  absl::Status Decode(int32_t token) {
    TANDEM_RETURN_IF_ERROR(cache_.Append(kSequence, 1));
    const SequenceId seq = kSequence;
    return model_.DecodeStep({&seq, 1}, {&token, 1}, cache_, &logits_);
  }

 private:
  Model& model_;
  const Tokenizer& tokenizer_;
  PagedKvCache& cache_;
  SequenceSamplingState state_;
  StopChecker checker_;
  StreamingDetokenizer detokenizer_;
  Sampler sampler_;
  std::vector<float> logits_;  // [1, vocab]
};

double SecondsSince(absl::Time start) {
  return absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

absl::Status CheckFitsContext(int prompt_tokens, int max_tokens, int context) {
  if (prompt_tokens >= context) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt has ", prompt_tokens,
                     " tokens, which leaves no room in the model's context of ",
                     context, " tokens"));
  }
  if (max_tokens > context - prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens=", max_tokens, " does not fit in the model's context of ",
        context, " tokens after the prompt's ", prompt_tokens, " (at most ",
        context - prompt_tokens, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateGenerationRequest(const ModelConfig& config,
                                       const Tokenizer& tokenizer,
                                       const GenerationRequest& request) {
  TANDEM_RETURN_IF_ERROR(ValidateSamplingParams(request.sampling));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> prompt,
                          PromptIds(config, tokenizer, request));
  TANDEM_RETURN_IF_ERROR(CheckContext(prompt.size(), request.max_tokens,
                                      config.max_position_embeddings));
  return StopChecker::Create(MakeStopCriteria(config, tokenizer, request))
      .status();
}

absl::StatusOr<GenerationResult> Generate(Model& model,
                                          const Tokenizer& tokenizer,
                                          const GenerationRequest& request,
                                          GenerationCallback on_token) {
  const ModelConfig& config = model.config();
  TANDEM_RETURN_IF_ERROR(ValidateSamplingParams(request.sampling));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> prompt,
                          PromptIds(config, tokenizer, request));
  const int prompt_tokens = prompt.size();
  TANDEM_RETURN_IF_ERROR(CheckContext(prompt_tokens, request.max_tokens,
                                      config.max_position_embeddings));
  TANDEM_ASSIGN_OR_RETURN(
      StopChecker checker,
      StopChecker::Create(MakeStopCriteria(config, tokenizer, request)));
  TANDEM_ASSIGN_OR_RETURN(SequenceSamplingState state,
                          SequenceSamplingState::Create(request.sampling));
  TANDEM_ASSIGN_OR_RETURN(auto cache,
                          MakeCache(model, prompt_tokens + request.max_tokens));

  GenerationResult result;
  result.prompt_tokens = prompt_tokens;
  SequenceRun run(model, tokenizer, *cache, std::move(state),
                  std::move(checker));
  absl::Time start = absl::Now();
  TANDEM_RETURN_IF_ERROR(run.Prefill(prompt));
  for (;;) {
    TANDEM_ASSIGN_OR_RETURN(GeneratedToken token, run.Sample());
    if (result.tokens.empty()) {
      result.prefill_seconds = SecondsSince(start);
      start = absl::Now();
    }
    result.tokens.push_back(token.token);
    result.text += token.text;
    result.finish_reason = token.finish;
    TANDEM_RETURN_IF_ERROR(on_token(token));
    if (token.finish != FinishReason::kNone) break;
    TANDEM_RETURN_IF_ERROR(run.Decode(token.token));
  }
  result.completion_tokens = result.tokens.size();
  if (result.completion_tokens > 1) result.decode_seconds = SecondsSince(start);
  return result;
}

}  // namespace tandem
