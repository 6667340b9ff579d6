// Starting a Tandem gRPC server: every binary serves the standard health
// service and server reflection besides its own services, and may listen on
// port 0 to let the kernel pick a free port.
#ifndef TANDEM_SERVICE_SERVER_H_
#define TANDEM_SERVICE_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem {

struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;         // the port actually bound
  std::string address;  // host:port with that port
};

// Builds and starts a server on `listen` (host:port; port 0 picks a free
// one) with `services` (not owned; they must outlive the server), the
// default health service set to SERVING, and reflection. Messages up to
// `max_message_bytes` are accepted. Unavailable if the address cannot be
// bound; InvalidArgument if `listen` has no port.
absl::StatusOr<StartedServer> StartServer(
    const std::string& listen, const std::vector<grpc::Service*>& services,
    int max_message_bytes = 64 << 20);

// Writes "host:port\n" to `path` atomically (temp file then rename), so a
// supervisor or test can learn a port picked by the kernel. An empty path
// does nothing.
absl::Status WriteAddressFile(const std::string& path,
                              const std::string& address);

}  // namespace tandem

#endif  // TANDEM_SERVICE_SERVER_H_
