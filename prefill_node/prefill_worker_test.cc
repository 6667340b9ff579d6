// The prefill worker in one process: a small random model, the real engine
// and scheduler, and a KV store kept in memory behind BlockStoreLink.
#include "prefill_node/prefill_worker.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/kv_block_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvstore/block_info.h"
#include "prefill_node/prefill_test_util.h"
#include "tests/test_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::Argmax;
using ::tandem::testing::PrefillLocally;
using ::tandem::testing::TestPrompt;
using ::testing::HasSubstr;

constexpr int kBlockSize = 16;

// Blocks in memory. Reads can be held at a gate, and every call can be made
// to fail as a store that is down.
class MemoryStore final : public BlockStoreLink {
 public:
  absl::StatusOr<size_t> LongestPrefix(
      absl::Span<const BlockKey> chain) override {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&gate_open_));
    if (!down_.ok()) return down_;
    size_t n = 0;
    while (n < chain.size() && blocks_.contains(chain[n])) ++n;
    return n;
  }
  std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys) override {
    absl::MutexLock lock(&mu_);
    std::vector<absl::StatusOr<std::string>> out;
    for (const BlockKey& key : keys) {
      auto it = blocks_.find(key);
      if (!down_.ok()) {
        out.push_back(down_);
      } else if (it == blocks_.end()) {
        out.push_back(absl::NotFoundError(key.ToHex()));
      } else {
        out.push_back(it->second);
      }
    }
    return out;
  }
  std::vector<absl::Status> PutMany(
      absl::Span<const absl::string_view> blocks) override {
    absl::MutexLock lock(&mu_);
    std::vector<absl::Status> out;
    for (absl::string_view bytes : blocks) {
      absl::StatusOr<BlockInfo> info = DescribeBlock(bytes);
      if (!down_.ok()) {
        out.push_back(down_);
      } else if (!info.ok()) {
        out.push_back(info.status());
      } else {
        blocks_[info->key] = std::string(bytes);
        ++puts_;
        out.push_back(absl::OkStatus());
      }
    }
    return out;
  }

  void SetDown(absl::Status status) {
    absl::MutexLock lock(&mu_);
    down_ = status;
  }
  void SetGateOpen(bool open) {
    absl::MutexLock lock(&mu_);
    gate_open_ = open;
  }
  std::optional<std::string> Find(const BlockKey& key) {
    absl::MutexLock lock(&mu_);
    auto it = blocks_.find(key);
    if (it == blocks_.end()) return std::nullopt;
    return it->second;
  }
  void Set(const BlockKey& key, std::string bytes) {
    absl::MutexLock lock(&mu_);
    blocks_[key] = std::move(bytes);
  }
  int puts() {
    absl::MutexLock lock(&mu_);
    return puts_;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<BlockKey, std::string> blocks_ ABSL_GUARDED_BY(mu_);
  absl::Status down_ ABSL_GUARDED_BY(mu_);
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  int puts_ ABSL_GUARDED_BY(mu_) = 0;
};

// Waits for one job's answer.
struct Answer {
  absl::Notification done;
  absl::StatusOr<PrefillResult> result = absl::UnknownError("no answer");
};

class PrefillWorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new fs::path(fs::path(::testing::TempDir()) /
                              absl::StrCat("prefill_worker_test_", getpid()));
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
    reference_ = *std::move(model);
  }

  // Starts a worker whose cache holds `blocks` blocks.
  void StartWorker(int blocks = 64, int max_batch_tokens = 2048,
                   int max_queued = 64, bool prefix_reuse = true) {
    auto model = Model::Load(*model_dir_, {.threads = 1});
    ASSERT_TRUE(model.ok()) << model.status();
    const KvLayout layout = (*model)->kv_layout(kBlockSize);
    auto engine = PrefillEngine::Create(
        *std::move(model), PagedKvCache::BlockStrideBytes(layout) * blocks,
        {.block_size = kBlockSize, .max_batch_tokens = max_batch_tokens});
    ASSERT_TRUE(engine.ok()) << engine.status();
    auto worker = PrefillWorker::Create(*std::move(engine), &store_,
                                        {.max_queued_requests = max_queued,
                                         .io_threads = 2,
                                         .prefix_reuse = prefix_reuse});
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = *std::move(worker);
  }

  PrefillJob Job(std::vector<int32_t> prompt, float temperature = 0) {
    PrefillJob job;
    job.request_id = absl::StrCat("r", ++jobs_);
    job.block_keys =
        ComputeKeyChain(reference_->fingerprint(), prompt, kBlockSize);
    job.prompt = std::move(prompt);
    job.sampling.temperature = temperature;
    job.sampling.seed = 11;
    return job;
  }

  // Submits `job`; the answer arrives in the returned Answer.
  std::unique_ptr<Answer> Start(PrefillJob job, uint64_t* ticket = nullptr) {
    auto answer = std::make_unique<Answer>();
    Answer* raw = answer.get();
    absl::StatusOr<uint64_t> t =
        worker_->Submit(std::move(job), [raw](absl::StatusOr<PrefillResult> r) {
          raw->result = std::move(r);
          raw->done.Notify();
        });
    if (!t.ok()) {
      raw->result = t.status();
      raw->done.Notify();
    } else if (ticket != nullptr) {
      *ticket = *t;
    }
    return answer;
  }

  absl::StatusOr<PrefillResult> Run(PrefillJob job) {
    std::unique_ptr<Answer> answer = Start(std::move(job));
    answer->done.WaitForNotification();
    return answer->result;
  }

  int32_t GreedyToken(const std::vector<int32_t>& prompt) {
    auto local = PrefillLocally(*reference_, prompt, kBlockSize);
    EXPECT_TRUE(local.ok()) << local.status();
    return local.ok() ? Argmax(local->logits) : -1;
  }

  static fs::path* model_dir_;
  std::unique_ptr<Model> reference_;
  MemoryStore store_;
  std::unique_ptr<PrefillWorker> worker_;
  int jobs_ = 0;
};

fs::path* PrefillWorkerTest::model_dir_ = nullptr;

TEST_F(PrefillWorkerTest, FirstTokenIsTheGreedyArgmaxOfTheEngine) {
  StartWorker();
  const std::vector<int32_t> prompt = TestPrompt(40);
  absl::StatusOr<PrefillResult> result = Run(Job(prompt));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->first.token, GreedyToken(prompt));
  EXPECT_EQ(result->computed_tokens, 40);
  EXPECT_EQ(result->cached_tokens, 0);
  EXPECT_EQ(result->handoff.next_draw, 1u);
  EXPECT_EQ(result->handoff.prompt_tokens, 40);
  EXPECT_EQ(result->handoff.block_size, kBlockSize);
  EXPECT_EQ(result->handoff.model, reference_->fingerprint());
}

TEST_F(PrefillWorkerTest, SeededSamplingMatchesTheSamplerOnLocalLogits) {
  StartWorker();
  const std::vector<int32_t> prompt = TestPrompt(21);
  PrefillJob job = Job(prompt, /*temperature=*/1.0f);
  job.sampling.num_logprobs = 3;
  job.sampling.repetition_penalty = 1.3f;
  const SamplingParams params = job.sampling;
  absl::StatusOr<PrefillResult> result = Run(std::move(job));
  ASSERT_TRUE(result.ok()) << result.status();

  auto local = PrefillLocally(*reference_, prompt, kBlockSize);
  ASSERT_TRUE(local.ok());
  auto state = SequenceSamplingState::Create(params);
  ASSERT_TRUE(state.ok());
  ASSERT_TRUE(state->RecordPromptTokens(prompt).ok());
  SequenceSamplingState* rows[] = {&*state};
  Sampler sampler;
  auto sampled = sampler.Sample(absl::MakeSpan(local->logits), 258, rows);
  ASSERT_TRUE(sampled.ok());
  EXPECT_EQ(result->first.token, (*sampled)[0].token);
  EXPECT_NEAR(result->first.logprob, (*sampled)[0].logprob, 1e-5);
  EXPECT_EQ(result->first.top_logprobs.size(), 3u);
  EXPECT_EQ(result->handoff.next_draw, state->next_draw());
}

