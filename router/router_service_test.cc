// The router in-process against scripted workers (fake_workers.h): relaying,
// usage, validation before any worker call, placement failures, overload,
// cancellation and deadline propagation, worker failures, membership.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/fake_workers.h"
#include "router/router_client.h"
#include "router/router_over_fakes_test.h"
#include "router/router_server.h"
#include "tests/test_model.h"

namespace tandem {
namespace {

using ::testing::ElementsAre;
using testing::FakeDecodeWorker;
using ::testing::HasSubstr;

struct Stream {
  absl::Status status;
  std::vector<v1::GenerateResponse> replies;
  std::vector<int32_t> tokens;
  std::string text;
};

class RouterServiceTest : public testing::RouterOverFakesTest {
 protected:
  // Starts the router with both fakes listed statically.
  void StartRouter(int max_inflight = 16, bool with_decode = true,
                   absl::Duration worker_expiry = absl::Seconds(3)) {
    RouterOptions options = FakeOptions(with_decode);
    options.worker_expiry = worker_expiry;
    options.max_inflight = max_inflight;
    options.poll_interval = absl::Milliseconds(100);
    StartRouterWith(options);
    if (router_ != nullptr) stub_ = NewRouterStub(router_->address());
  }

  Stream Generate(const v1::GenerateRequest& request,
                  absl::Duration timeout = absl::Seconds(20)) {
    Stream stream;
    stream.status = StreamGenerate(
        *stub_, request,
        [&](const v1::GenerateResponse& reply) {
          stream.replies.push_back(reply);
          stream.tokens.insert(stream.tokens.end(), reply.token_ids().begin(),
                               reply.token_ids().end());
          stream.text += reply.text();
          return absl::OkStatus();
        },
        timeout);
    return stream;
  }

  static v1::GenerateRequest Text(const std::string& text, int max_tokens) {
    v1::GenerateRequest request;
    request.set_text(text);
    request.set_max_tokens(max_tokens);
    return request;
  }

