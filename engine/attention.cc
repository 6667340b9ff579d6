#include "engine/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/attention_block.h"
#include "engine/kernels.h"
#include "engine/vector_math.h"

namespace tandem {
namespace {

// Queries per unit of parallel work in prefill: a tile's score matrix is
// [group * kQueryTile, context], and causal tiles skip the keys after their
// last row.
constexpr int kQueryTile = 128;

// One-token spans per thread above which a decode item takes all of its
// span's KV heads.
constexpr int kItemsPerThread = 4;

struct WorkItem {
  int span;
  int head;
  int first;  // first new token of the tile, relative to the span
  int count;
  int kv_heads = 1;  // KV heads of a one-token item
};

// Thread-private scratch, grown as needed and reused across calls.
std::vector<float>& Scratch(int which) {
  thread_local std::vector<float> buffers[4];
  return buffers[which];
}

// One new token's queries for the heads that share KV heads [kv_head,
// kv_head + kv_heads), `group` query heads each, against positions
// [0, context) read straight from the blocks: the decode step's path. q
// and out: [kv_heads * group, head_dim], contiguous. Within a block the
// planes of consecutive KV heads are adjacent, so taking several heads
// block by block reads longer runs of memory.
void AttendOne(const PagedKvCache& cache, int layer, int kv_head, int kv_heads,
               int group, const AttentionSpan& span, int context,
               const float* q, float scale, int head_dim, float* out) {
  const KvLayout& layout = cache.layout();
  const int block_size = layout.block_size;
  const int rows = kv_heads * group;  // query heads
  const long rows_stride = static_cast<long>(group) * head_dim;
  std::vector<float>& scores = Scratch(0);  // [rows, context]
  scores.resize(static_cast<size_t>(rows) * context);
  const long scores_stride = static_cast<long>(group) * context;
  // The hand-written block kernels where the processor and head size
  // allow; BLAS otherwise.
  static const bool use_avx512 = internal::HasBlockAttentionAvx512();
  const bool hand = use_avx512 && head_dim % 16 == 0 && head_dim <= 256;
  // Block by block: scores[:, p0 .. p0 + n) = scale * q K[n, head_dim]^T.
  for (int p0 = 0; p0 < context; p0 += block_size) {
    const int n = std::min(block_size, context - p0);
    const float* block = cache.BlockData(span.blocks[p0 / block_size]);
    for (int g = 0; g < kv_heads; ++g) {
      const float* k = block + layout.PlaneOffset(layer, 0, kv_head + g);
      const float* qg = q + g * rows_stride;
      float* sg = scores.data() + g * scores_stride + p0;
      if (hand) {
        internal::BlockScoresAvx512(qg, group, head_dim, k, n, scale, sg,
                                    context);
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, group, n, head_dim,
                    scale, qg, head_dim, k, head_dim, 0.0f, sg, context);
      }
    }
  }
  for (int h = 0; h < rows; ++h) {
    SoftmaxInPlace(scores.data() + static_cast<long>(h) * context, context);
  }
  // out[rows, head_dim] = sum over blocks of scores[:, p0 .. p0 + n) V.
  std::fill(out, out + rows * head_dim, 0.0f);
  for (int p0 = 0; p0 < context; p0 += block_size) {
    const int n = std::min(block_size, context - p0);
    const float* block = cache.BlockData(span.blocks[p0 / block_size]);
    for (int g = 0; g < kv_heads; ++g) {
      const float* v = block + layout.PlaneOffset(layer, 1, kv_head + g);
      const float* sg = scores.data() + g * scores_stride + p0;
      float* og = out + g * rows_stride;
      if (hand) {
        internal::BlockMixAvx512(sg, context, group, v, n, head_dim, og);
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, group, head_dim,
                    n, 1.0f, sg, context, v, head_dim, 1.0f, og, head_dim);
      }
    }
  }
}

// Copies positions [0, context) of one head's K or V into dst
// [context, head_dim].
void Gather(const PagedKvCache& cache, const AttentionSpan& span,
            size_t plane_offset, int context, int head_dim, float* dst) {
  const int block_size = cache.layout().block_size;
  for (int p = 0; p < context; p += block_size) {
    const int n = std::min(block_size, context - p);
    const float* src =
        cache.BlockData(span.blocks[p / block_size]) + plane_offset;
    std::memcpy(dst + static_cast<long>(p) * head_dim, src,
                sizeof(float) * n * head_dim);
  }
}

