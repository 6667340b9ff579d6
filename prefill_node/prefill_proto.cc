#include "prefill_node/prefill_proto.h"

#include "absl/strings/str_cat.h"
#include "kvstore/kvstore_proto.h"
#include "service/sampling_proto.h"

namespace tandem {

absl::StatusOr<SamplingParams> SeededSamplingFromProto(
    const v1::SamplingParams& sampling) {
  if (!sampling.has_seed()) {
    return absl::InvalidArgumentError(
        "sampling.seed is not set; the router sets it for every request");
  }
  return SamplingFromProto(sampling);
}

absl::StatusOr<PrefillJob> PrefillJobFromProto(
    const v1::PrefillRequest& request) {
  PrefillJob job;
  job.request_id = request.request_id();
  job.prompt.assign(request.prompt_token_ids().begin(),
                    request.prompt_token_ids().end());
  job.block_keys.reserve(request.block_keys_size());
  for (const v1::BlockKey& key : request.block_keys()) {
    job.block_keys.push_back(FromProto(key));
  }
  job.cached_blocks_hint = request.cached_blocks_hint();
  absl::StatusOr<SamplingParams> sampling =
      SeededSamplingFromProto(request.sampling());
  if (!sampling.ok()) return sampling.status();
  job.sampling = *sampling;
  if (request.logprobs() > kMaxLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("logprobs=", request.logprobs(), " is above the limit of ",
                     kMaxLogprobs));
  }
  job.logprobs = request.logprobs() >= 0;
  job.sampling.num_logprobs = std::max(0, request.logprobs());
  return job;
}

void ToProto(const PrefillHandoff& handoff, v1::Handoff* out) {
  ToProto(handoff.model, out->mutable_model());
  out->set_block_size(handoff.block_size);
  out->set_prompt_tokens(handoff.prompt_tokens);
  for (const BlockKey& key : handoff.full_blocks) {
    ToProto(key, out->add_full_blocks());
  }
  if (handoff.partial_block.has_value()) {
    ToProto(*handoff.partial_block, out->mutable_partial_block());
  }
  out->set_next_draw(handoff.next_draw);
}

void ToProto(const PrefillResult& result, bool logprobs,
             v1::PrefillResponse* out) {
  out->set_first_token(result.first.token);
  if (logprobs) {
    v1::Logprobs* first = out->mutable_first_logprobs();
    first->mutable_chosen()->set_token_id(result.first.token);
    first->mutable_chosen()->set_logprob(result.first.logprob);
    for (const TokenLogprob& top : result.first.top_logprobs) {
      v1::TokenLogprob* entry = first->add_top();
      entry->set_token_id(top.token);
      entry->set_logprob(top.logprob);
    }
  }
  ToProto(result.handoff, out->mutable_handoff());
  out->set_computed_tokens(result.computed_tokens);
  out->set_cached_tokens(result.cached_tokens);
  out->set_queue_us(absl::ToInt64Microseconds(result.queue_time));
}

v1::WorkerLoad ToWorkerLoad(const PrefillLoad& load, const ServedModel& model,
                            const std::string& model_name, int max_batch) {
  v1::WorkerLoad out;
  out.set_kind(v1::WORKER_KIND_PREFILL);
  out.set_model(model_name);
  out.set_queued_requests(load.queued_requests);
  out.set_queued_tokens(load.queued_tokens);
  out.set_running_sequences(load.running_sequences);
  out.set_waiting_sequences(load.waiting_sequences);
  out.set_free_blocks(load.free_blocks);
  out.set_total_blocks(load.total_blocks);
  out.set_max_batch(max_batch);
  ToProto(model.fingerprint, out.mutable_fingerprint());
  out.set_block_size(model.block_size);
  return out;
}

}  // namespace tandem
