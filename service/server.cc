#include "service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace tandem {

absl::StatusOr<StartedServer> StartServer(
    const std::string& listen, const std::vector<grpc::Service*>& services,
    int max_message_bytes) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", listen, "' has no port"));
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  StartedServer started;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(),
                           &started.port);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  started.server = builder.BuildAndStart();
  if (started.server == nullptr || started.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }
  started.address = absl::StrCat(listen.substr(0, colon), ":", started.port);
  started.server->GetHealthCheckService()->SetServingStatus(true);
  return started;
}

absl::Status WriteAddressFile(const std::string& path,
                              const std::string& address) {
  if (path.empty()) return absl::OkStatus();
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << address << "\n";
    if (!out.flush()) {
      return absl::UnavailableError(absl::StrCat("cannot write ", temp));
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", temp, " to ",
                                               path, ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace tandem
