#include "router/openai_api.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "proto/generate.grpc.pb.h"
#include "router/api_key.h"
#include "router/generate_stream.h"
#include "router/openai_json.h"
#include "service/grpc_status.h"

namespace tandem {
namespace {

using nlohmann::json;

constexpr char kJson[] = "application/json";
constexpr char kDone[] = "data: [DONE]\n\n";

void SendJson(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(DumpJson(body) + "\n", kJson);
}

void SendError(httplib::Response& response, const absl::Status& status) {
  SendJson(response, HttpStatusFor(status.code()), ErrorJson(status));
}

std::string Event(const json& body) {
  return absl::StrCat("data: ", DumpJson(body), "\n\n");
}

// What every handler shares; lives as long as the server's routes.
class OpenAiApi {
 public:
  explicit OpenAiApi(const OpenAiApiOptions& options)
      : options_(options),
        stub_(v1::Router::NewStub(options.channel)),
        created_(absl::ToUnixSeconds(absl::Now())) {}

  void Completions(const httplib::Request& request,
                   httplib::Response& response);
  void Models(const httplib::Request& request, httplib::Response& response);

 private:
  // Unauthenticated unless the request's Authorization header carries the
  // key. The value to forward to the gRPC call: "Bearer <key>", or empty
  // when no key is required.
  absl::StatusOr<std::string> Authorize(const httplib::Request& request) const;
  std::string NewRequestId();
  void Stream(std::shared_ptr<GenerateStream> call,
              std::unique_ptr<CompletionBuilder> builder, bool include_usage,
              httplib::Response& response);

  const OpenAiApiOptions options_;
  const std::unique_ptr<v1::Router::Stub> stub_;
  const int64_t created_;  // shown as the model's creation time
  absl::Mutex mu_;
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::string> OpenAiApi::Authorize(
    const httplib::Request& request) const {
  if (options_.api_key.empty()) return std::string();
  std::optional<absl::string_view> header;
  std::string value;
  if (request.has_header("Authorization")) {
    value = request.get_header_value("Authorization");
    header = value;
  }
  absl::Status status = CheckAuthorization(header, options_.api_key);
  if (!status.ok()) return status;
  return BearerValue(options_.api_key);
}

std::string OpenAiApi::NewRequestId() {
  absl::MutexLock lock(&mu_);
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(random_));
}

void OpenAiApi::Completions(const httplib::Request& request,
                            httplib::Response& response) {
  absl::StatusOr<std::string> authorization = Authorize(request);
  if (!authorization.ok()) return SendError(response, authorization.status());
  absl::StatusOr<CompletionRequest> parsed =
      ParseCompletionRequest(request.body);
  if (!parsed.ok()) return SendError(response, parsed.status());
  const std::string id = NewRequestId();
  parsed->generate.set_request_id(id);
  auto builder = std::make_unique<CompletionBuilder>(
      absl::StrCat("cmpl-", id), absl::ToUnixSeconds(absl::Now()),
      options_.model_id, parsed->generate.logprobs() >= 0);
  auto call = std::make_shared<GenerateStream>(
      *stub_, std::move(parsed->generate), *authorization);
  if (parsed->stream) {
    return Stream(std::move(call), std::move(builder), parsed->include_usage,
                  response);
  }
  v1::GenerateResponse reply;
  absl::Status status;
  while (call->Next(absl::InfiniteDuration(), &reply, &status) ==
         GenerateStream::Event::kReply) {
    builder->Add(reply);
  }
  if (!status.ok()) return SendError(response, status);
  SendJson(response, 200, builder->Completion());
}

// A streamed completion after its first reply: the chunked body's state.
struct EventStream {
  std::shared_ptr<GenerateStream> call;
  std::unique_ptr<CompletionBuilder> chunks;
  v1::GenerateResponse first;
  bool include_usage = false;
  absl::Duration heartbeat;

