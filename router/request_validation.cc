#include "router/request_validation.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/status_macros.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

std::string DefaultModelId(const std::string& dir) {
  fs::path path = fs::path(dir).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  return path.filename().string();
}

absl::Status CheckRequestId(const std::string& id) {
  if (id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("request_id has ", id.size(),
                                                   " bytes, more than ",
                                                   kMaxRequestIdBytes));
  }
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("request_id holds a control character");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> PromptIds(
    const ServedModel& model, const v1::GenerateRequest& request) {
  std::vector<int32_t> ids;
  std::string field;
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText: {
      absl::StatusOr<std::vector<int32_t>> encoded =
          model.tokenizer->Encode(request.text(), /*add_special_tokens=*/true);
      if (!encoded.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt.text: ", encoded.status().message()));
      }
      ids = *std::move(encoded);
      field = "prompt.text";
      if (ids.empty()) {
        return absl::InvalidArgumentError(
            "prompt.text encodes to no tokens (the model adds no BOS)");
      }
      break;
    }
    case v1::GenerateRequest::kTokens:
      ids.assign(request.tokens().ids().begin(), request.tokens().ids().end());
      field = "prompt.tokens";
      if (ids.empty()) {
        return absl::InvalidArgumentError("prompt.tokens is empty");
      }
      break;
    default:
      return absl::InvalidArgumentError(
          "prompt is empty: set prompt.text or prompt.tokens");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= model.config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", i, "]=", ids[i], " is outside the model's vocabulary of ",
          model.config.vocab_size, " tokens"));
    }
  }
  return ids;
}

absl::StatusOr<int> ResolveMaxTokens(int requested, int prompt_tokens,
                                     int context) {
  if (prompt_tokens >= context) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt has ", prompt_tokens,
                     " tokens, which leaves no room in the model's context of ",
                     context, " tokens"));
  }
  const int room = context - prompt_tokens;
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens=", requested, " is negative (0 means up to the context)"));
  }
  if (requested > room) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens=", requested, " does not fit in the model's context of ",
        context, " tokens after the prompt's ", prompt_tokens, " (at most ",
        room, ")"));
  }
  return requested == 0 ? room : requested;
}

absl::Status CheckStops(const ServedModel& model,
                        const v1::GenerateRequest& request) {
  for (int i = 0; i < request.stop_size(); ++i) {
    if (request.stop(i).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("stop[", i, "] is empty"));
    }
  }
  for (int i = 0; i < request.stop_token_ids_size(); ++i) {
    const int32_t id = request.stop_token_ids(i);
    if (id < 0 || id >= model.config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop_token_ids[", i, "]=", id,
                       " is outside the model's vocabulary of ",
                       model.config.vocab_size, " tokens"));
    }
  }
  return absl::OkStatus();
}

v1::SamplingParams SamplingToProto(const SamplingParams& params) {
  v1::SamplingParams proto;
  proto.set_temperature(params.temperature);
  proto.set_top_p(params.top_p);
  proto.set_top_k(params.top_k);
  proto.set_min_p(params.min_p);
  proto.set_repetition_penalty(params.repetition_penalty);
  proto.set_presence_penalty(params.presence_penalty);
  proto.set_frequency_penalty(params.frequency_penalty);
  proto.set_seed(params.seed);
  return proto;
}

}  // namespace

absl::StatusOr<ServedModel> LoadServedModel(const std::string& dir,
                                            const std::string& id) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(
        absl::StrCat("model directory ", dir, " does not exist"));
  }
  ServedModel model;
  model.id = id.empty() ? DefaultModelId(dir) : id;
  TANDEM_ASSIGN_OR_RETURN(model.config,
                          LoadModelConfig(fs::path(dir) / "config.json"));
  TANDEM_ASSIGN_OR_RETURN(model.tokenizer, LoadTokenizer(dir));
  return model;
}

absl::Status CheckModelName(const ServedModel& model,
                            const std::string& requested) {
  if (requested.empty() || requested == model.id) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat(
      "model '", requested, "' is not served here (serving '", model.id, "')"));
}

bool ModelNameMatches(const std::string& served_id,
                      const std::string& reported) {
  if (reported.empty() || reported == served_id) return true;
  std::filesystem::path path =
      std::filesystem::path(reported).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  return path.filename() == served_id;
}

absl::StatusOr<ValidatedRequest> ValidateGenerateRequest(
    const ServedModel& model, const v1::GenerateRequest& request,
    absl::FunctionRef<uint64_t()> random) {
  TANDEM_RETURN_IF_ERROR(CheckModelName(model, request.model()));
  TANDEM_RETURN_IF_ERROR(CheckRequestId(request.request_id()));
  ValidatedRequest out;
  out.request_id = request.request_id().empty()
                       ? absl::StrFormat("req-%016x", random())
                       : request.request_id();
  TANDEM_ASSIGN_OR_RETURN(out.prompt_ids, PromptIds(model, request));
  TANDEM_ASSIGN_OR_RETURN(
      out.max_tokens, ResolveMaxTokens(request.max_tokens(),
                                       out.prompt_ids.size(), model.context()));
  out.sampling = SamplingFromProto(request.sampling());
  // Its messages name the field ("sampling parameter top_p must be ...").
  TANDEM_RETURN_IF_ERROR(ValidateSamplingParams(out.sampling));
  if (request.logprobs() > kMaxLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("logprobs=", request.logprobs(), " is outside [0, ",
                     kMaxLogprobs, "] (negative: none)"));
  }
  TANDEM_RETURN_IF_ERROR(CheckStops(model, request));
  out.seed_was_set = request.sampling().has_seed();
  // Seeds fit in an int64 so that `tandem generate --seed` can repeat them.
  if (!out.seed_was_set) out.sampling.seed = random() >> 1;
  out.logprobs = request.logprobs();
  out.sampling.num_logprobs = std::max(out.logprobs, 0);
  out.sampling_proto = SamplingToProto(out.sampling);
  out.stop.assign(request.stop().begin(), request.stop().end());
  out.stop_token_ids.assign(request.stop_token_ids().begin(),
                            request.stop_token_ids().end());
  out.ignore_eos = request.ignore_eos();
  return out;
}

}  // namespace tandem
