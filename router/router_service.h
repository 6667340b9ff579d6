// The router's gRPC services: the public tandem.v1.Router API and
// tandem.v1.Membership, where workers report their load.
//
// Status conversion happens here and in GenerateCall, nowhere else in the
// router. Thread-safe: gRPC calls these from any of its threads.
//
// With an API key set, every tandem.v1.Router call must carry the metadata
// `authorization: Bearer <key>` or is answered UNAUTHENTICATED before any
// other check. Membership stays open: workers and the router belong on a
// private network.
#ifndef TANDEM_ROUTER_ROUTER_SERVICE_H_
#define TANDEM_ROUTER_ROUTER_SERVICE_H_

#include <string>
#include <utility>

#include "grpcpp/grpcpp.h"
#include "proto/generate.grpc.pb.h"
#include "proto/worker.grpc.pb.h"
#include "router/router_core.h"

namespace tandem {

// Generate (see generate_call.h), Tokenize and ListModels. Each answers
// Unauthenticated when an API key is set and the call lacks it.
class RouterService final : public v1::Router::CallbackService {
 public:
  // `core` is not owned and must outlive the service and its calls.
  // `api_key`: the key every call must carry; empty: none.
  explicit RouterService(RouterCore* core, std::string api_key = "")
      : core_(core), api_key_(std::move(api_key)) {}

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context,
      const v1::GenerateRequest* request) override;
  // NotFound for an unknown model; InvalidArgument for text that is not
  // UTF-8.
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  // The served model with its context, vocabulary and live workers.
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const v1::ListModelsRequest* request,
      v1::ListModelsResponse* response) override;

 private:
  // OK if the call carries the API key (or none is required).
  absl::Status Authorize(const grpc::CallbackServerContext& context) const;

  RouterCore* const core_;
  const std::string api_key_;
};

// Heartbeat: registers or refreshes a worker. InvalidArgument naming the
// field for a missing worker_id or address, a kind that is neither prefill
// nor decode, or a model other than the one served.
class MembershipService final : public v1::Membership::CallbackService {
 public:
  // `core` is not owned and must outlive the service.
  explicit MembershipService(RouterCore* core) : core_(core) {}

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;

 private:
  RouterCore* const core_;
};

}  // namespace tandem

#endif  // TANDEM_ROUTER_ROUTER_SERVICE_H_
