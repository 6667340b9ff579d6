// Probes of the standard services every Tandem server exposes, for
// cross-process tests: gRPC health checking (grpc.health.v1.Health/Check)
// and server reflection (grpc.reflection.v1alpha). Debian ships neither
// service's generated client, so the probes send the few protobuf bytes
// they need by hand over a generic stub.
//
// Thread-safe: each call uses its own context and completion queue.
#ifndef TANDEM_TESTS_GRPC_PROBE_H_
#define TANDEM_TESTS_GRPC_PROBE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tandem::testing {

// grpc.health.v1.HealthCheckResponse.ServingStatus values.
enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2 };

// Asks the server at `address` for the health of `service` ("" for the
// server as a whole). The gRPC error as a Status if the call fails (NotFound
// for an unknown service); InvalidArgument if the reply does not parse.
absl::StatusOr<ServingStatus> CheckHealth(const std::string& address,
                                          absl::string_view service,
                                          absl::Duration timeout);

// The fully qualified names of the services the server at `address` lists
// through reflection. The gRPC error as a Status if the call fails.
absl::StatusOr<std::vector<std::string>> ListServices(
    const std::string& address, absl::Duration timeout);

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_GRPC_PROBE_H_