TEST_F(PrefillWorkerTest, WritesEveryFullBlockAndThePartialBlock) {
  StartWorker();
  const std::vector<int32_t> prompt = TestPrompt(40);
  absl::StatusOr<PrefillResult> result = Run(Job(prompt));
  ASSERT_TRUE(result.ok()) << result.status();
  const PrefillHandoff& handoff = result->handoff;
  ASSERT_EQ(handoff.full_blocks.size(), 2u);
  ASSERT_TRUE(handoff.partial_block.has_value());
  EXPECT_EQ(*handoff.partial_block,
            ComputeBlockKey(reference_->fingerprint(), &handoff.full_blocks[1],
                            absl::MakeConstSpan(prompt).subspan(32)));

  auto local = PrefillLocally(*reference_, prompt, kBlockSize);
  ASSERT_TRUE(local.ok());
  const KvLayout layout = reference_->kv_layout(kBlockSize);
  std::vector<BlockKey> keys = handoff.full_blocks;
  keys.push_back(*handoff.partial_block);
  for (size_t b = 0; b < keys.size(); ++b) {
    std::optional<std::string> bytes = store_.Find(keys[b]);
    ASSERT_TRUE(bytes.has_value()) << b;
    std::vector<float> imported(layout.BlockFloats(), 0.0f);
    BlockMetadata metadata;
    ASSERT_TRUE(ImportBlock(*bytes, layout, reference_->fingerprint(), &keys[b],
                            imported.data(), &metadata)
                    .ok());
    EXPECT_EQ(metadata.token_count, b < 2 ? kBlockSize : 8);
    const float* expected =
        local->cache->BlockData(local->cache->BlockTable(0)[b]);
    for (size_t p = 0; p < layout.NumPlanes(); ++p) {
      for (int t = 0; t < metadata.token_count; ++t) {
        for (int d = 0; d < layout.head_dim; ++d) {
          const size_t i = p * layout.HeadFloats() + t * layout.head_dim + d;
          ASSERT_NEAR(imported[i], expected[i], 1e-5) << b << " " << i;
        }
      }
    }
  }
}

TEST_F(PrefillWorkerTest, ReusesStoredPrefixBlocks) {
  StartWorker();
  const std::vector<int32_t> first = TestPrompt(40);
  ASSERT_TRUE(Run(Job(first)).ok());
  std::vector<int32_t> second = first;
  second.resize(36);
  second.push_back(7);
  absl::StatusOr<PrefillResult> result = Run(Job(second));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->cached_tokens, 32);
  EXPECT_EQ(result->computed_tokens, 5);
  EXPECT_EQ(result->first.token, GreedyToken(second));
}

TEST_F(PrefillWorkerTest, WithoutPrefixReuseComputesAllAndStillPublishes) {
  StartWorker(64, 2048, 64, /*prefix_reuse=*/false);
  const std::vector<int32_t> prompt = TestPrompt(40);
  ASSERT_TRUE(Run(Job(prompt)).ok());
  absl::StatusOr<PrefillResult> again = Run(Job(prompt));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->cached_tokens, 0);
  EXPECT_EQ(again->computed_tokens, 40);
  EXPECT_EQ(again->first.token, GreedyToken(prompt));
  for (const BlockKey& key : again->handoff.full_blocks) {
    EXPECT_TRUE(store_.Find(key).has_value());
  }
}

TEST_F(PrefillWorkerTest, ComputesOnlyTheLastTokenOfAFullyStoredPrompt) {
  StartWorker();
  const std::vector<int32_t> prompt = TestPrompt(32);
  ASSERT_TRUE(Run(Job(prompt)).ok());
  const int puts = store_.puts();
  absl::StatusOr<PrefillResult> result = Run(Job(prompt));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->cached_tokens, 31);
  EXPECT_EQ(result->computed_tokens, 1);
  EXPECT_FALSE(result->handoff.partial_block.has_value());
  EXPECT_EQ(store_.puts(), puts);
  EXPECT_EQ(result->first.token, GreedyToken(prompt));
}

TEST_F(PrefillWorkerTest, ChunkedPrefillGivesTheSameFirstToken) {
  StartWorker(/*blocks=*/64, /*max_batch_tokens=*/8);
  const std::vector<int32_t> prompt = TestPrompt(45);
  absl::StatusOr<PrefillResult> result = Run(Job(prompt));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->first.token, GreedyToken(prompt));
  EXPECT_EQ(result->computed_tokens, 45);
}

TEST_F(PrefillWorkerTest, ConcurrentRequestsAllSucceed) {
  StartWorker(/*blocks=*/64, /*max_batch_tokens=*/64);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::unique_ptr<Answer>> answers;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back(TestPrompt(10 + 9 * i, i));
    answers.push_back(Start(Job(prompts.back())));
  }
  for (int i = 0; i < 8; ++i) {
    answers[i]->done.WaitForNotification();
    ASSERT_TRUE(answers[i]->result.ok()) << i << answers[i]->result.status();
    EXPECT_EQ(answers[i]->result->first.token, GreedyToken(prompts[i])) << i;
  }
  const PrefillLoad load = worker_->Load();
  EXPECT_EQ(load.queued_requests, 0);
  EXPECT_EQ(load.free_blocks, load.total_blocks);
}

