// Conversion between absl::Status and grpc::Status. Tandem's code speaks
// absl::Status; these run only at a service's edge.
#ifndef TANDEM_SERVICE_GRPC_STATUS_H_
#define TANDEM_SERVICE_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tandem {

// The codes have the same numbers in both; the message is kept.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace tandem

#endif  // TANDEM_SERVICE_GRPC_STATUS_H_
