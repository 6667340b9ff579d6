// The decode worker as a real `decode_node` process beside a real `kvstore`
// on loopback ports. The test plays the prefill worker: it prefills each
// prompt locally with the engine, puts the handoff blocks into the store
// and sends DecodeRequests; every stream must equal local generation
// (engine/generation.h) token for token. The model is a small random
// byte-level model with no EOS in its vocabulary (ids 0-255), so every
// stream runs to max_tokens. A fake router receives the worker's
// heartbeats.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "decode_node/local_handoff.h"
#include "engine/generation.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvstore/kvstore_client.h"
#include "kvstore/kvstore_proto.h"
#include "proto/worker.grpc.pb.h"
#include "service/server.h"
#include "tests/child_process.h"
#include "tests/grpc_probe.h"
#include "tests/test_files.h"
#include "tools/random_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::ChildProcess;
using ::testing::Contains;
using ::testing::HasSubstr;
using testing::SourceDir;

constexpr int kBlockSize = 16;

// Records the heartbeats a decode worker sends.
class FakeRouter : public v1::Membership::CallbackService {
 public:
  grpc::ServerUnaryReactor* Heartbeat(
      grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
      v1::HeartbeatResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      last_ = *request;
      ++count_;
    }
    response->set_expiry_seconds(3);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // The first heartbeat, waiting up to `timeout` for it.
  std::optional<v1::HeartbeatRequest> Wait(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto arrived = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return count_ > 0; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&arrived), timeout)) {
      return std::nullopt;
    }
    return last_;
  }

 private:
  absl::Mutex mu_;
  v1::HeartbeatRequest last_ ABSL_GUARDED_BY(mu_);
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

struct Stream {
  std::vector<int32_t> tokens;
  std::string text;
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  std::vector<v1::DecodeResponse> replies;
  grpc::Status status;
};

std::unique_ptr<ChildProcess> Start(const char* binary,
                                    std::vector<std::string> args) {
  args.push_back("--listen=127.0.0.1:0");
  auto child = ChildProcess::StartServer(binary, args, absl::Seconds(60));
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? *std::move(child) : nullptr;
}

class DecodeNodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::path(::testing::TempDir()) /
                        absl::StrCat("decode_node_test_", getpid()));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    WriteModel(*dir_ / "model");
    model_ = Model::Load(*dir_ / "model", ModelOptions{.threads = 1})
                 .value()
                 .release();
    tokenizer_ = LoadTokenizer(*dir_ / "model").value().release();
    router_ = new FakeRouter;
    router_server_ =
        new StartedServer(StartServer("127.0.0.1:0", {router_}).value());
  }

  static void TearDownTestSuite() {
    router_server_->server->Shutdown();
    delete router_server_;
    delete router_;
    delete model_;
    delete tokenizer_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  // Vocabulary 256 (bytes only): EOS (257) cannot be sampled.
  static void WriteModel(const fs::path& out) {
    RandomModelFlags flags;
    flags.out = out.string();
    flags.seed = 21;
    flags.hidden_size = 64;
    flags.intermediate_size = 128;
    flags.num_layers = 2;
    flags.num_heads = 4;
    flags.num_kv_heads = 2;
    flags.vocab_size = 256;
    flags.max_position_embeddings = 4096;
    flags.bos_token_id = -1;
    flags.eos_token_id = "";
    auto options = RandomModelOptionsFromFlags(flags);
    ASSERT_TRUE(options.ok()) << options.status();
    ASSERT_TRUE(WriteRandomModel(*options, out).ok());
    std::error_code error;
    fs::copy_file(
        SourceDir() / "engine/testdata/tokenizers/byte/tokenizer.json",
        out / "tokenizer.json", error);
    ASSERT_FALSE(error) << "set TANDEM_SOURCE_DIR: " << error.message();
  }

  void SetUp() override {
    store_ = Start(TANDEM_KVSTORE_BINARY, {"--memory_budget=64MiB"});
    ASSERT_NE(store_, nullptr);
    decode_ = StartDecode(store_->address());
    ASSERT_NE(decode_, nullptr);
    client_ = MakeClient(store_->address());
    stub_ = v1::DecodeWorker::NewStub(grpc::CreateChannel(
        decode_->address(), grpc::InsecureChannelCredentials()));
  }

  static std::unique_ptr<ChildProcess> StartDecode(const std::string& store) {
    return Start(TANDEM_DECODE_NODE_BINARY,
                 {absl::StrCat("--model=", (*dir_ / "model").string()),
                  absl::StrCat("--kvstore=", store), "--kvstore_timeout=2s",
                  absl::StrCat("--router=", router_server_->address),
                  "--threads=1", "--kv_cache_bytes=16MiB", "--max_batch=8"});
  }

  static std::unique_ptr<KvStoreClient> MakeClient(const std::string& store) {
    KvStoreClientOptions options;
    options.nodes = {store};
    options.timeout = absl::Seconds(5);
    return KvStoreClient::Create(options).value();
  }

  // Prefills `text` locally, puts its blocks into the store and returns
  // the DecodeRequest a router would send, with `handoff` set to the local
  // prefill's result.
  v1::DecodeRequest Prepare(const std::string& text,
                            const SamplingParams& sampling, int max_tokens,
                            LocalHandoff* handoff) {
    const std::vector<int32_t> prompt =
        tokenizer_->Encode(text, /*add_special_tokens=*/false).value();
    *handoff = MakeLocalHandoff(*model_, prompt, sampling, /*logprobs=*/1,
                                max_tokens, kBlockSize)
                   .value();
    std::vector<absl::string_view> blocks(handoff->blocks.begin(),
                                          handoff->blocks.end());
    for (const absl::Status& put : client_->PutMany(blocks)) {
      EXPECT_TRUE(put.ok()) << put;
    }
    return ToRequest(*handoff);
  }

  static v1::DecodeRequest ToRequest(const LocalHandoff& local) {
    const DecodeInput& input = local.input;
    v1::DecodeRequest request;
    request.set_request_id("test");
    for (int32_t id : input.prompt) request.add_prompt_token_ids(id);
    request.set_first_token(input.first_token);
    request.mutable_first_logprobs()->mutable_chosen()->set_token_id(
        local.first.token);
    request.mutable_first_logprobs()->mutable_chosen()->set_logprob(
        local.first.logprob);
    v1::Handoff* handoff = request.mutable_handoff();
    ToProto(input.handoff.model, handoff->mutable_model());
    handoff->set_block_size(input.handoff.block_size);
    handoff->set_prompt_tokens(input.prompt.size());
    for (const BlockKey& key : input.handoff.full_blocks) {
      ToProto(key, handoff->add_full_blocks());
    }
    if (input.handoff.partial_block.has_value()) {
      ToProto(*input.handoff.partial_block, handoff->mutable_partial_block());
    }
    handoff->set_next_draw(input.handoff.next_draw);
    const SamplingParams& sampling = input.sampling;
    request.mutable_sampling()->set_temperature(sampling.temperature);
    request.mutable_sampling()->set_top_k(sampling.top_k);
    request.mutable_sampling()->set_top_p(sampling.top_p);
    request.mutable_sampling()->set_repetition_penalty(
        sampling.repetition_penalty);
    request.mutable_sampling()->set_seed(sampling.seed);
    request.set_max_tokens(input.max_tokens);
    request.set_logprobs(input.logprobs ? sampling.num_logprobs : -1);
    return request;
  }

  // What local generation produces for the prepared request.
  static GenerationResult Local(const LocalHandoff& local) {
    GenerationRequest request;
    request.prompt_ids = local.input.prompt;
    request.sampling = local.input.sampling;
    request.max_tokens = local.input.max_tokens;
    return Generate(*model_, *tokenizer_, request,
                    [](const GeneratedToken&) { return absl::OkStatus(); })
        .value();
  }

  Stream Decode(const v1::DecodeRequest& request,
                absl::Duration deadline = absl::Seconds(60)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    std::unique_ptr<grpc::ClientReader<v1::DecodeResponse>> reader =
        stub_->Decode(&context, request);
    Stream stream;
    v1::DecodeResponse reply;
    while (reader->Read(&reply)) {
      stream.tokens.insert(stream.tokens.end(), reply.token_ids().begin(),
                           reply.token_ids().end());
      stream.text += reply.text();
      stream.finish = reply.finish_reason();
      stream.replies.push_back(reply);
    }
    stream.status = reader->Finish();
    return stream;
  }

  static void ExpectMatchesLocal(const Stream& stream,
                                 const LocalHandoff& local) {
    ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
    const GenerationResult expected = Local(local);
    EXPECT_EQ(stream.tokens, expected.tokens);
    EXPECT_EQ(stream.text, expected.text);
    EXPECT_EQ(stream.finish, v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(stream.replies.back().completion_tokens(),
              static_cast<int>(expected.tokens.size()));
  }

  v1::WorkerLoad Load() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::WorkerLoad load;
    const grpc::Status status = stub_->Load(&context, v1::LoadRequest(), &load);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return load;
  }

  // Waits until no sequence runs or waits and every block is free.
  bool WaitIdle(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      const v1::WorkerLoad load = Load();
      if (load.running_sequences() == 0 && load.waiting_sequences() == 0 &&
          load.free_blocks() == load.total_blocks()) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  static SamplingParams Greedy() {
    SamplingParams params;
    params.temperature = 0;
    return params;
  }

  static SamplingParams Seeded(uint64_t seed) {
    SamplingParams params;
    params.temperature = 0.8f;
    params.top_k = 50;
    params.top_p = 0.9f;
    params.repetition_penalty = 1.1f;
    params.seed = seed;
    return params;
  }

  static fs::path* dir_;
  static Model* model_;
  static Tokenizer* tokenizer_;
  static FakeRouter* router_;
  static StartedServer* router_server_;
  std::unique_ptr<ChildProcess> store_;
  std::unique_ptr<ChildProcess> decode_;
  std::unique_ptr<KvStoreClient> client_;
  std::unique_ptr<v1::DecodeWorker::Stub> stub_;
};

fs::path* DecodeNodeTest::dir_ = nullptr;
Model* DecodeNodeTest::model_ = nullptr;
Tokenizer* DecodeNodeTest::tokenizer_ = nullptr;
FakeRouter* DecodeNodeTest::router_ = nullptr;
StartedServer* DecodeNodeTest::router_server_ = nullptr;

TEST_F(DecodeNodeTest, GreedyStreamEqualsLocalGeneration) {
  LocalHandoff local;
  const v1::DecodeRequest request =
      Prepare("The decode worker continues this prompt", Greedy(), 40, &local);
  ASSERT_TRUE(local.input.handoff.partial_block.has_value());
  const Stream stream = Decode(request);
  ExpectMatchesLocal(stream, local);
  // The first reply is the prefill's token, with the prefill's logprob.
  ASSERT_FALSE(stream.replies.empty());
  EXPECT_EQ(stream.replies[0].token_ids(0), local.input.first_token);
  ASSERT_EQ(stream.replies[0].logprobs_size(), 1);
  EXPECT_FLOAT_EQ(stream.replies[0].logprobs(0).chosen().logprob(),
                  local.first.logprob);
  EXPECT_TRUE(WaitIdle());
}

TEST_F(DecodeNodeTest, SeededStreamEqualsLocalGeneration) {
  LocalHandoff local;
  const v1::DecodeRequest request =
      Prepare("Sampling with a seed repeats itself", Seeded(2024), 50, &local);
  ExpectMatchesLocal(Decode(request), local);
}

TEST_F(DecodeNodeTest, PromptOfWholeBlocksStreamEqualsLocalGeneration) {
  LocalHandoff local;
  const v1::DecodeRequest request =
      Prepare("thirty-two bytes make two blocks", Seeded(9), 30, &local);
  ASSERT_EQ(local.input.prompt.size() % kBlockSize, 0u);
  ASSERT_FALSE(local.input.handoff.partial_block.has_value());
  ExpectMatchesLocal(Decode(request), local);
}

TEST_F(DecodeNodeTest, ConcurrentStreamsEachEqualLocalGeneration) {
  constexpr int kStreams = 6;
  std::vector<LocalHandoff> locals(kStreams);
  std::vector<v1::DecodeRequest> requests;
  for (int i = 0; i < kStreams; ++i) {
    requests.push_back(Prepare(absl::StrCat("Stream number ", i, " of many"),
                               i % 2 == 0 ? Greedy() : Seeded(300 + i),
                               60 + 10 * i, &locals[i]));
  }
  std::vector<Stream> streams(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back(
        [this, i, &requests, &streams] { streams[i] = Decode(requests[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kStreams; ++i) {
    SCOPED_TRACE(absl::StrCat("stream ", i));
    ExpectMatchesLocal(streams[i], locals[i]);
  }
  EXPECT_TRUE(WaitIdle());
}

TEST_F(DecodeNodeTest, CancellingTheCallFreesItsBlocks) {
  LocalHandoff local;
  const v1::DecodeRequest request =
      Prepare("A long one, cancelled early", Greedy(), 4000, &local);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::DecodeResponse>> reader =
      stub_->Decode(&context, request);
  v1::DecodeResponse reply;
  ASSERT_TRUE(reader->Read(&reply));
  // The worker publishes its load after the step that streamed the token.
  v1::WorkerLoad busy = Load();
  for (int i = 0; i < 100 && busy.running_sequences() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
    busy = Load();
  }
  EXPECT_EQ(busy.running_sequences(), 1);
  EXPECT_LT(busy.free_blocks(), busy.total_blocks());
  context.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitIdle());
}

TEST_F(DecodeNodeTest, ExpiredDeadlineFreesTheBlocks) {
  LocalHandoff local;
  const v1::DecodeRequest request =
      Prepare("A long one that runs out of time", Greedy(), 4000, &local);
  const Stream stream = Decode(request, absl::Milliseconds(200));
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(stream.tokens.size(), 4000u);
  EXPECT_TRUE(WaitIdle());
}

TEST_F(DecodeNodeTest, MissingHandoffBlockIsNotFound) {
  // A well-formed handoff whose blocks were never put into the store.
  const std::vector<int32_t> prompt =
      tokenizer_->Encode("Never prefilled, never stored", false).value();
  const LocalHandoff missing =
      MakeLocalHandoff(*model_, prompt, Greedy(), 1, 10, kBlockSize).value();
  const Stream stream = Decode(ToRequest(missing));
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::NOT_FOUND)
      << stream.status.error_message();
  EXPECT_TRUE(stream.tokens.empty());
  EXPECT_TRUE(WaitIdle());
}

TEST_F(DecodeNodeTest, MalformedRequestIsInvalidArgumentNamingTheField) {
  LocalHandoff local;
  v1::DecodeRequest request = Prepare("Hello", Greedy(), 10, &local);
  request.mutable_sampling()->clear_seed();
  const Stream stream = Decode(request);
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(stream.status.error_message(), HasSubstr("sampling.seed"));
}

TEST_F(DecodeNodeTest, HandoffOfAnotherModelIsFailedPrecondition) {
  LocalHandoff local;
  v1::DecodeRequest request = Prepare("Hello again", Greedy(), 10, &local);
  request.mutable_handoff()->mutable_model()->set_word0(12345);
  const Stream stream = Decode(request);
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(DecodeNodeTest, KilledStoreEndsNewRequestsWithoutHanging) {
  LocalHandoff running_local;
  const v1::DecodeRequest running = Prepare(
      "Already running when the store dies", Greedy(), 300, &running_local);
  LocalHandoff later_local;
  const v1::DecodeRequest later =
      Prepare("Arrives after the store died", Greedy(), 20, &later_local);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::DecodeResponse>> reader =
      stub_->Decode(&context, running);
  v1::DecodeResponse reply;
  ASSERT_TRUE(reader->Read(&reply));
  ASSERT_TRUE(store_->Stop(SIGKILL).ok());
  // The running stream needs the store no more and completes.
  std::vector<int32_t> tokens(reply.token_ids().begin(),
                              reply.token_ids().end());
  while (reader->Read(&reply)) {
    tokens.insert(tokens.end(), reply.token_ids().begin(),
                  reply.token_ids().end());
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(tokens, Local(running_local).tokens);
  // A new request fails fast instead of waiting forever.
  const absl::Time start = absl::Now();
  const Stream stream = Decode(later, absl::Seconds(30));
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << stream.status.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(WaitIdle());
}

TEST_F(DecodeNodeTest, ServesHealthReflectionAndHeartbeats) {
  auto health = testing::CheckHealth(decode_->address(), "", absl::Seconds(5));
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, testing::ServingStatus::kServing);
  auto services = testing::ListServices(decode_->address(), absl::Seconds(5));
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("tandem.v1.DecodeWorker"));

  const std::optional<v1::HeartbeatRequest> beat =
      router_->Wait(absl::Seconds(10));
  ASSERT_TRUE(beat.has_value());
  EXPECT_FALSE(beat->address().empty());
  const v1::WorkerLoad& load = beat->load();
  EXPECT_EQ(load.kind(), v1::WORKER_KIND_DECODE);
  EXPECT_EQ(load.model(), "model");
  EXPECT_EQ(load.block_size(), kBlockSize);
  EXPECT_EQ(load.max_batch(), 8);
  EXPECT_GT(load.total_blocks(), 0);
  EXPECT_EQ(FromProto(load.fingerprint()), model_->fingerprint());

  // SIGTERM stops the worker cleanly.
  absl::StatusOr<int> exit = decode_->Stop(SIGTERM);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << *exit;
}

}  // namespace
}  // namespace tandem