  std::unique_ptr<v1::Router::Stub> stub_;
};

TEST_F(RouterServiceTest, RelaysTheDecodeStreamWithUsage) {
  StartRouter();
  v1::GenerateRequest request = Text("Hi", 4);
  request.set_request_id("r1");
  const Stream stream = Generate(request);
  ASSERT_TRUE(stream.status.ok()) << stream.status;
  // The fake prefill samples prompt[0] + 1 = BOS + 1; decode counts up.
  const int first = testing::kTestBos + 1;
  EXPECT_THAT(stream.tokens,
              ElementsAre(first, first + 1, first + 2, first + 3));
  EXPECT_EQ(stream.text, "abcd");
  for (const v1::GenerateResponse& reply : stream.replies) {
    EXPECT_EQ(reply.request_id(), "r1");
  }
  const v1::GenerateResponse& last = stream.replies.back();
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().prompt_tokens(), 3);
  EXPECT_EQ(last.usage().completion_tokens(), 4);
  EXPECT_GT(last.usage().time_to_first_token_ms(), 0.0);
  EXPECT_NE(last.usage().seed(), 0u);
}

TEST_F(RouterServiceTest, WorkersGetKeysSeedAndStopConditions) {
  StartRouter();
  v1::GenerateRequest request = Text(std::string(40, 'x'), 3);
  request.mutable_sampling()->set_seed(77);
  request.mutable_sampling()->set_temperature(0.5);
  request.add_stop("zz");
  request.add_stop_token_ids(9);
  request.set_logprobs(2);
  const Stream stream = Generate(request);
  ASSERT_TRUE(stream.status.ok()) << stream.status;
  EXPECT_EQ(stream.replies.back().usage().seed(), 77u);

  const v1::PrefillRequest prefill = prefill_.last_request();
  EXPECT_EQ(prefill.prompt_token_ids_size(), 41);
  EXPECT_EQ(prefill.block_keys_size(), 41 / testing::kFakeBlockSize);
  EXPECT_EQ(prefill.cached_blocks_hint(), 0);  // no store configured
  EXPECT_EQ(prefill.sampling().seed(), 77u);
  EXPECT_FLOAT_EQ(prefill.sampling().temperature(), 0.5f);
  EXPECT_EQ(prefill.logprobs(), 2);

  const v1::DecodeRequest decode = decode_.last_request();
  EXPECT_EQ(decode.first_token(), testing::kTestBos + 1);
  EXPECT_EQ(decode.handoff().block_size(), testing::kFakeBlockSize);
  EXPECT_EQ(decode.max_tokens(), 3);
  EXPECT_THAT(decode.stop(), ElementsAre("zz"));
  EXPECT_THAT(decode.stop_token_ids(), ElementsAre(9));
  EXPECT_EQ(decode.sampling().seed(), 77u);
  EXPECT_EQ(decode.prompt_token_ids_size(), 41);
}

TEST_F(RouterServiceTest, BadRequestsGetTheirCodeAndNeverReachAWorker) {
  StartRouter();
  struct Case {
    v1::GenerateRequest request;
    absl::StatusCode code;
    const char* field;
  };
  std::vector<Case> cases;
  cases.push_back(
      {v1::GenerateRequest(), absl::StatusCode::kInvalidArgument, "prompt"});
  cases.push_back(
      {Text("a", 200), absl::StatusCode::kInvalidArgument, "max_tokens"});
  cases.push_back({Text(std::string(200, 'a'), 1),
                   absl::StatusCode::kInvalidArgument, "prompt has"});
  v1::GenerateRequest bad = Text("a", 1);
  bad.mutable_sampling()->set_top_p(2);
  cases.push_back({bad, absl::StatusCode::kInvalidArgument, "top_p"});
  bad = Text("a", 1);
  bad.set_logprobs(50);
  cases.push_back({bad, absl::StatusCode::kInvalidArgument, "logprobs"});
  bad = Text("a", 1);
  bad.set_model("other");
  cases.push_back({bad, absl::StatusCode::kNotFound, "other"});
  for (const Case& c : cases) {
    const Stream stream = Generate(c.request);
    EXPECT_EQ(stream.status.code(), c.code) << stream.status;
    EXPECT_THAT(stream.status.message(), HasSubstr(c.field));
    EXPECT_TRUE(stream.replies.empty());
  }
  EXPECT_EQ(prefill_.calls(), 0);
  EXPECT_EQ(decode_.calls(), 0);
}

TEST_F(RouterServiceTest, NoDecodeWorkerIsUnavailable) {
  StartRouter(16, /*with_decode=*/false);
  const Stream stream = Generate(Text("a", 2));
  EXPECT_EQ(stream.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(stream.status.message(), HasSubstr("decode worker"));
  EXPECT_EQ(prefill_.calls(), 0);
}

TEST_F(RouterServiceTest, RequestsBeyondMaxInflightAreResourceExhausted) {
  StartRouter(/*max_inflight=*/1);
  decode_.set_mode(FakeDecodeWorker::Mode::kHangAfterFirst);
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Text("a", 5));
  v1::GenerateResponse reply;
  ASSERT_TRUE(reader->Read(&reply));  // the first call holds the only slot
  const Stream second = Generate(Text("b", 2));
  EXPECT_EQ(second.status.code(), absl::StatusCode::kResourceExhausted);
  context.TryCancel();
  while (reader->Read(&reply)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(RouterServiceTest, ClientCancelCancelsTheDecodeCall) {
  StartRouter();
  decode_.set_mode(FakeDecodeWorker::Mode::kHangAfterFirst);
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Text("a", 5));
  v1::GenerateResponse reply;
  ASSERT_TRUE(reader->Read(&reply));
  EXPECT_EQ(decode_.active(), 1);
  context.TryCancel();
  while (reader->Read(&reply)) {
  }
  reader->Finish().error_code();
  EXPECT_TRUE(decode_.AwaitCancelled(1, absl::Seconds(5)));
}

TEST_F(RouterServiceTest, ClientDeadlineReachesTheDecodeCall) {
  StartRouter();
  decode_.set_mode(FakeDecodeWorker::Mode::kHangAfterFirst);
  const Stream stream = Generate(Text("a", 5), absl::Milliseconds(500));
  EXPECT_EQ(stream.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(stream.tokens.size(), 1u);
  EXPECT_TRUE(decode_.AwaitCancelled(1, absl::Seconds(5)));
}

TEST_F(RouterServiceTest, DecodeFailureMidStreamIsUnavailable) {
  StartRouter();
  decode_.set_mode(FakeDecodeWorker::Mode::kFailAfterFirst);
  const Stream stream = Generate(Text("a", 5));
  EXPECT_EQ(stream.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(stream.tokens.size(), 1u);
}

TEST_F(RouterServiceTest, DecodeWorkerShutdownMidStreamIsUnavailable) {
  StartRouter();
  decode_.set_mode(FakeDecodeWorker::Mode::kHangAfterFirst);
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, Text("a", 5));
  v1::GenerateResponse reply;
  ASSERT_TRUE(reader->Read(&reply));
  decode_server_.server->Shutdown(std::chrono::system_clock::now());
  decode_server_.server.reset();
  while (reader->Read(&reply)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(RouterServiceTest, PrefillErrorsMapToClientCodes) {
  StartRouter();
  prefill_.FailWith(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "full"));
  EXPECT_EQ(Generate(Text("a", 2)).status.code(),
            absl::StatusCode::kResourceExhausted);
  prefill_.FailWith(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bug"));
  EXPECT_EQ(Generate(Text("a", 2)).status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(decode_.calls(), 0);
}

TEST_F(RouterServiceTest, TokenizeAndListModels) {
  StartRouter();
  grpc::ClientContext tokenize_context;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Hi");
  tokenize.set_add_special_tokens(true);
  v1::TokenizeResponse tokens;
  ASSERT_TRUE(stub_->Tokenize(&tokenize_context, tokenize, &tokens).ok());
  EXPECT_THAT(tokens.token_ids(), ElementsAre(testing::kTestBos, 'H', 'i'));

  grpc::ClientContext unknown_context;
  tokenize.set_model("other");
  EXPECT_EQ(stub_->Tokenize(&unknown_context, tokenize, &tokens).error_code(),
            grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(
      stub_->ListModels(&list_context, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).id(), "tiny");
  EXPECT_EQ(models.models(0).max_context(), 128);
  EXPECT_EQ(models.models(0).vocab_size(), 258);
  EXPECT_EQ(models.models(0).prefill_workers(), 1);
  EXPECT_EQ(models.models(0).decode_workers(), 1);
}

TEST_F(RouterServiceTest, HeartbeatsRegisterWorkersOfTheServedModel) {
  StartRouter(16, /*with_decode=*/false);
  auto membership = v1::Membership::NewStub(grpc::CreateChannel(
      router_->address(), grpc::InsecureChannelCredentials()));
  v1::HeartbeatRequest beat;
  beat.set_worker_id("decode-1");
  beat.set_address(decode_server_.address);
  *beat.mutable_load() = testing::FakeLoad(v1::WORKER_KIND_DECODE);
  beat.mutable_load()->set_model("elsewhere");
  v1::HeartbeatResponse response;
  {
    grpc::ClientContext context;
    EXPECT_EQ(membership->Heartbeat(&context, beat, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  beat.mutable_load()->set_model(model_dir_->string());
  {
    grpc::ClientContext context;
    ASSERT_TRUE(membership->Heartbeat(&context, beat, &response).ok());
  }
  EXPECT_EQ(response.expiry_seconds(), 3);
  const Stream stream = Generate(Text("a", 2));
  EXPECT_TRUE(stream.status.ok()) << stream.status;
  EXPECT_EQ(decode_.calls(), 1);
}

TEST_F(RouterServiceTest, HungDecodeWorkerThatStopsHeartbeatsFailsTheStream) {
  // The prefill worker is polled every 100ms; the decode worker sends one
  // heartbeat and then hangs mid-stream, as a stuck host would.
  StartRouter(16, /*with_decode=*/false, absl::Milliseconds(500));
  decode_.set_mode(FakeDecodeWorker::Mode::kHangAfterFirst);
  auto membership = v1::Membership::NewStub(grpc::CreateChannel(
      router_->address(), grpc::InsecureChannelCredentials()));
  v1::HeartbeatRequest beat;
  beat.set_worker_id("decode-1");
  beat.set_address(decode_server_.address);
  *beat.mutable_load() = testing::FakeLoad(v1::WORKER_KIND_DECODE);
  v1::HeartbeatResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(membership->Heartbeat(&context, beat, &response).ok());

  const absl::Time start = absl::Now();
  const Stream stream = Generate(Text("a", 5));
  EXPECT_EQ(stream.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(stream.status.message(), HasSubstr("left rotation"));
  EXPECT_EQ(stream.tokens.size(), 1u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(decode_.AwaitCancelled(1, absl::Seconds(5)));
}

TEST_F(RouterServiceTest, RouterHealthFollowsWorkerAvailability) {
  StartRouter(16, /*with_decode=*/false);
  absl::StatusOr<HealthState> health =
      CheckHealth(router_->address(), kRouterHealthService, absl::Seconds(5));
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthState::kNotServing);
  EXPECT_EQ(*CheckHealth(router_->address(), "", absl::Seconds(5)),
            HealthState::kServing);
  EXPECT_EQ(CheckHealth(router_->address(), "no.such.Service", absl::Seconds(5))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem
