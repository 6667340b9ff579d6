#include "engine/token_draw.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace tandem {
namespace {

constexpr float kWeightScale = static_cast<float>(1ull << kWeightFractionBits);

// Tokens at least 2^-12 as probable as the most probable one are "heavy":
// gathered first, since top-k and top-p rarely reach past them.
constexpr uint64_t kHeavyWeight = uint64_t{1} << (kWeightFractionBits - 12);
constexpr uint64_t kNoWeightLimit = ~uint64_t{0};

// Below this many tokens the top-p selection sorts instead of partitioning.
constexpr ptrdiff_t kSelectSortSize = 64;

// The ranking: a before b if a has the larger weight, or an equal weight and
// the lower id. A strict total order on token ids.
struct RankedBefore {
  const uint64_t* q;
  bool operator()(int32_t a, int32_t b) const {
    return q[a] > q[b] || (q[a] == q[b] && a < b);
  }
};

// Appends to `ids` the tokens whose weight is in [low, high), in token
// order, and returns their total weight.
uint64_t Gather(const std::vector<uint64_t>& q, uint64_t low, uint64_t high,
                std::vector<int32_t>& ids) {
  uint64_t mass = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    if (q[i] >= low && q[i] < high) {
      ids.push_back(static_cast<int32_t>(i));
      mass += q[i];
    }
  }
  return mass;
}

// The weight top-p's nucleus must reach: ceil(top_p * mass), at least 1.
uint64_t TopPNeed(float top_p, uint64_t mass) {
  const double scaled =
      std::ceil(static_cast<double>(top_p) * static_cast<double>(mass));
  return std::clamp<uint64_t>(static_cast<uint64_t>(scaled), 1, mass);
}

// floor(random * mass / 2^64): uniform on [0, mass) for uniform random bits.
uint64_t ScaleRandom(uint64_t random, uint64_t mass) {
  return static_cast<uint64_t>(
      (static_cast<unsigned __int128>(random) * mass) >> 64);
}

// Fills q with the fixed-point weights of temperature and min-p (see the
// header) and returns their sum. Adds exp(row[i] - max) to *exp_sum if given.
uint64_t ComputeWeights(absl::Span<const float> row, float temperature,
                        float min_p, std::vector<uint64_t>& q,
                        double* exp_sum) {
  const float max = *std::max_element(row.begin(), row.end());
  q.resize(row.size());
  uint64_t total = 0;
  double sum = 0.0;
  for (size_t i = 0; i < row.size(); ++i) {
    // Subtracting the max first keeps the scaled logits <= 0: no overflow.
    const float w = std::exp((row[i] - max) / temperature);
    sum += w;
    q[i] = w < min_p ? 0 : static_cast<uint64_t>(w * kWeightScale);
    total += q[i];
  }
  if (exp_sum != nullptr) *exp_sum = sum;
  return total;
}

// Returns the first i, in token order, whose cumulative weight exceeds
// `target`. REQUIRES: target < sum of q.
int32_t DrawInTokenOrder(const std::vector<uint64_t>& q, uint64_t target) {
  uint64_t acc = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    acc += q[i];
    if (acc > target) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(q.size()) - 1;  // Unreachable by REQUIRES.
}

// Partitions `ids` so that its first k entries are its k best ranked.
// Returns their total weight. REQUIRES: 0 < k < ids.size().
uint64_t KeepTopK(std::vector<int32_t>& ids, size_t k, RankedBefore before) {
  std::nth_element(ids.begin(), ids.begin() + (k - 1), ids.end(), before);
  ids.resize(k);
  uint64_t mass = 0;
  for (int32_t id : ids) mass += before.q[id];
  return mass;
}