  // Writes the whole stream to `sink`; false if the client went away (the
  // call is then cancelled).
  bool Pump(httplib::DataSink& sink);
};

bool EventStream::Pump(httplib::DataSink& sink) {
  std::string out = Event(chunks->Chunk(first));
  v1::GenerateResponse reply;
  absl::Status end;
  for (bool more = true; more;) {
    if (!out.empty() && !sink.write(out.data(), out.size())) {
      call->Cancel();
      return false;
    }
    switch (call->Next(heartbeat, &reply, &end)) {
      case GenerateStream::Event::kReply:
        out = Event(chunks->Chunk(reply));
        break;
      case GenerateStream::Event::kTimeout:
        out = ": keep-alive\n\n";
        break;
      case GenerateStream::Event::kEnd:
        more = false;
        break;
    }
  }
  if (!end.ok()) {
    out = Event(ErrorJson(end));
  } else {
    out = include_usage ? Event(chunks->UsageChunk()) : "";
  }
  out += kDone;
  if (!sink.write(out.data(), out.size())) return false;
  sink.done();
  return true;
}

// Waits for the first reply, so that a request the router rejects gets an
// HTTP error status, then streams: one `data:` event per reply, a comment
// line after each quiet `stream_heartbeat`, and `data: [DONE]`. An error
// after the first reply becomes a last `data: {"error":...}` event.
void OpenAiApi::Stream(std::shared_ptr<GenerateStream> call,
                       std::unique_ptr<CompletionBuilder> builder,
                       bool include_usage, httplib::Response& response) {
  auto stream = std::make_shared<EventStream>();
  absl::Status status;
  if (call->Next(absl::InfiniteDuration(), &stream->first, &status) ==
      GenerateStream::Event::kEnd) {
    if (status.ok()) status = absl::InternalError("the router sent no reply");
    return SendError(response, status);
  }
  stream->call = std::move(call);
  stream->chunks = std::move(builder);
  stream->include_usage = include_usage;
  stream->heartbeat = options_.stream_heartbeat;
  response.set_header("Cache-Control", "no-cache");
  response.set_chunked_content_provider(
      "text/event-stream",
      [stream](size_t /*offset*/, httplib::DataSink& sink) {
        return stream->Pump(sink);
      });
}

void OpenAiApi::Models(const httplib::Request& request,
                       httplib::Response& response) {
  absl::StatusOr<std::string> authorization = Authorize(request);
  if (!authorization.ok()) return SendError(response, authorization.status());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (!authorization->empty()) {
    context.AddMetadata(kAuthorizationMetadata, *authorization);
  }
  v1::ListModelsResponse models;
  const grpc::Status status =
      stub_->ListModels(&context, v1::ListModelsRequest(), &models);
  if (!status.ok()) return SendError(response, FromGrpcStatus(status));
  json data = json::array();
  for (const v1::ModelInfo& model : models.models()) {
    json entry = {{"id", model.id()},
                  {"object", "model"},
                  {"created", created_},
                  {"owned_by", "tandem"},
                  {"max_model_len", model.max_context()}};
    // GET /v1/models/{id}: that model alone.
    if (request.matches.size() > 1 && request.matches[1] == model.id()) {
      return SendJson(response, 200, entry);
    }
    data.push_back(std::move(entry));
  }
  if (request.matches.size() > 1) {
    return SendError(response, absl::NotFoundError(absl::StrCat(
                                   "model '", request.matches[1].str(),
                                   "' is not served here (serving '",
                                   options_.model_id, "')")));
  }
  SendJson(response, 200, {{"object", "list"}, {"data", std::move(data)}});
}

// OpenAI's error body for replies httplib makes itself (no route, a body
// too large, a malformed request) and for the 405s below.
httplib::Server::HandlerResponse DefaultError(const httplib::Request& request,
                                              httplib::Response& response,
                                              size_t max_body_bytes) {
  if (!response.body.empty()) {
    return httplib::Server::HandlerResponse::Unhandled;
  }
  std::string message;
  std::string type = "invalid_request_error";
  switch (response.status) {
    case 404:
      message =
          absl::StrCat("no route for ", request.method, " ", request.path);
      break;
    case 405:
      message =
          absl::StrCat(request.method, " is not allowed on ", request.path);
      break;
    case 413:
      message = absl::StrCat("the request body is larger than ", max_body_bytes,
                             " bytes");
      break;
    default:
      message = absl::StrCat("HTTP status ", response.status);
      if (response.status >= 500) type = "server_error";
  }
  json body = {{"error",
                {{"message", message},
                 {"type", type},
                 {"param", nullptr},
                 {"code", nullptr}}}};
  response.set_content(DumpJson(body) + "\n", kJson);
  return httplib::Server::HandlerResponse::Handled;
}

}  // namespace

void AddOpenAiRoutes(httplib::Server& server, const OpenAiApiOptions& options) {
  auto api = std::make_shared<OpenAiApi>(options);
  server.Post("/v1/completions", [api](const httplib::Request& request,
                                       httplib::Response& response) {
    api->Completions(request, response);
  });
  const auto models = [api](const httplib::Request& request,
                            httplib::Response& response) {
    api->Models(request, response);
  };
  server.Get("/v1/models", models);
  server.Get("/v1/models/(.+)", models);

  const auto not_allowed = [](const char* allowed) {
    return [allowed](const httplib::Request&, httplib::Response& response) {
      response.status = 405;
      response.set_header("Allow", allowed);
    };
  };
  server.Get("/v1/completions", not_allowed("POST"));
  for (const char* path : {"/v1/models", "/v1/models/(.+)"}) {
    server.Post(path, not_allowed("GET"));
  }
  for (const auto& [path, allowed] :
       {std::pair{"/v1/completions", "POST"}, std::pair{"/v1/models", "GET"},
        std::pair{"/v1/models/(.+)", "GET"}}) {
    server.Put(path, not_allowed(allowed));
    server.Patch(path, not_allowed(allowed));
    server.Delete(path, not_allowed(allowed));
  }
  const size_t max_body = options.max_body_bytes;
  server.set_payload_max_length(max_body);
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [max_body](const httplib::Request& request, httplib::Response& response) {
        return DefaultError(request, response, max_body);
      }));
}

}  // namespace tandem
