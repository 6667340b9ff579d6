#include "tests/grpc_probe.h"

#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace tandem::testing {
namespace {

using ::google::protobuf::internal::WireFormatLite;

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

// A message with one length-delimited field `field` holding `value`.
grpc::ByteBuffer StringFieldMessage(int field, absl::string_view value) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    WireFormatLite::WriteString(field, std::string(value), &out);
  }
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
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

// Visits each field of a serialized message: `on_field(number, wire_type,
// input)` must consume the value. InvalidArgument if it does not parse.
template <typename OnField>
absl::Status ForEachField(absl::string_view message, OnField on_field) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(message.data()),
      static_cast<int>(message.size()));
  while (uint32_t tag = in.ReadTag()) {
    if (!on_field(WireFormatLite::GetTagFieldNumber(tag),
                  WireFormatLite::GetTagWireType(tag), tag, &in)) {
      return absl::InvalidArgumentError("reply does not parse");
    }
  }
  return absl::OkStatus();
}

// The values of every length-delimited field `number` of `message`.
absl::StatusOr<std::vector<std::string>> StringFields(absl::string_view message,
                                                      int number) {
  std::vector<std::string> values;
  absl::Status status = ForEachField(
      message, [&](int field, WireFormatLite::WireType type, uint32_t tag,
                   google::protobuf::io::CodedInputStream* in) {
        if (field != number ||
            type != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
          return WireFormatLite::SkipField(in, tag);
        }
        std::string value;
        if (!WireFormatLite::ReadString(in, &value)) return false;
        values.push_back(std::move(value));
        return true;
      });
  if (!status.ok()) return status;
  return values;
}

// Waits for the next event of `cq`, the only one outstanding.
bool Await(grpc::CompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  return cq->Next(&tag, &ok) && ok;
}

// Shuts `cq` down and takes out what is left, as its destructor requires.
void Drain(grpc::CompletionQueue* cq) {
  cq->Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) {
  }
}

}  // namespace

absl::StatusOr<ServingStatus> CheckHealth(const std::string& address,
                                          absl::string_view service,
                                          absl::Duration timeout) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::CompletionQueue cq;
  // HealthCheckRequest { string service = 1; }
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check",
                                    StringFieldMessage(1, service), &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, nullptr);
  Await(&cq);
  Drain(&cq);
  if (!status.ok()) return FromGrpc(status);
  // HealthCheckResponse { ServingStatus status = 1; }
  uint64_t serving = 0;
  absl::Status parsed = ForEachField(
      Flatten(reply),
      [&](int field, WireFormatLite::WireType type, uint32_t tag,
          google::protobuf::io::CodedInputStream* in) {
        if (field == 1 && type == WireFormatLite::WIRETYPE_VARINT) {
          return in->ReadVarint64(&serving);
        }
        return WireFormatLite::SkipField(in, tag);
      });
  if (!parsed.ok()) return parsed;
  return static_cast<ServingStatus>(serving);
}

absl::StatusOr<std::vector<std::string>> ListServices(
    const std::string& address, absl::Duration timeout) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &context,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  grpc::ByteBuffer reply;
  // ServerReflectionRequest { string list_services = 7; }
  const bool exchanged = [&] {
    call->StartCall(nullptr);
    if (!Await(&cq)) return false;
    call->Write(StringFieldMessage(7, ""), nullptr);
    if (!Await(&cq)) return false;
    call->Read(&reply, nullptr);
    if (!Await(&cq)) return false;
    call->WritesDone(nullptr);
    return Await(&cq);
  }();
  grpc::Status status;
  call->Finish(&status, nullptr);
  Await(&cq);
  Drain(&cq);
  if (!status.ok()) return FromGrpc(status);
  if (!exchanged) return absl::UnknownError("reflection stream broke");
  // ServerReflectionResponse { ListServiceResponse list_services_response =
  // 6; }, ListServiceResponse { repeated ServiceResponse service = 1; },
  // ServiceResponse { string name = 1; }.
  std::vector<std::string> names;
  absl::StatusOr<std::vector<std::string>> lists =
      StringFields(Flatten(reply), 6);
  if (!lists.ok()) return lists.status();
  for (const std::string& list : *lists) {
    absl::StatusOr<std::vector<std::string>> services = StringFields(list, 1);
    if (!services.ok()) return services.status();
    for (const std::string& service : *services) {
      absl::StatusOr<std::vector<std::string>> name = StringFields(service, 1);
      if (!name.ok()) return name.status();
      names.insert(names.end(), name->begin(), name->end());
    }
  }
  return names;
}

}  // namespace tandem::testing