// A tile of query rows with BLAS, for the `group` query heads that share
// `kv_head`, stacked so that each product covers all of them: S = Q K^T,
// causal mask, softmax, O = S V. q and out point at the tile's first row
// and the group's first head, rows q_stride apart.
void AttendTile(const PagedKvCache& cache, int layer, int kv_head, int group,
                const AttentionSpan& span, const WorkItem& item, int q_stride,
                const float* q, float scale, int head_dim, float* out) {
  const KvLayout& layout = cache.layout();
  const int first_pos = span.start + item.first;
  const int context = first_pos + item.count;  // keys the last row sees
  const int rows = group * item.count;         // [group][count] stacked
  std::vector<float>& keys = Scratch(0);
  std::vector<float>& values = Scratch(1);
  std::vector<float>& scores = Scratch(2);
  std::vector<float>& stacked = Scratch(3);  // queries, then outputs
  keys.resize(static_cast<size_t>(context) * head_dim);
  values.resize(static_cast<size_t>(context) * head_dim);
  scores.resize(static_cast<size_t>(rows) * context);
  stacked.resize(static_cast<size_t>(rows) * head_dim);
  Gather(cache, span, layout.PlaneOffset(layer, 0, kv_head), context, head_dim,
         keys.data());
  Gather(cache, span, layout.PlaneOffset(layer, 1, kv_head), context, head_dim,
         values.data());
  const size_t row_bytes = sizeof(float) * head_dim;
  for (int h = 0; h < group; ++h) {
    for (int i = 0; i < item.count; ++i) {
      std::memcpy(
          stacked.data() + (static_cast<long>(h) * item.count + i) * head_dim,
          q + static_cast<long>(i) * q_stride + h * head_dim, row_bytes);
    }
  }
  // scores[rows, context] = scale * stacked[rows, head_dim] keys^T
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, context, head_dim,
              scale, stacked.data(), head_dim, keys.data(), head_dim, 0.0f,
              scores.data(), context);
  for (int r = 0; r < rows; ++r) {
    float* row = scores.data() + static_cast<long>(r) * context;
    const int visible = first_pos + r % item.count + 1;
    std::fill(row + visible, row + context, 0.0f);
    SoftmaxInPlace(row, visible);
  }
  // stacked[rows, head_dim] = scores[rows, context] values[context, head_dim]
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim,
              context, 1.0f, scores.data(), context, values.data(), head_dim,
              0.0f, stacked.data(), head_dim);
  for (int h = 0; h < group; ++h) {
    for (int i = 0; i < item.count; ++i) {
      std::memcpy(
          out + static_cast<long>(i) * q_stride + h * head_dim,
          stacked.data() + (static_cast<long>(h) * item.count + i) * head_dim,
          row_bytes);
    }
  }
}

}  // namespace

void WriteKv(PagedKvCache& cache, int layer,
             absl::Span<const AttentionSpan> spans, const float* k,
             const float* v) {
  const KvLayout& layout = cache.layout();
  const int kv_dim = layout.num_kv_heads * layout.head_dim;
  const size_t row_bytes = sizeof(float) * layout.head_dim;
  for (const AttentionSpan& span : spans) {
    for (int i = 0; i < span.count; ++i) {
      const int pos = span.start + i;
      float* block = cache.BlockData(span.blocks[pos / layout.block_size]);
      const int slot = pos % layout.block_size;
      const long row = static_cast<long>(span.row + i) * kv_dim;
      for (int h = 0; h < layout.num_kv_heads; ++h) {
        const long src = row + static_cast<long>(h) * layout.head_dim;
        const size_t dst = static_cast<size_t>(slot) * layout.head_dim;
        std::memcpy(block + layout.PlaneOffset(layer, 0, h) + dst, k + src,
                    row_bytes);
        std::memcpy(block + layout.PlaneOffset(layer, 1, h) + dst, v + src,
                    row_bytes);
      }
    }
  }
}

void Attend(const PagedKvCache& cache, int layer, const AttentionShape& shape,
            absl::Span<const AttentionSpan> spans, const float* q, float* out) {
  const int group = shape.num_heads / shape.num_kv_heads;
  // A one-token span is one item per KV head, whose query heads read each
  // block once; or, when there are enough such spans to keep every thread
  // busy, one item for all its heads, which reads each block's planes in
  // one run.
  int one_token_spans = 0;
  for (const AttentionSpan& span : spans) one_token_spans += span.count == 1;
  const int kv_heads_per_item =
      one_token_spans >= kItemsPerThread * EngineThreads() ? shape.num_kv_heads
                                                           : 1;
  std::vector<WorkItem> items;
  for (int s = 0; s < static_cast<int>(spans.size()); ++s) {
    if (spans[s].count == 1) {
      for (int g = 0; g < shape.num_kv_heads; g += kv_heads_per_item) {
        items.push_back({s, g * group, 0, 1, kv_heads_per_item});
      }
      continue;
    }
    // One item per KV head and tile of queries, the last tiles (which see
    // the most keys) first, so that the dynamic schedule ends evenly.
    const int tiles = (spans[s].count + kQueryTile - 1) / kQueryTile;
    for (int t = tiles - 1; t >= 0; --t) {
      const int first = t * kQueryTile;
      for (int g = 0; g < shape.num_kv_heads; ++g) {
        items.push_back({s, g * group, first,
                         std::min(kQueryTile, spans[s].count - first)});
      }
    }
  }
  const int q_stride = shape.num_heads * shape.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
#pragma omp parallel for schedule(dynamic)
  for (size_t n = 0; n < items.size(); ++n) {
    const WorkItem& item = items[n];
    const AttentionSpan& span = spans[item.span];
    const long row = span.row + item.first;
    const long col = static_cast<long>(item.head) * shape.head_dim;
    const float* q_tile = q + row * q_stride + col;
    float* out_tile = out + row * q_stride + col;
    const int kv_head = item.head / group;
    if (item.count == 1) {
      AttendOne(cache, layer, kv_head, item.kv_heads, group, span,
                span.start + 1, q_tile, scale, shape.head_dim, out_tile);
    } else {
      AttendTile(cache, layer, kv_head, group, span, item, q_stride, q_tile,
                 scale, shape.head_dim, out_tile);
    }
  }
}

}  // namespace tandem
