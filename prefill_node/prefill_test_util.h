// Helpers for the prefill worker's tests (unit and multi-process): prompts
// and the engine's own single-sequence prefill to compare the worker's
// answers with. Their model is tests/test_model.h's, at context 256.
#ifndef TANDEM_PREFILL_NODE_PREFILL_TEST_UTIL_H_
#define TANDEM_PREFILL_NODE_PREFILL_TEST_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/model.h"
#include "engine/paged_kv_cache.h"
#include "engine/status_macros.h"

namespace tandem::testing {

// A prompt of `n` byte tokens after BOS, varied by `salt`.
inline std::vector<int32_t> TestPrompt(int n, int salt = 0) {
  std::vector<int32_t> prompt = {256};
  for (int i = 1; i < n; ++i) prompt.push_back((i * 37 + salt * 11) % 256);
  return prompt;
}

// The engine's reference: `prompt` prefilled alone, in one pass, into a
// fresh cache with room for `extra` more tokens.
struct LocalPrefill {
  std::unique_ptr<PagedKvCache> cache;
  std::vector<float> logits;  // [vocab]: after the prompt's last token
};

inline absl::StatusOr<LocalPrefill> PrefillLocally(
    Model& model, absl::Span<const int32_t> prompt, int block_size,
    int extra = 1) {
  const KvLayout layout = model.kv_layout(block_size);
  const size_t blocks = (prompt.size() + extra + block_size - 1) / block_size;
  LocalPrefill out;
  TANDEM_ASSIGN_OR_RETURN(
      out.cache, PagedKvCache::Create(
                     layout, PagedKvCache::BlockStrideBytes(layout) * blocks));
  TANDEM_RETURN_IF_ERROR(out.cache->AddSequence(0));
  TANDEM_RETURN_IF_ERROR(out.cache->Append(0, prompt.size()));
  const Model::Chunk chunk{0, prompt};
  TANDEM_RETURN_IF_ERROR(model.Prefill(
      {&chunk, 1}, *out.cache, Model::Logits::kLastPerSequence, &out.logits));
  return out;
}

// The lowest id among the largest logits.
inline int32_t Argmax(absl::Span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                              logits.begin());
}

}  // namespace tandem::testing

#endif  // TANDEM_PREFILL_NODE_PREFILL_TEST_UTIL_H_
