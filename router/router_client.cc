#include "router/router_client.h"

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"
#include "router/api_key.h"
#include "service/grpc_status.h"

namespace tandem {
namespace {

// grpc.health.v1.HealthCheckRequest { string service = 1; }, encoded.
std::string EncodeHealthRequest(const std::string& service) {
  if (service.empty()) return "";
  std::string out = "\x0a";
  for (uint64_t n = service.size();; n >>= 7) {
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  return out + service;
}

// The status field of a grpc.health.v1.HealthCheckResponse: its only
// field, 1, a varint enum. Absent means UNKNOWN.
absl::StatusOr<HealthState> DecodeHealthResponse(std::string_view bytes) {
  if (bytes.empty()) return HealthState::kUnknown;
  if (bytes.size() != 2 || bytes[0] != '\x08' || (bytes[1] & 0x80) != 0) {
    return absl::FailedPreconditionError("malformed health check reply");
  }
  switch (bytes[1]) {
    case 1:
      return HealthState::kServing;
    case 2:
      return HealthState::kNotServing;
    case 3:
      return HealthState::kServiceUnknown;
    default:
      return HealthState::kUnknown;
  }
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& slice : slices) {
    out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return out;
}

}  // namespace

std::unique_ptr<v1::Router::Stub> NewRouterStub(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return v1::Router::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), args));
}

void SetApiKey(grpc::ClientContext& context, const std::string& api_key) {
  if (!api_key.empty()) {
    context.AddMetadata(kAuthorizationMetadata, BearerValue(api_key));
  }
}

absl::Status StreamGenerate(
    v1::Router::StubInterface& stub, const v1::GenerateRequest& request,
    absl::FunctionRef<absl::Status(const v1::GenerateResponse&)> on_reply,
    absl::Duration timeout, const std::string& api_key) {
  grpc::ClientContext context;
  if (timeout != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  SetApiKey(context, api_key);
  std::unique_ptr<grpc::ClientReaderInterface<v1::GenerateResponse>> reader =
      stub.Generate(&context, request);
  v1::GenerateResponse reply;
  absl::Status handled;
  while (handled.ok() && reader->Read(&reply)) handled = on_reply(reply);
  if (!handled.ok()) {
    context.TryCancel();
    while (reader->Read(&reply)) {
    }
  }
  const grpc::Status status = reader->Finish();
  if (!handled.ok()) return handled;
  return FromGrpcStatus(status);
}

const char* HealthStateName(HealthState state) {
  switch (state) {
    case HealthState::kServing:
      return "SERVING";
    case HealthState::kNotServing:
      return "NOT_SERVING";
    case HealthState::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    default:
      return "UNKNOWN";
  }
}

absl::StatusOr<HealthState> CheckHealth(const std::string& address,
                                        const std::string& service,
                                        absl::Duration timeout) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  const std::string encoded = EncodeHealthRequest(service);
  grpc::Slice slice(encoded);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status result) {
                   status = std::move(result);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpcStatus(status);
  return DecodeHealthResponse(Flatten(response));
}

}  // namespace tandem
