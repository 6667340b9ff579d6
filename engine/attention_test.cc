#include "engine/attention.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "engine/kernels.h"
#include "engine/paged_kv_cache.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

constexpr int kLayers = 2;
constexpr int kKvHeads = 2;
constexpr int kGroup = 3;
constexpr int kHeads = kKvHeads * kGroup;

// Sequences of random K and V in a paged cache, and the plain softmax
// attention over them that Attend must reproduce.
class AttendTest : public testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    head_dim_ = GetParam();
    layout_ = KvLayout{kLayers, kKvHeads, head_dim_, 16};
    auto cache = PagedKvCache::Create(
        layout_, PagedKvCache::BlockStrideBytes(layout_) * 256);
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_ = std::move(cache).value();
    for (int b = 0; b < cache_->num_blocks(); ++b) {
      float* data = cache_->BlockData(b);
      for (size_t i = 0; i < layout_.BlockFloats(); ++i) data[i] = Draw();
    }
  }

  float Draw() { return dist_(rng_); }

  void AddSequence(SequenceId seq, int tokens) {
    ASSERT_TRUE(cache_->AddSequence(seq).ok());
    ASSERT_TRUE(cache_->Append(seq, tokens).ok());
  }

  // out[head_dim] for query head h of the token at `position`.
  std::vector<double> Reference(SequenceId seq, int layer, int h, int position,
                                const float* q) const {
    const int kv = h / kGroup;
    const auto blocks = cache_->BlockTable(seq);
    auto row = [&](int is_value, int t) {
      return cache_->BlockData(blocks[t / layout_.block_size]) +
             layout_.PlaneOffset(layer, is_value, kv) +
             (t % layout_.block_size) * head_dim_;
    };
    std::vector<double> scores(position + 1);
    double max_score = -1e300;
    for (int t = 0; t <= position; ++t) {
      double dot = 0;
      for (int d = 0; d < head_dim_; ++d) dot += double{q[d]} * row(0, t)[d];
      scores[t] = dot / std::sqrt(static_cast<double>(head_dim_));
      max_score = std::max(max_score, scores[t]);
    }
    double total = 0;
    for (double& s : scores) total += s = std::exp(s - max_score);
    std::vector<double> out(head_dim_, 0.0);
    for (int t = 0; t <= position; ++t) {
      for (int d = 0; d < head_dim_; ++d) {
        out[d] += scores[t] / total * row(1, t)[d];
      }
    }
    return out;
  }

  // Runs Attend over `spans` (rows in span order) with random queries and
  // checks every row and head against Reference.
  void Check(const std::vector<SequenceId>& seqs,
             std::vector<AttentionSpan> spans) {
    const int q_dim = kHeads * head_dim_;
    int rows = 0;
    for (AttentionSpan& span : spans) {
      span.row = rows;
      rows += span.count;
    }
    std::vector<float> q(static_cast<size_t>(rows) * q_dim);
    for (float& x : q) x = Draw();
    const AttentionShape shape{kHeads, kKvHeads, head_dim_};
    for (int layer = 0; layer < kLayers; ++layer) {
      std::vector<float> out(q.size(), 0.0f);
      Attend(*cache_, layer, shape, spans, q.data(), out.data());
      for (size_t s = 0; s < spans.size(); ++s) {
        for (int i = 0; i < spans[s].count; ++i) {
          const long r = spans[s].row + i;
          for (int h = 0; h < kHeads; ++h) {
            const long offset = r * q_dim + h * head_dim_;
            const std::vector<double> want = Reference(
                seqs[s], layer, h, spans[s].start + i, q.data() + offset);
            for (int d = 0; d < head_dim_; ++d) {
              ASSERT_NEAR(out[offset + d], want[d], 2e-5)
                  << "layer " << layer << " span " << s << " token " << i
                  << " head " << h << " dim " << d;
            }
          }
        }
      }
    }
  }

  int head_dim_ = 0;
  KvLayout layout_;
  std::unique_ptr<PagedKvCache> cache_;
  std::mt19937 rng_{11};
  std::uniform_real_distribution<float> dist_{-1.0f, 1.0f};
};

// Several query tiles, the later ones seeing more keys than the earlier.
TEST_P(AttendTest, LongPromptMatchesPlainAttention) {
  AddSequence(1, 300);
  Check({1}, {{cache_->BlockTable(1), 0, 300, 0}});
}

// A chunk of a prompt after its first part: queries start mid-sequence.
TEST_P(AttendTest, LaterChunkOfAPromptMatchesPlainAttention) {
  AddSequence(1, 290);
  Check({1}, {{cache_->BlockTable(1), 100, 190, 0}});
}

// One new token per sequence, in a batch too narrow and in one wide enough
// to split the work by sequence rather than by KV head.
TEST_P(AttendTest, DecodeBatchesMatchPlainAttention) {
  for (int batch : {3, 8 * EngineThreads() + 1}) {
    std::vector<SequenceId> seqs;
    std::vector<AttentionSpan> spans;
    for (int b = 0; b < batch; ++b) {
      const SequenceId seq = 100 * batch + b;
      const int tokens = 1 + (37 * b) % 70;
      AddSequence(seq, tokens);
      seqs.push_back(seq);
      spans.push_back({cache_->BlockTable(seq), tokens - 1, 1, 0});
    }
    Check(seqs, spans);
    for (SequenceId seq : seqs) ASSERT_TRUE(cache_->RemoveSequence(seq).ok());
  }
}

// 32: the AVX-512 block kernels where the processor has them; 24: BLAS.
INSTANTIATE_TEST_SUITE_P(HeadDims, AttendTest, testing::Values(32, 24));

}  // namespace
}  // namespace tandem
