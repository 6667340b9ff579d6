// The router's OpenAI-compatible HTTP API against scripted workers
// (fake_workers.h), spoken to over real HTTP with httplib::Client:
// completions whole and streamed, logprobs, models, every error shape, API
// keys on HTTP and gRPC, and cancellation when a streaming client leaves.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "router/fake_workers.h"
#include "router/router_client.h"
#include "router/router_over_fakes_test.h"
#include "router/router_server.h"
#include "tests/test_model.h"

namespace tandem {
namespace {

using nlohmann::json;
using testing::FakeDecodeWorker;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kKey[] = "s3cret-key";

// A reply: status, headers and the body parsed as JSON (null if it is not).
struct Reply {
  int status = 0;
  std::string content_type;
  std::string body;
  json json_body;
};

// The `data:` payloads of a server-sent event stream, in order.
std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> data;
  for (absl::string_view event : absl::StrSplit(body, "\n\n")) {
    if (absl::ConsumePrefix(&event, "data: ")) data.emplace_back(event);
  }
  return data;
}

class OpenAiApiTest : public testing::RouterOverFakesTest {
 protected:
  void TearDown() override {
    client_.reset();
    RouterOverFakesTest::TearDown();
  }

  void StartRouter(const std::string& api_key = "", bool with_decode = true) {
    RouterOptions options = FakeOptions(with_decode);
    options.http_listen = "127.0.0.1:0";
    options.http_stream_heartbeat = absl::Milliseconds(20);
    options.api_key = api_key;
    options.poll_interval = absl::Milliseconds(50);
    StartRouterWith(options);
    if (router_ == nullptr) return;
    const std::string& address = router_->http_address();
    client_ = std::make_unique<httplib::Client>(
        "127.0.0.1", std::stoi(address.substr(address.rfind(':') + 1)));
    client_->set_read_timeout(20, 0);
    // Wait until both fakes are in rotation.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (with_decode && !router_->ready() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  static Reply ToReply(const httplib::Result& result) {
    Reply reply;
    if (!result) return reply;
    reply.status = result->status;
    reply.content_type = result->get_header_value("Content-Type");
    reply.body = result->body;
    reply.json_body = json::parse(result->body, nullptr, false);
    return reply;
  }

  Reply Post(const std::string& body, const std::string& key = "",
             const std::string& path = "/v1/completions") {
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
    return ToReply(client_->Post(path, headers, body, "application/json"));
  }

  Reply Get(const std::string& path, const std::string& key = "") {
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
    return ToReply(client_->Get(path, headers));
  }

  // Asserts an OpenAI error body with this status, type and param.
  static void ExpectError(const Reply& reply, int status, const char* type,
                          const json& param) {
    EXPECT_EQ(reply.status, status) << reply.body;
    EXPECT_EQ(reply.content_type, "application/json");
    const json& error = reply.json_body["error"];
    ASSERT_TRUE(error.is_object()) << reply.body;
    EXPECT_TRUE(error["message"].is_string()) << reply.body;
    EXPECT_FALSE(error["message"].get<std::string>().empty());
    EXPECT_EQ(error["type"], type) << reply.body;
    EXPECT_EQ(error["param"], param) << reply.body;
    EXPECT_TRUE(error.contains("code")) << reply.body;
  }

  std::unique_ptr<httplib::Client> client_;
};

TEST_F(OpenAiApiTest, CompletionCarriesTextUsageAndTheLoggedRequestId) {
  StartRouter();
  const Reply reply = Post(R"({"model":"tiny","prompt":"Hi","max_tokens":4,
                               "temperature":0,"user":"u1","extra":true})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.content_type, "application/json");
  const json& body = reply.json_body;
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], "tiny");
  EXPECT_TRUE(body["created"].is_number_integer());
  // The id the router logs and sends the workers is the reply's id.
  EXPECT_EQ(body["id"], "cmpl-" + decode_.last_request().request_id());
  ASSERT_EQ(body["choices"].size(), 1u);
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["text"], "abcd");
  EXPECT_EQ(choice["index"], 0);
  EXPECT_TRUE(choice["logprobs"].is_null());
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["prompt_tokens"], 3);  // BOS, 'H', 'i'
  EXPECT_EQ(body["usage"]["completion_tokens"], 4);
  EXPECT_EQ(body["usage"]["total_tokens"], 7);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(decode_.last_request().sampling().temperature(), 0.0f);
}

