// Talking to a running Tandem cluster: streaming a completion from a
// router, and the standard gRPC health check that every Tandem binary
// serves. Used by the `tandem` command line, the local cluster script (via
// `tandem health`) and the cross-process tests.
//
// Thread-safety: the functions are thread-safe; each call uses its own
// channel unless a stub is passed in.
#ifndef TANDEM_ROUTER_ROUTER_CLIENT_H_
#define TANDEM_ROUTER_ROUTER_CLIENT_H_

#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/generate.grpc.pb.h"

namespace tandem {

// A stub for the router at `address` (host:port) on a fresh channel.
std::unique_ptr<v1::Router::Stub> NewRouterStub(const std::string& address);

// Calls Generate with `request` and hands each reply to `on_reply` in
// order. Returns the call's final status as an absl::Status (the router's
// codes, proto/generate.proto); if `on_reply` fails, cancels the call and
// returns that error. `timeout` bounds the whole call (infinite: none).
// `api_key`, when not empty, is sent as `authorization: Bearer <key>`
// (a router started with --api_key answers UNAUTHENTICATED without it).
absl::Status StreamGenerate(
    v1::Router::StubInterface& stub, const v1::GenerateRequest& request,
    absl::FunctionRef<absl::Status(const v1::GenerateResponse&)> on_reply,
    absl::Duration timeout = absl::InfiniteDuration(),
    const std::string& api_key = "");

// Adds `authorization: Bearer <api_key>` to `context` unless `api_key` is
// empty.
void SetApiKey(grpc::ClientContext& context, const std::string& api_key);

// grpc.health.v1 serving states.
enum class HealthState { kUnknown, kServing, kNotServing, kServiceUnknown };

// "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN".
const char* HealthStateName(HealthState state);

// Asks the server at `address` for the health of `service` ("" is the
// server as a whole) within `timeout`. NotFound if the server does not know
// `service`; Unavailable or DeadlineExceeded if it cannot be reached;
// FailedPrecondition if the reply is malformed.
absl::StatusOr<HealthState> CheckHealth(const std::string& address,
                                        const std::string& service,
                                        absl::Duration timeout);

}  // namespace tandem

#endif  // TANDEM_ROUTER_ROUTER_CLIENT_H_
