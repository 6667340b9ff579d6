// Helpers for the prefill worker's tests (unit and multi-process): a small
// random model on disk and the engine's own single-sequence prefill to
// compare the worker's answers with.
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
#include "tools/random_model.h"

namespace tandem::testing {

// Writes a random byte-level Llama model into `dir` (which must not exist
// or be empty): vocab 258 (BOS 256, EOS 257), hidden 32, 2 layers, 2 query
// heads sharing 1 KV head, context 256.
inline absl::Status WritePrefillTestModel(const std::filesystem::path& dir,
                                          uint64_t seed = 7) {
  RandomModelFlags flags;
  flags.out = dir.string();
  flags.seed = seed;
  flags.hidden_size = 32;
  flags.intermediate_size = 64;
  flags.num_layers = 2;
  flags.num_heads = 2;
  flags.num_kv_heads = 1;
  flags.vocab_size = 258;
  flags.max_position_embeddings = 256;
  flags.bos_token_id = 256;
  flags.eos_token_id = "257";
  TANDEM_ASSIGN_OR_RETURN(RandomModelOptions options,
                          RandomModelOptionsFromFlags(flags));
  return WriteRandomModel(options, dir);
}

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