TEST_F(OpenAiApiTest, MaxTokensDefaultsToSixteenAndTokenPromptsWork) {
  StartRouter();
  const Reply reply = Post(R"({"prompt":[[256, 72, 105]]})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.json_body["usage"]["completion_tokens"], 16);
  EXPECT_EQ(reply.json_body["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(decode_.last_request().max_tokens(), 16);
}

TEST_F(OpenAiApiTest, StreamConcatenatesToTheWholeCompletion) {
  StartRouter();
  const std::string request =
      R"({"prompt":"Hi","max_tokens":5,"seed":42,"logprobs":1)";
  const Reply whole = Post(request + "}");
  ASSERT_EQ(whole.status, 200) << whole.body;
  const Reply streamed = Post(
      request + R"(,"stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_THAT(streamed.content_type, StartsWith("text/event-stream"));
  const std::vector<std::string> data = SseData(streamed.body);
  ASSERT_GE(data.size(), 3u) << streamed.body;
  EXPECT_EQ(data.back(), "[DONE]");
  // The include_usage chunk: no choices, the usage.
  const json usage_chunk = json::parse(data[data.size() - 2]);
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_EQ(usage_chunk["usage"], whole.json_body["usage"]);
  std::string text;
  std::vector<json> tokens;
  json last;
  for (size_t i = 0; i + 2 < data.size(); ++i) {
    last = json::parse(data[i]);
    EXPECT_EQ(last["object"], "text_completion");
    EXPECT_THAT(last["id"].get<std::string>(), StartsWith("cmpl-"));
    text += last["choices"][0]["text"].get<std::string>();
    for (const json& token : last["choices"][0]["logprobs"]["tokens"]) {
      tokens.push_back(token);
    }
    if (i + 3 < data.size())
      EXPECT_TRUE(last["choices"][0]["finish_reason"].is_null());
  }
  EXPECT_EQ(text, whole.json_body["choices"][0]["text"]);
  EXPECT_EQ(json(tokens), whole.json_body["choices"][0]["logprobs"]["tokens"]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(last["usage"]["completion_tokens"], 5);
  EXPECT_EQ(last["usage"]["total_tokens"], 8);
}

TEST_F(OpenAiApiTest, LogprobsHaveTheLegacyCompletionsShape) {
  StartRouter();
  const Reply reply = Post(R"({"prompt":"Hi","max_tokens":3,"logprobs":2})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(decode_.last_request().logprobs(), 2);
  const json& logprobs = reply.json_body["choices"][0]["logprobs"];
  EXPECT_EQ(logprobs["tokens"], json({"a", "b", "c"}));
  EXPECT_EQ(logprobs["token_logprobs"], json({-0.5, -1.5, -2.5}));
  EXPECT_EQ(logprobs["text_offset"], json({0, 1, 2}));
  ASSERT_EQ(logprobs["top_logprobs"].size(), 3u);
  EXPECT_EQ(logprobs["top_logprobs"][0], json({{"A", -1.0}, {"B", -2.0}}));
}

TEST_F(OpenAiApiTest, ModelsListsTheServedModel) {
  StartRouter();
  const Reply list = Get("/v1/models");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.json_body["object"], "list");
  ASSERT_EQ(list.json_body["data"].size(), 1u);
  const json& model = list.json_body["data"][0];
  EXPECT_EQ(model["id"], "tiny");
  EXPECT_EQ(model["object"], "model");
  EXPECT_EQ(model["owned_by"], "tandem");
  EXPECT_EQ(model["max_model_len"], 128);
  EXPECT_TRUE(model["created"].is_number_integer());
  const Reply one = Get("/v1/models/tiny");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.json_body, model);
  const Reply missing = Get("/v1/models/other");
  ExpectError(missing, 404, "invalid_request_error", "model");
  EXPECT_EQ(missing.json_body["error"]["code"], "model_not_found");
}

TEST_F(OpenAiApiTest, BadRequestsAreOpenAiErrorsNamingTheParam) {
  StartRouter();
  ExpectError(Post("{\"prompt\": "), 400, "invalid_request_error", nullptr);
  ExpectError(Post("[1, 2]"), 400, "invalid_request_error", nullptr);
  ExpectError(Post(R"({"prompt":"Hi","max_tokens":"ten"})"), 400,
              "invalid_request_error", "max_tokens");
  // Checked by the router's own validation, behind the HTTP layer.
  const Reply temperature = Post(R"({"prompt":"Hi","temperature":-1})");
  ExpectError(temperature, 400, "invalid_request_error", "temperature");
  EXPECT_THAT(temperature.json_body["error"]["message"].get<std::string>(),
              HasSubstr("temperature"));
  ExpectError(Post(R"({"prompt":"Hi","n":2})"), 400, "invalid_request_error",
              "n");
  ExpectError(Post(R"({"prompt":"Hi","echo":true})"), 400,
              "invalid_request_error", "echo");
  ExpectError(Post(R"({"prompt":["a","b"]})"), 400, "invalid_request_error",
              "prompt");
  ExpectError(Post(R"({"prompt":"Hi","stop":[""]})"), 400,
              "invalid_request_error", "stop");
  ExpectError(Post(R"({"prompt":"Hi","max_tokens":1000})"), 400,
              "invalid_request_error", "max_tokens");
  const Reply model = Post(R"({"prompt":"Hi","model":"gpt-4"})");
  ExpectError(model, 404, "invalid_request_error", "model");
  EXPECT_EQ(model.json_body["error"]["code"], "model_not_found");
  EXPECT_EQ(decode_.calls(), 0);
}

TEST_F(OpenAiApiTest, RoutingErrorsAreOpenAiErrors) {
  StartRouter();
  ExpectError(Get("/v1/nothing"), 404, "invalid_request_error", nullptr);
  const Reply get = Get("/v1/completions");
  ExpectError(get, 405, "invalid_request_error", nullptr);
  ExpectError(Post("{}", "", "/v1/models"), 405, "invalid_request_error",
              nullptr);
  const std::string huge =
      R"({"prompt":")" + std::string(5 << 20, 'x') + R"("})";
  ExpectError(Post(huge), 413, "invalid_request_error", nullptr);
  // /health keeps its own body.
  const Reply health = Get("/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.json_body["status"], "ok");
}

TEST_F(OpenAiApiTest, NoDecodeWorkerIsServiceUnavailable) {
  StartRouter("", /*with_decode=*/false);
  // Wait until the prefill worker is in rotation.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (router_->core().View().prefill.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const Reply reply = Post(R"({"prompt":"Hi"})");
  ExpectError(reply, 503, "server_error", nullptr);
  EXPECT_EQ(reply.json_body["error"]["code"], "service_unavailable");
}

TEST_F(OpenAiApiTest, WorkerFailureMidStreamIsAFinalErrorEvent) {
  StartRouter();
  decode_.set_mode(FakeDecodeWorker::Mode::kFailAfterFirst);
  const Reply reply = Post(R"({"prompt":"Hi","max_tokens":4,"stream":true})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  const std::vector<std::string> data = SseData(reply.body);
  ASSERT_GE(data.size(), 3u) << reply.body;
  EXPECT_EQ(json::parse(data[0])["choices"][0]["text"], "a");
  const json error = json::parse(data[data.size() - 2]);
  EXPECT_EQ(error["error"]["type"], "server_error") << reply.body;
  EXPECT_EQ(error["error"]["code"], "service_unavailable");
  EXPECT_EQ(data.back(), "[DONE]");
}

TEST_F(OpenAiApiTest, ClientLeavingMidStreamCancelsTheDecodeCall) {
  StartRouter();
  decode_.set_mode(FakeDecodeWorker::Mode::kHangAfterFirst);
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/completions";
  request.body = R"({"prompt":"Hi","max_tokens":8,"stream":true})";
  request.set_header("Content-Type", "application/json");
  std::string received;
  request.content_receiver = [&](const char* data, size_t size, uint64_t,
                                 uint64_t) {
    received.append(data, size);
    // Hang up once the first token arrived.
    return !absl::StrContains(received, "data: ");
  };
  const httplib::Result result = client_->send(request);
  EXPECT_FALSE(result);  // the client cancelled
  EXPECT_THAT(received, HasSubstr("\"text\":\"a\""));
  EXPECT_TRUE(decode_.AwaitCancelled(1, absl::Seconds(10)));
}

TEST_F(OpenAiApiTest, HttpNeedsTheKeyWhenOneIsSet) {
  StartRouter(kKey);
  const std::string body = R"({"prompt":"Hi","max_tokens":2})";
  for (const Reply& reply :
       {Post(body), Post(body, "wrong"), Get("/v1/models")}) {
    ExpectError(reply, 401, "authentication_error", nullptr);
    EXPECT_EQ(reply.json_body["error"]["code"], "invalid_api_key");
  }
  EXPECT_EQ(Post(body, kKey).status, 200);
  EXPECT_EQ(Get("/v1/models", kKey).status, 200);
  // Probes and scrapers need no key.
  EXPECT_EQ(Get("/health").status, 200);
  EXPECT_EQ(Get("/metrics").status, 200);
}

TEST_F(OpenAiApiTest, GrpcNeedsTheKeyWhenOneIsSet) {
  StartRouter(kKey);
  std::unique_ptr<v1::Router::Stub> stub = NewRouterStub(router_->address());
  v1::GenerateRequest request;
  request.set_text("Hi");
  request.set_max_tokens(2);
  auto ignore = [](const v1::GenerateResponse&) { return absl::OkStatus(); };
  const absl::Duration timeout = absl::Seconds(20);
  EXPECT_EQ(StreamGenerate(*stub, request, ignore, timeout).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(StreamGenerate(*stub, request, ignore, timeout, "wrong").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(StreamGenerate(*stub, request, ignore, timeout, kKey).ok());
  for (const std::string& key : {std::string(), std::string(kKey)}) {
    grpc::ClientContext list_context;
    SetApiKey(list_context, key);
    v1::ListModelsResponse models;
    EXPECT_EQ(stub->ListModels(&list_context, {}, &models).ok(), !key.empty());
    grpc::ClientContext tokenize_context;
    SetApiKey(tokenize_context, key);
    v1::TokenizeRequest tokenize;
    tokenize.set_text("Hi");
    v1::TokenizeResponse ids;
    const grpc::Status status =
        stub->Tokenize(&tokenize_context, tokenize, &ids);
    EXPECT_EQ(status.error_code(), key.empty()
                                       ? grpc::StatusCode::UNAUTHENTICATED
                                       : grpc::StatusCode::OK);
  }
}

}  // namespace
}  // namespace tandem
