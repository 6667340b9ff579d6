#include "decode_node/decode_input.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "kvstore/kvstore_proto.h"
#include "service/sampling_proto.h"

namespace tandem {
namespace {

// Unset proto fields take the defaults that proto/generate.proto documents,
// which are SamplingParams' own.
absl::StatusOr<SamplingParams> SeededSamplingFromProto(
    const v1::SamplingParams& proto, int logprobs) {
  if (!proto.has_seed()) {
    return absl::InvalidArgumentError(
        "sampling.seed must be set: decoding continues the prefill's random "
        "stream");
  }
  SamplingParams params = SamplingFromProto(proto);
  params.num_logprobs = logprobs < 0 ? 0 : logprobs;
  absl::Status valid = ValidateSamplingParams(params);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling: ", valid.message()));
  }
  return params;
}

absl::Status CheckTokenIds(const google::protobuf::RepeatedField<int32_t>& ids,
                           const char* field) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]=", ids[i], " is negative"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<KvHandoff> HandoffFromProto(const v1::DecodeRequest& request) {
  if (!request.has_handoff()) {
    return absl::InvalidArgumentError("handoff is missing");
  }
  const v1::Handoff& proto = request.handoff();
  if (!proto.has_model()) {
    return absl::InvalidArgumentError("handoff.model is missing");
  }
  if (proto.block_size() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "handoff.block_size must be positive, got ", proto.block_size()));
  }
  const int prompt_tokens = request.prompt_token_ids_size();
  if (proto.prompt_tokens() != prompt_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("handoff.prompt_tokens=", proto.prompt_tokens(),
                     " differs from the ", prompt_tokens, " prompt_token_ids"));
  }
  const int full = prompt_tokens / proto.block_size();
  if (proto.full_blocks_size() != full) {
    return absl::InvalidArgumentError(
        absl::StrCat("handoff.full_blocks has ", proto.full_blocks_size(),
                     " keys; ", prompt_tokens, " prompt tokens in blocks of ",
                     proto.block_size(), " need ", full));
  }
  const bool partial = prompt_tokens % proto.block_size() != 0;
  if (proto.has_partial_block() != partial) {
    return absl::InvalidArgumentError(
        partial ? "handoff.partial_block is missing: the prompt ends in a "
                  "partial block"
                : "handoff.partial_block is set but the prompt fills whole "
                  "blocks");
  }
  KvHandoff handoff;
  handoff.model = FromProto(proto.model());
  handoff.block_size = proto.block_size();
  handoff.full_blocks.reserve(full);
  for (const v1::BlockKey& key : proto.full_blocks()) {
    handoff.full_blocks.push_back(FromProto(key));
  }
  if (partial) handoff.partial_block = FromProto(proto.partial_block());
  handoff.next_draw = proto.next_draw();
  return handoff;
}

// The checks and fields the two kinds of request share.
template <typename Request>
absl::Status CheckCommon(const Request& request) {
  if (request.prompt_token_ids().empty()) {
    return absl::InvalidArgumentError("prompt_token_ids is empty");
  }
  TANDEM_RETURN_IF_ERROR(
      CheckTokenIds(request.prompt_token_ids(), "prompt_token_ids"));
  if (request.max_tokens() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens must be at least 1, got ", request.max_tokens()));
  }
  if (request.logprobs() > kMaxLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("logprobs must be at most ",
                                                   kMaxLogprobs, ", got ",
                                                   request.logprobs()));
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    if (request.stop(i).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("stop[", i, "] is empty"));
    }
  }
  return absl::OkStatus();
}

template <typename Request>
absl::Status FillCommon(const Request& request, DecodeInput& input) {
  TANDEM_ASSIGN_OR_RETURN(
      input.sampling,
      SeededSamplingFromProto(request.sampling(), request.logprobs()));
  input.request_id = request.request_id();
  input.prompt.assign(request.prompt_token_ids().begin(),
                      request.prompt_token_ids().end());
  input.logprobs = request.logprobs() >= 0;
  input.max_tokens = request.max_tokens();
  input.stop.assign(request.stop().begin(), request.stop().end());
  input.stop_token_ids.assign(request.stop_token_ids().begin(),
                              request.stop_token_ids().end());
  input.ignore_eos = request.ignore_eos();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DecodeInput> DecodeInputFromProto(
    const v1::DecodeRequest& request) {
  TANDEM_RETURN_IF_ERROR(CheckCommon(request));
  if (request.first_token() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("first_token=", request.first_token(), " is negative"));
  }
  DecodeInput input;
  TANDEM_ASSIGN_OR_RETURN(input.handoff, HandoffFromProto(request));
  TANDEM_RETURN_IF_ERROR(FillCommon(request, input));
  input.first_token = request.first_token();
  return input;
}

absl::StatusOr<DecodeInput> ColocatedInputFromProto(
    const v1::ColocatedRequest& request, const Fingerprint& model,
    int block_size) {
  TANDEM_RETURN_IF_ERROR(CheckCommon(request));
  if (request.cached_blocks_hint() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cached_blocks_hint must not be negative, got ",
                     request.cached_blocks_hint()));
  }
  DecodeInput input;
  TANDEM_RETURN_IF_ERROR(FillCommon(request, input));
  input.compute_prompt = true;
  input.handoff.model = model;
  input.handoff.block_size = block_size;
  input.handoff.full_blocks.reserve(request.block_keys_size());
  for (const v1::BlockKey& key : request.block_keys()) {
    input.handoff.full_blocks.push_back(FromProto(key));
  }
  return input;
}

}  // namespace tandem
