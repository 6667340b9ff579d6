// Test helpers shared by the scheduler's tests: a fixture on the tiny
// byte-level test model, an in-memory block store, an observer that records one
// sequence's output, prompts and sampling parameters for that model (BOS 256).
#ifndef TANDEM_DECODE_NODE_SCHEDULER_TEST_UTIL_H_
#define TANDEM_DECODE_NODE_SCHEDULER_TEST_UTIL_H_

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "decode_node/block_source.h"
#include "decode_node/decode_input.h"
#include "decode_node/scheduler.h"
#include "decode_node/sequence.h"
#include "engine/byte_tokenizer.h"
#include "engine/generation.h"
#include "engine/kv_block_codec.h"
#include "engine/model.h"
#include "engine/paged_kv_cache.h"
#include "gtest/gtest.h"
#include "tests/test_model.h"

namespace tandem {
namespace scheduler_testing {

// Blocks by key, in memory; `down` makes every read and write Unavailable.
// Counts the blocks written.
class MapBlockSource : public BlockSource {
 public:
  void Put(const KvHandoff& handoff, const std::vector<std::string>& blocks) {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < blocks.size(); ++i) {
      const BlockKey key = i < handoff.full_blocks.size()
                               ? handoff.full_blocks[i]
                               : *handoff.partial_block;
      blocks_[key] = blocks[i];
    }
  }
  void Remove(const BlockKey& key) {
    absl::MutexLock lock(&mu_);
    blocks_.erase(key);
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    blocks_.clear();
  }
  void SetDown(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys) override {
    absl::MutexLock lock(&mu_);
    std::vector<absl::StatusOr<std::string>> out;
    for (const BlockKey& key : keys) {
      auto it = blocks_.find(key);
      if (down_) {
        out.push_back(absl::UnavailableError("store is down"));
      } else if (it == blocks_.end()) {
        out.push_back(absl::NotFoundError("no such block"));
      } else {
        out.push_back(it->second);
      }
    }
    return out;
  }
  absl::StatusOr<size_t> LongestPrefix(
      absl::Span<const BlockKey> chain) override {
    absl::MutexLock lock(&mu_);
    if (down_) return absl::UnavailableError("store is down");
    size_t stored = 0;
    while (stored < chain.size() && blocks_.contains(chain[stored])) ++stored;
    return stored;
  }
  std::vector<absl::Status> PutMany(
      absl::Span<const std::string> blocks) override {
    absl::MutexLock lock(&mu_);
    std::vector<absl::Status> out;
    for (const std::string& block : blocks) {
      absl::StatusOr<KvBlockHeader> header = ReadBlockHeader(block);
      if (down_) {
        out.push_back(absl::UnavailableError("store is down"));
      } else if (!header.ok() || !header->metadata.key.has_value()) {
        out.push_back(absl::InvalidArgumentError("not a keyed block"));
      } else {
        blocks_[*header->metadata.key] = block;
        ++puts_;
        out.push_back(absl::OkStatus());
      }
    }
    return out;
  }
  int puts() const {
    absl::MutexLock lock(&mu_);
    return puts_;
  }
  bool Contains(const BlockKey& key) const {
    absl::MutexLock lock(&mu_);
    return blocks_.contains(key);
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<BlockKey, std::string> blocks_ ABSL_GUARDED_BY(mu_);
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  int puts_ ABSL_GUARDED_BY(mu_) = 0;
};

// Records one sequence's output.
class Recorder : public SequenceObserver {
 public:
  void OnToken(const GeneratedToken& token, int index) override {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(index, static_cast<int>(tokens_.size()));
    tokens_.push_back(token);
    if (token.finish != FinishReason::kNone) done_.Notify();
  }
  void OnPromptComputed(int cached_tokens) override {
    absl::MutexLock lock(&mu_);
    EXPECT_TRUE(tokens_.empty());
    cached_tokens_ = cached_tokens;
  }
  void OnError(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    error_ = status;
    done_.Notify();
  }
  std::vector<GeneratedToken> tokens() const {
    absl::MutexLock lock(&mu_);
    return tokens_;
  }
  // -1 until OnPromptComputed.
  int cached_tokens() const {
    absl::MutexLock lock(&mu_);
    return cached_tokens_;
  }
  absl::Status error() const {
    absl::MutexLock lock(&mu_);
    return error_;
  }
  bool done() const { return done_.HasBeenNotified(); }
  bool WaitDone() const {
    return done_.WaitForNotificationWithTimeout(absl::Seconds(60));
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<GeneratedToken> tokens_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int cached_tokens_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Notification done_;
};

// What local generation (engine/generation.h) produces for `input`.
inline std::vector<GeneratedToken> LocalTokens(Model& model,
                                               const Tokenizer& tokenizer,
                                               const DecodeInput& input) {
  GenerationRequest request;
  request.prompt_ids = input.prompt;
  request.sampling = input.sampling;
  request.max_tokens = input.max_tokens;
  request.stop = input.stop;
  request.stop_token_ids = input.stop_token_ids;
  std::vector<GeneratedToken> tokens;
  auto result = Generate(model, tokenizer, request,
                         [&tokens](const GeneratedToken& token) {
                           tokens.push_back(token);
                           return absl::OkStatus();
                         });
  EXPECT_TRUE(result.ok()) << result.status();
  return tokens;
}

// Expects `got` to be `want` token for token: ids, text, finish reasons
// and logprobs (those of the first token only if `first_logprobs`: a
// disaggregated first token's come from the prefill, not the scheduler).
inline void ExpectSameStream(const std::vector<GeneratedToken>& got,
                             const std::vector<GeneratedToken>& want,
                             bool first_logprobs) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].token, want[i].token) << "token " << i;
    EXPECT_EQ(got[i].text, want[i].text) << "token " << i;
    EXPECT_EQ(got[i].finish, want[i].finish) << "token " << i;
    if (i == 0 && !first_logprobs) continue;
    EXPECT_NEAR(got[i].logprob, want[i].logprob, 1e-3) << "token " << i;
    EXPECT_EQ(got[i].top_logprobs.size(), want[i].top_logprobs.size());
  }
}