TEST_F(PrefillWorkerTest, WaitsForBlocksWhenTheCacheIsBusy) {
  // Each 40-token prompt takes 3 of the 4 blocks: they run one at a time.
  StartWorker(/*blocks=*/4);
  std::unique_ptr<Answer> a = Start(Job(TestPrompt(40, 1)));
  std::unique_ptr<Answer> b = Start(Job(TestPrompt(40, 2)));
  a->done.WaitForNotification();
  b->done.WaitForNotification();
  EXPECT_TRUE(a->result.ok()) << a->result.status();
  EXPECT_TRUE(b->result.ok()) << b->result.status();
}

TEST_F(PrefillWorkerTest, RejectsAPromptLargerThanTheCache) {
  StartWorker(/*blocks=*/2);
  absl::StatusOr<PrefillResult> result = Run(Job(TestPrompt(40)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("needs 3 KV blocks"));
}

TEST_F(PrefillWorkerTest, RejectsRequestsBeyondTheQueueLimit) {
  StartWorker(/*blocks=*/64, 2048, /*max_queued=*/1);
  store_.SetGateOpen(false);
  std::unique_ptr<Answer> held = Start(Job(TestPrompt(20)));
  absl::StatusOr<PrefillResult> refused = Run(Job(TestPrompt(20)));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  store_.SetGateOpen(true);
  held->done.WaitForNotification();
  EXPECT_TRUE(held->result.ok());
}

TEST_F(PrefillWorkerTest, RejectsInvalidJobsNamingTheField) {
  StartWorker();
  PrefillJob job = Job(TestPrompt(20));
  job.block_keys[0].hi ^= 1;
  absl::StatusOr<PrefillResult> result = Run(std::move(job));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("block_keys[0]"));
}

TEST_F(PrefillWorkerTest, StoreDownIsUnavailable) {
  StartWorker();
  store_.SetDown(absl::UnavailableError("kvstore node 127.0.0.1:1 is down"));
  absl::StatusOr<PrefillResult> result = Run(Job(TestPrompt(20)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("127.0.0.1:1"));
  EXPECT_EQ(worker_->Load().free_blocks, worker_->Load().total_blocks);
}

TEST_F(PrefillWorkerTest, CancelledJobIsAnsweredCancelledAndFreesItsBlocks) {
  StartWorker();
  store_.SetGateOpen(false);
  uint64_t ticket = 0;
  std::unique_ptr<Answer> answer = Start(Job(TestPrompt(40)), &ticket);
  worker_->Cancel(ticket);
  store_.SetGateOpen(true);
  answer->done.WaitForNotification();
  EXPECT_EQ(answer->result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(store_.puts(), 0);
  const PrefillLoad load = worker_->Load();
  EXPECT_EQ(load.free_blocks, load.total_blocks);
  EXPECT_EQ(load.queued_requests, 0);
}

TEST_F(PrefillWorkerTest, ExpiredJobIsAnsweredDeadlineExceeded) {
  StartWorker();
  PrefillJob job = Job(TestPrompt(20));
  job.deadline = absl::Now() - absl::Seconds(1);
  absl::StatusOr<PrefillResult> result = Run(std::move(job));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(PrefillWorkerTest, ComputesPastACorruptStoredBlock) {
  StartWorker();
  const std::vector<int32_t> prompt = TestPrompt(40);
  const std::vector<BlockKey> keys =
      ComputeKeyChain(reference_->fingerprint(), prompt, kBlockSize);
  ASSERT_TRUE(Run(Job(prompt)).ok());
  std::string bytes = *store_.Find(keys[1]);
  bytes.back() ^= 1;
  store_.Set(keys[1], bytes);
  absl::StatusOr<PrefillResult> result = Run(Job(prompt));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->cached_tokens, 16);
  EXPECT_EQ(result->first.token, GreedyToken(prompt));
}

TEST_F(PrefillWorkerTest, ShutdownAnswersPendingJobsUnavailable) {
  StartWorker();
  store_.SetGateOpen(false);
  std::unique_ptr<Answer> answer = Start(Job(TestPrompt(20)));
  std::thread release([this] {
    absl::SleepFor(absl::Milliseconds(50));
    store_.SetGateOpen(true);
  });
  worker_.reset();
  release.join();
  answer->done.WaitForNotification();
  EXPECT_EQ(answer->result.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tandem
