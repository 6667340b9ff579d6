// The prefill worker as a real `prefill_node` process with a real `kvstore`
// process on loopback, over a small random model: first tokens against the
// engine's own prefill, the handoff blocks in the store, prefix reuse,
// concurrent requests, bad requests, abandoned calls, a store that dies,
// the standard services, Load and heartbeats.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/block_key.h"
#include "engine/kv_block_codec.h"
#include "engine/model.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvstore/kvstore_client.h"
#include "kvstore/kvstore_proto.h"
#include "prefill_node/prefill_test_util.h"
#include "proto/worker.grpc.pb.h"
#include "tests/child_process.h"
#include "tests/grpc_probe.h"
#include "tests/test_files.h"
#include "tests/test_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::Argmax;
using ::tandem::testing::ChildProcess;
using ::tandem::testing::PrefillLocally;
using ::tandem::testing::TestPrompt;
using ::testing::Contains;
using ::testing::HasSubstr;
using testing::SourceDir;

constexpr int kBlockSize = 16;
// 8 blocks of this model's shape: 128 tokens.
constexpr char kCacheBytes[] = "--kv_cache_bytes=32KiB";
constexpr int kCacheBlocks = 8;

class PrefillNodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new fs::path(fs::path(::testing::TempDir()) /
                              absl::StrCat("prefill_node_test_", getpid()));
    fs::remove_all(*model_dir_);
    ASSERT_TRUE(testing::WriteTestModel(*model_dir_, {.context = 256}).ok());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*model_dir_);
    delete model_dir_;
  }

  void SetUp() override {
    auto model = Model::Load(*model_dir_, {.threads = 1});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    auto store = ChildProcess::StartServer(
        TANDEM_KVSTORE_BINARY,
        {"--listen=127.0.0.1:0", "--memory_budget=64MiB"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    prefill_ = StartPrefill({});
    ASSERT_NE(prefill_, nullptr);
    stub_ = v1::PrefillWorker::NewStub(grpc::CreateChannel(
        prefill_->address(), grpc::InsecureChannelCredentials()));
    KvStoreClientOptions options;
    options.nodes = {store_->address()};
    client_ = KvStoreClient::Create(options).value();
  }

  // A prefill_node on the test's model and store, with `extra` flags.
  std::unique_ptr<ChildProcess> StartPrefill(std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "--listen=127.0.0.1:0",
        absl::StrCat("--model=", model_dir_->string()),
        absl::StrCat("--kvstore=", store_->address()),
        "--threads=1",
        kCacheBytes,
        "--max_batch_tokens=64",
        "--kvstore_timeout=3s"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto prefill = ChildProcess::StartServer(TANDEM_PREFILL_BINARY, args);
    EXPECT_TRUE(prefill.ok()) << prefill.status();
    return prefill.ok() ? *std::move(prefill) : nullptr;
  }

  absl::StatusOr<v1::WorkerLoad> Load() {
    grpc::ClientContext context;
    v1::WorkerLoad load;
    const grpc::Status status = stub_->Load(&context, v1::LoadRequest(), &load);
    if (!status.ok()) return absl::UnknownError(status.error_message());
    return load;
  }

  v1::PrefillRequest Request(const std::vector<int32_t>& prompt) {
    v1::PrefillRequest request;
    request.set_request_id(absl::StrCat("req-", ++requests_));
    for (int32_t token : prompt) request.add_prompt_token_ids(token);
    for (const BlockKey& key :
         ComputeKeyChain(model_->fingerprint(), prompt, kBlockSize)) {
      ToProto(key, request.add_block_keys());
    }
    request.mutable_sampling()->set_temperature(0);
    request.mutable_sampling()->set_seed(5);
    request.set_logprobs(-1);
    return request;
  }

  grpc::Status Prefill(const v1::PrefillRequest& request,
                       v1::PrefillResponse* response,
                       absl::Duration timeout = absl::Seconds(30)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return stub_->Prefill(&context, request, response);
  }

  int32_t GreedyToken(const std::vector<int32_t>& prompt) {
    auto local = PrefillLocally(*model_, prompt, kBlockSize);
    EXPECT_TRUE(local.ok()) << local.status();
    return local.ok() ? Argmax(local->logits) : -1;
  }

  void ExpectCode(const v1::PrefillRequest& request, grpc::StatusCode code,
                  const std::string& text) {
    v1::PrefillResponse response;
    const grpc::Status status = Prefill(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(text));
  }

  static fs::path* model_dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<ChildProcess> store_;
  std::unique_ptr<ChildProcess> prefill_;
  std::unique_ptr<v1::PrefillWorker::Stub> stub_;
  std::unique_ptr<KvStoreClient> client_;
  int requests_ = 0;
};

fs::path* PrefillNodeTest::model_dir_ = nullptr;

TEST_F(PrefillNodeTest, FirstTokenIsTheEnginesGreedyArgmax) {
  const std::vector<int32_t> prompt = TestPrompt(40);
  v1::PrefillResponse response;
  const grpc::Status status = Prefill(Request(prompt), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.first_token(), GreedyToken(prompt));
  EXPECT_EQ(response.computed_tokens(), 40);
  EXPECT_EQ(response.cached_tokens(), 0);
  EXPECT_FALSE(response.has_first_logprobs());
  const v1::Handoff& handoff = response.handoff();
  EXPECT_EQ(FromProto(handoff.model()), model_->fingerprint());
  EXPECT_EQ(handoff.block_size(), kBlockSize);
  EXPECT_EQ(handoff.prompt_tokens(), 40);
  EXPECT_EQ(handoff.full_blocks_size(), 2);
  EXPECT_TRUE(handoff.has_partial_block());
  EXPECT_EQ(handoff.next_draw(), 1u);
}

TEST_F(PrefillNodeTest, LogprobsAreReportedWhenAsked) {
  v1::PrefillRequest request = Request(TestPrompt(20));
  request.set_logprobs(2);
  v1::PrefillResponse response;
  ASSERT_TRUE(Prefill(request, &response).ok());
  ASSERT_TRUE(response.has_first_logprobs());
  EXPECT_EQ(response.first_logprobs().chosen().token_id(),
            response.first_token());
  EXPECT_LE(response.first_logprobs().chosen().logprob(), 0.0f);
  EXPECT_EQ(response.first_logprobs().top_size(), 2);
}

// What a decode worker does with a handoff: the blocks imported into a fresh
// cache, then one decode step with the first token.
TEST_F(PrefillNodeTest, HandoffBlocksImportBitExactAndGiveTheSameLogits) {
  const std::vector<int32_t> prompt = TestPrompt(40);
  v1::PrefillResponse response;
  ASSERT_TRUE(Prefill(Request(prompt), &response).ok());
  const v1::Handoff& handoff = response.handoff();
  const KvLayout layout = model_->kv_layout(kBlockSize);
  auto cache =
      PagedKvCache::Create(layout, PagedKvCache::BlockStrideBytes(layout) * 4)
          .value();
  ASSERT_TRUE(cache->AddSequence(1).ok());

  std::vector<BlockKey> keys;
  for (const v1::BlockKey& key : handoff.full_blocks()) {
    keys.push_back(FromProto(key));
  }
  keys.push_back(FromProto(handoff.partial_block()));
  for (size_t b = 0; b < keys.size(); ++b) {
    absl::StatusOr<std::string> bytes = client_->Get(keys[b]);
    ASSERT_TRUE(bytes.ok()) << b << " " << bytes.status();
    const bool partial = b + 1 == keys.size();
    BlockId block;
    if (partial) {
      ASSERT_TRUE(cache->Append(1, 8).ok());
      block = cache->BlockTable(1).back();
    } else {
      block = cache->AllocateBlock().value();
    }
    BlockMetadata metadata;
    ASSERT_TRUE(ImportBlock(*bytes, layout, model_->fingerprint(), &keys[b],
                            cache->BlockData(block), &metadata)
                    .ok());
    EXPECT_EQ(metadata.token_count, partial ? 8 : kBlockSize);
    if (!partial) ASSERT_TRUE(cache->AppendFullBlocks(1, {&block, 1}).ok());
    // Bit-exact: the imported block exports to the very bytes stored.
    EXPECT_EQ(ExportBlock(layout, cache->BlockData(block), metadata).value(),
              *bytes);
  }
  ASSERT_EQ(cache->NumTokens(1), 40);

  const int32_t first = response.first_token();
  std::vector<float> imported_logits;
  const SequenceId seq = 1;
  ASSERT_TRUE(cache->Append(1, 1).ok());
  ASSERT_TRUE(
      model_->DecodeStep({&seq, 1}, {&first, 1}, *cache, &imported_logits)
          .ok());

  auto local = PrefillLocally(*model_, prompt, kBlockSize);
  ASSERT_TRUE(local.ok());
  std::vector<float> local_logits;
  const SequenceId local_seq = 0;
  ASSERT_TRUE(local->cache->Append(0, 1).ok());
  ASSERT_TRUE(model_
                  ->DecodeStep({&local_seq, 1}, {&first, 1}, *local->cache,
                               &local_logits)
                  .ok());
  ASSERT_EQ(imported_logits.size(), local_logits.size());
  for (size_t i = 0; i < local_logits.size(); ++i) {
    ASSERT_NEAR(imported_logits[i], local_logits[i], 1e-4) << i;
  }
  EXPECT_EQ(Argmax(imported_logits), Argmax(local_logits));
}

TEST_F(PrefillNodeTest, SharedPrefixIsFetchedInsteadOfComputed) {
  const std::vector<int32_t> first = TestPrompt(40);
  v1::PrefillResponse response;
  ASSERT_TRUE(Prefill(Request(first), &response).ok());
  std::vector<int32_t> second(first.begin(), first.begin() + 35);
  second.push_back(9);
  ASSERT_TRUE(Prefill(Request(second), &response).ok());
  EXPECT_EQ(response.cached_tokens(), 32);
  EXPECT_EQ(response.computed_tokens(), 4);
  EXPECT_EQ(response.first_token(), GreedyToken(second));
}

TEST_F(PrefillNodeTest, ConcurrentRequestsAllSucceed) {
  constexpr int kRequests = 8;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < kRequests; ++i)
    prompts.push_back(TestPrompt(20 + 9 * i, i));
  std::vector<grpc::Status> statuses(kRequests);
  std::vector<v1::PrefillResponse> responses(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back(
        [&, i] { statuses[i] = Prefill(Request(prompts[i]), &responses[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << " " << statuses[i].error_message();
    EXPECT_EQ(responses[i].first_token(), GreedyToken(prompts[i])) << i;
  }
}

TEST_F(PrefillNodeTest, BadRequestsGetTheirCodesNamingTheField) {
  const grpc::StatusCode invalid = grpc::StatusCode::INVALID_ARGUMENT;
  ExpectCode(Request({}), invalid, "prompt_token_ids is empty");
  std::vector<int32_t> prompt = TestPrompt(20);
  prompt[3] = 258;
  ExpectCode(Request(prompt), invalid, "prompt_token_ids[3]=258");
  v1::PrefillRequest request = Request(TestPrompt(20));
  request.mutable_block_keys(0)->set_lo(request.block_keys(0).lo() ^ 1);
  ExpectCode(request, invalid, "block_keys[0]");
  request = Request(TestPrompt(20));
  request.clear_block_keys();
  ExpectCode(request, invalid, "block_keys has 0 keys");
  request = Request(TestPrompt(20));
  request.mutable_sampling()->clear_seed();
  ExpectCode(request, invalid, "sampling.seed");
  request = Request(TestPrompt(20));
  request.mutable_sampling()->set_top_p(2);
  ExpectCode(request, invalid, "top_p");
  // The model's context is 256 tokens.
  ExpectCode(Request(TestPrompt(256)), invalid, "prompt_token_ids has 256");
  // 200 tokens need 13 blocks; the cache holds 8.
  ExpectCode(Request(TestPrompt(200)), grpc::StatusCode::RESOURCE_EXHAUSTED,
             "needs 13 KV blocks");
}

TEST_F(PrefillNodeTest, StoreKilledIsUnavailablePromptlyNamingTheNode) {
  // A first request connects the worker to the store.
  v1::PrefillResponse response;
  ASSERT_TRUE(Prefill(Request(TestPrompt(40)), &response).ok());
  const std::string store_address = store_->address();
  ASSERT_TRUE(store_->Stop(SIGKILL).ok());
  const absl::Time start = absl::Now();
  const grpc::Status status = Prefill(Request(TestPrompt(50, 1)), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(store_address));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(PrefillNodeTest, ServesHealthReflectionAndLoad) {
  EXPECT_EQ(testing::CheckHealth(prefill_->address(), "", absl::Seconds(5))
                .value_or(testing::ServingStatus::kUnknown),
            testing::ServingStatus::kServing);
  auto services = testing::ListServices(prefill_->address(), absl::Seconds(5));
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("tandem.v1.PrefillWorker"));

  absl::StatusOr<v1::WorkerLoad> load = Load();
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(load->kind(), v1::WORKER_KIND_PREFILL);
  EXPECT_EQ(load->model(), model_dir_->filename().string());
  EXPECT_EQ(FromProto(load->fingerprint()), model_->fingerprint());
  EXPECT_EQ(load->block_size(), kBlockSize);
  EXPECT_EQ(load->total_blocks(), kCacheBlocks);
  EXPECT_EQ(load->free_blocks(), kCacheBlocks);
  EXPECT_EQ(load->queued_requests(), 0);
}

TEST_F(PrefillNodeTest, AbandonedCallFreesItsBlocks) {
  // Far more work than a millisecond allows: the call ends while queued or
  // computing, and the worker drops it.
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([this, i] {
      v1::PrefillResponse response;
      const grpc::Status status = Prefill(Request(TestPrompt(100, i)),
                                          &response, absl::Milliseconds(1));
      EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    });
  }
  for (std::thread& thread : threads) thread.join();
  absl::StatusOr<v1::WorkerLoad> load;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  do {
    load = Load();
    ASSERT_TRUE(load.ok()) << load.status();
  } while (load->queued_requests() > 0 && absl::Now() < give_up);
  EXPECT_EQ(load->queued_requests(), 0);
  EXPECT_EQ(load->free_blocks(), kCacheBlocks);
  // The worker still serves.
  v1::PrefillResponse response;
  EXPECT_TRUE(Prefill(Request(TestPrompt(30)), &response).ok());
}

// Records the heartbeats a worker sends.
class FakeMembership final : public v1::Membership::CallbackService {
 public:
  grpc::ServerUnaryReactor* Heartbeat(
      grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
      v1::HeartbeatResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      last_ = *request;
      ++count_;
    }
    response->set_expiry_seconds(5);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // The first heartbeat, waiting up to `timeout` for it.
  std::optional<v1::HeartbeatRequest> WaitForHeartbeat(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto arrived = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return count_ > 0;
    };
    mu_.AwaitWithTimeout(absl::Condition(&arrived), timeout);
    if (count_ == 0) return std::nullopt;
    return last_;
  }

 private:
  absl::Mutex mu_;
  v1::HeartbeatRequest last_ ABSL_GUARDED_BY(mu_);
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST_F(PrefillNodeTest, SendsHeartbeatsWithItsLoadToTheRouter) {
  FakeMembership membership;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&membership);
  std::unique_ptr<grpc::Server> router = builder.BuildAndStart();
  ASSERT_NE(router, nullptr);
  std::unique_ptr<ChildProcess> worker =
      StartPrefill({absl::StrCat("--router=127.0.0.1:", port),
                    "--worker_id=prefill-a", "--model_name=tiny"});
  ASSERT_NE(worker, nullptr);
  std::optional<v1::HeartbeatRequest> beat =
      membership.WaitForHeartbeat(absl::Seconds(10));
  ASSERT_TRUE(beat.has_value());
  EXPECT_EQ(beat->worker_id(), "prefill-a");
  EXPECT_EQ(beat->address(), worker->address());
  const v1::WorkerLoad& load = beat->load();
  EXPECT_EQ(load.kind(), v1::WORKER_KIND_PREFILL);
  EXPECT_EQ(load.model(), "tiny");
  EXPECT_EQ(FromProto(load.fingerprint()), model_->fingerprint());
  EXPECT_EQ(load.block_size(), kBlockSize);
  EXPECT_EQ(load.total_blocks(), kCacheBlocks);
  EXPECT_EQ(load.free_blocks(), kCacheBlocks);
  worker.reset();
  router->Shutdown();
}

TEST_F(PrefillNodeTest, StopsCleanlyOnSigterm) {
  absl::StatusOr<int> status = prefill_->Stop(SIGTERM);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

}  // namespace
}  // namespace tandem
