#include "router/router_service.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "router/api_key.h"
#include "router/generate_call.h"
#include "service/grpc_status.h"

namespace tandem {
namespace {

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A Generate call refused before it started: finishes at once with the
// status and deletes itself when gRPC is done with it.
class RefusedGenerate final
    : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit RefusedGenerate(const absl::Status& status) {
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace

absl::Status RouterService::Authorize(
    const grpc::CallbackServerContext& context) const {
  if (api_key_.empty()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(kAuthorizationMetadata);
  if (it == metadata.end()) return CheckAuthorization(std::nullopt, api_key_);
  return CheckAuthorization(
      absl::string_view(it->second.data(), it->second.size()), api_key_);
}

grpc::ServerWriteReactor<v1::GenerateResponse>* RouterService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  if (absl::Status status = Authorize(*context); !status.ok()) {
    return new RefusedGenerate(status);
  }
  return GenerateCall::Start(core_, context, request);
}

grpc::ServerUnaryReactor* RouterService::Tokenize(
    grpc::CallbackServerContext* context, const v1::TokenizeRequest* request,
    v1::TokenizeResponse* response) {
  if (absl::Status status = Authorize(*context); !status.ok()) {
    return Reply(context, status);
  }
  const ServedModel& model = core_->model();
  absl::Status status = CheckModelName(model, request->model());
  if (status.ok()) {
    absl::StatusOr<std::vector<int32_t>> ids =
        model.tokenizer->Encode(request->text(), request->add_special_tokens());
    if (ids.ok()) {
      response->mutable_token_ids()->Add(ids->begin(), ids->end());
    } else {
      status = absl::InvalidArgumentError(
          absl::StrCat("text: ", ids.status().message()));
    }
  }
  return Reply(context, status);
}

grpc::ServerUnaryReactor* RouterService::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  if (absl::Status status = Authorize(*context); !status.ok()) {
    return Reply(context, status);
  }
  const ServedModel& model = core_->model();
  const ClusterView view = core_->View();
  v1::ModelInfo* info = response->add_models();
  info->set_id(model.id);
  info->set_max_context(model.context());
  info->set_vocab_size(model.config.vocab_size);
  info->set_prefill_workers(view.prefill.size());
  info->set_decode_workers(view.decode.size());
  info->set_colocated_workers(view.colocated.size());
  return Reply(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* MembershipService::Heartbeat(
    grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
    v1::HeartbeatResponse* response) {
  const std::string& model = request->load().model();
  if (!ModelNameMatches(core_->model().id, model)) {
    return Reply(context, absl::InvalidArgumentError(absl::StrCat(
                              "load.model '", model, "' is not served here (",
                              core_->model().id, ")")));
  }
  const absl::Status status = core_->registry().Report(
      request->worker_id(), request->address(), request->load());
  if (status.ok()) {
    response->set_expiry_seconds(static_cast<int32_t>(
        std::ceil(absl::ToDoubleSeconds(core_->registry().expiry()))));
  }
  return Reply(context, status);
}

}  // namespace tandem
