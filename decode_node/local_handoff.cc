#include "decode_node/local_handoff.h"

#include <memory>
#include <utility>

#include "absl/types/span.h"
#include "engine/block_key.h"
#include "engine/kv_block_codec.h"
#include "engine/paged_kv_cache.h"
#include "engine/status_macros.h"

namespace tandem {
namespace {

constexpr SequenceId kSequence = 0;

absl::StatusOr<std::string> ExportKeyed(const Model& model,
                                        const PagedKvCache& cache,
                                        BlockId block, int tokens,
                                        const BlockKey& key) {
  BlockMetadata metadata;
  metadata.model = model.fingerprint();
  metadata.token_count = tokens;
  metadata.key = key;
  return ExportBlock(cache.layout(), cache.BlockData(block), metadata);
}

}  // namespace

absl::StatusOr<LocalHandoff> MakeLocalHandoff(
    Model& model, const std::vector<int32_t>& prompt,
    const SamplingParams& sampling, int logprobs, int max_tokens,
    int block_size) {
  LocalHandoff out;
  out.input.prompt = prompt;
  out.input.sampling = sampling;
  out.input.sampling.num_logprobs = logprobs < 0 ? 0 : logprobs;
  out.input.logprobs = logprobs >= 0;
  out.input.max_tokens = max_tokens;

  // Prefill the whole prompt, as local generation does.
  const KvLayout layout = model.kv_layout(block_size);
  const int num_blocks = (prompt.size() + block_size - 1) / block_size;
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<PagedKvCache> cache,
      PagedKvCache::Create(
          layout, PagedKvCache::BlockStrideBytes(layout) * num_blocks));
  TANDEM_RETURN_IF_ERROR(cache->AddSequence(kSequence));
  TANDEM_RETURN_IF_ERROR(cache->Append(kSequence, prompt.size()));
  const Model::Chunk chunk{kSequence, prompt};
  std::vector<float> logits;
  TANDEM_RETURN_IF_ERROR(model.Prefill(
      {&chunk, 1}, *cache, Model::Logits::kLastPerSequence, &logits));

  // Sample the first token.
  TANDEM_ASSIGN_OR_RETURN(SequenceSamplingState state,
                          SequenceSamplingState::Create(out.input.sampling));
  TANDEM_RETURN_IF_ERROR(state.RecordPromptTokens(prompt));
  SequenceSamplingState* rows[] = {&state};
  Sampler sampler;
  TANDEM_ASSIGN_OR_RETURN(
      std::vector<SampledToken> sampled,
      sampler.Sample(absl::MakeSpan(logits), model.config().vocab_size, rows));
  out.first = std::move(sampled[0]);
  out.input.first_token = out.first.token;

  // Export the blocks with their keys.
  KvHandoff& handoff = out.input.handoff;
  handoff.model = model.fingerprint();
  handoff.block_size = block_size;
  handoff.next_draw = state.next_draw();
  handoff.full_blocks =
      ComputeKeyChain(model.fingerprint(), prompt, block_size);
  const absl::Span<const BlockId> table = cache->BlockTable(kSequence);
  for (size_t i = 0; i < handoff.full_blocks.size(); ++i) {
    TANDEM_ASSIGN_OR_RETURN(std::string block,
                            ExportKeyed(model, *cache, table[i], block_size,
                                        handoff.full_blocks[i]));
    out.blocks.push_back(std::move(block));
  }
  const int tail = prompt.size() % block_size;
  if (tail != 0) {
    const size_t full = handoff.full_blocks.size();
    handoff.partial_block = ComputeBlockKey(
        model.fingerprint(), full == 0 ? nullptr : &handoff.full_blocks.back(),
        absl::MakeConstSpan(prompt).subspan(full * block_size));
    TANDEM_ASSIGN_OR_RETURN(
        std::string block,
        ExportKeyed(model, *cache, table[full], tail, *handoff.partial_block));
    out.blocks.push_back(std::move(block));
  }
  return out;
}

}  // namespace tandem