// Reorders `ids` so that its shortest ranked prefix whose weight reaches
// `need` comes first, and returns that prefix's length; *mass gets its
// weight. Expected linear time: weighted quickselect, halving the range that
// holds the boundary. REQUIRES: 0 < need <= total weight of ids.
size_t KeepTopP(std::vector<int32_t>& ids, uint64_t need, RankedBefore before,
                uint64_t* mass) {
  // Invariant: ids[0, lo) rank before ids[lo, hi), which rank before
  // ids[hi, end); weight(ids[0, lo)) = below < need <= below +
  // weight(ids[lo, hi)).
  auto lo = ids.begin();
  auto hi = ids.end();
  uint64_t below = 0;
  while (hi - lo > kSelectSortSize) {
    const auto mid = lo + (hi - lo) / 2;
    std::nth_element(lo, mid, hi, before);
    uint64_t left = 0;
    for (auto it = lo; it != mid; ++it) left += before.q[*it];
    if (below + left >= need) {
      hi = mid;
    } else {
      below += left;
      lo = mid;
    }
  }
  std::sort(lo, hi, before);
  for (auto it = lo; it != hi; ++it) {
    below += before.q[*it];
    if (below >= need) {
      *mass = below;
      return static_cast<size_t>(it - ids.begin()) + 1;
    }
  }
  *mass = below;  // Unreachable by the invariant.
  return static_cast<size_t>(hi - ids.begin());
}

// Draws among ids[0, kept) (total weight `mass`) in token id order.
int32_t DrawAmongKept(std::vector<int32_t>& ids, size_t kept, uint64_t mass,
                      uint64_t random, const std::vector<uint64_t>& q) {
  // The kept set, not its order, is canonical: restore token order before
  // accumulating. A large set is walked through the vocabulary instead of
  // sorted, marking members by their rank against the worst kept token.
  const uint64_t target = ScaleRandom(random, mass);
  uint64_t acc = 0;
  if (kept * 8 <= q.size()) {
    std::sort(ids.begin(), ids.begin() + kept);
    for (size_t i = 0; i < kept; ++i) {
      acc += q[ids[i]];
      if (acc > target) return ids[i];
    }
    return ids[kept - 1];  // Unreachable: the weights sum to mass.
  }
  const RankedBefore before{q.data()};
  const int32_t last =
      *std::max_element(ids.begin(), ids.begin() + kept, before);
  for (size_t i = 0; i < q.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (q[i] == 0 || before(last, id)) continue;
    acc += q[i];
    if (acc > target) return id;
  }
  return last;  // Unreachable: the weights sum to mass.
}

}  // namespace

int32_t DrawToken(absl::Span<const float> row, const TokenFilter& filter,
                  uint64_t random, DrawScratch& scratch, double* exp_sum) {
  std::vector<uint64_t>& q = scratch.weights;
  const uint64_t total =
      ComputeWeights(row, filter.temperature, filter.min_p, q, exp_sum);
  const bool top_k_on =
      filter.top_k > 0 && static_cast<size_t>(filter.top_k) < row.size();
  const bool top_p_on = filter.top_p < 1.0f;
  if (!top_k_on && !top_p_on) {
    return DrawInTokenOrder(q, ScaleRandom(random, total));
  }

  // Gather the heavy tokens first; the light ones matter only when the
  // heavy ones hold fewer than top_k tokens or less than top_p of the mass.
  std::vector<int32_t>& ids = scratch.candidates;
  ids.clear();
  const RankedBefore before{q.data()};
  uint64_t mass = Gather(q, kHeavyWeight, kNoWeightLimit, ids);
  uint64_t need = 0;  // The mass top-p must reach.
  if (top_k_on) {
    const auto k = static_cast<size_t>(filter.top_k);
    if (ids.size() < k) mass += Gather(q, 1, kHeavyWeight, ids);
    if (ids.size() > k) mass = KeepTopK(ids, k, before);
    need = TopPNeed(filter.top_p, mass);
  } else {
    need = TopPNeed(filter.top_p, total);
    if (mass < need) mass += Gather(q, 1, kHeavyWeight, ids);
  }
  size_t kept = ids.size();
  if (top_p_on) kept = KeepTopP(ids, need, before, &mass);
  return DrawAmongKept(ids, kept, mass, random, q);
}

}  // namespace tandem