// A fixture for scheduler tests: its suite shares the tiny byte-level
// model (seed 11, hidden 32, 2 layers, vocab 258, BOS 256, EOS 257, context
// 256, one engine thread), written under the test's temporary directory and
// loaded once; each test has its own in-memory block store.
class TinyModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    static int suites = 0;
    dir_ = new std::filesystem::path(
        std::filesystem::path(::testing::TempDir()) /
        absl::StrCat("tiny_model_", getpid(), "_", suites++));
    std::filesystem::remove_all(*dir_);
    ASSERT_TRUE(testing::WriteTestModel(
                    *dir_, {.seed = 11, .num_kv_heads = 2, .context = 256})
                    .ok());
    auto loaded = Model::Load(*dir_, ModelOptions{.threads = 1});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    model_ = loaded->release();
    tokenizer_ = ByteTokenizer::Create(256, 257)->release();
  }

  static void TearDownTestSuite() {
    delete model_;
    delete tokenizer_;
    if (dir_ != nullptr) std::filesystem::remove_all(*dir_);
    delete dir_;
    model_ = nullptr;
    tokenizer_ = nullptr;
    dir_ = nullptr;
  }

  // Options for a scheduler that the test drives with Step (fetches run
  // inline), with `blocks` cache blocks of `block_size` tokens.
  static SchedulerOptions StepOptions(int blocks, int block_size) {
    SchedulerOptions options;
    options.block_size = block_size;
    options.kv_cache_bytes =
        PagedKvCache::BlockStrideBytes(model_->kv_layout(block_size)) * blocks;
    options.max_batch = 8;
    options.max_waiting = 8;
    options.fetch_threads = 0;
    return options;
  }

  // A scheduler on the suite's model and this test's store.
  std::unique_ptr<Scheduler> Create(const SchedulerOptions& options) {
    auto scheduler = Scheduler::Create(model_, tokenizer_, &store_, options);
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    return scheduler.ok() ? std::move(scheduler).value() : nullptr;
  }

  // What local generation produces for `input` on the suite's model.
  static std::vector<GeneratedToken> Local(const DecodeInput& input) {
    return LocalTokens(*model_, *tokenizer_, input);
  }

  static inline std::filesystem::path* dir_ = nullptr;
  static inline Model* model_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
  MapBlockSource store_;
};

// Steps `scheduler` until every recorder is done; fails the test after
// `max_steps`.
inline void RunUntilDone(Scheduler& scheduler,
                         const std::vector<std::shared_ptr<Recorder>>& all,
                         int max_steps = 400) {
  for (int step = 0; step < max_steps; ++step) {
    bool done = true;
    for (const auto& recorder : all) done = done && recorder->done();
    if (done) return;
    scheduler.Step();
  }
  FAIL() << "sequences did not finish in " << max_steps << " steps";
}

inline std::vector<int32_t> Prompt(int length, int salt) {
  std::vector<int32_t> ids = {256};
  for (int i = 1; i < length; ++i) ids.push_back(32 + (i * 7 + salt) % 90);
  return ids;
}

inline SamplingParams Greedy() {
  SamplingParams params;
  params.temperature = 0;
  return params;
}

inline SamplingParams Seeded(uint64_t seed) {
  SamplingParams params;
  params.temperature = 0.9f;
  params.top_k = 40;
  params.top_p = 0.95f;
  params.repetition_penalty = 1.2f;
  params.presence_penalty = 0.5f;
  params.seed = seed;
  return params;
}

}  // namespace scheduler_testing
}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_SCHEDULER_TEST_UTIL_H_
