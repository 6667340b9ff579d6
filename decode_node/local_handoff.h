// A prefill worker's side of the handoff, done locally with the engine: for
// tests of the decode worker, which need handoff blocks and a first token
// exactly as a prefill worker would publish them.
//
// Thread-compatible: uses `model`, which must not be used elsewhere during
// the call.
#ifndef TANDEM_DECODE_NODE_LOCAL_HANDOFF_H_
#define TANDEM_DECODE_NODE_LOCAL_HANDOFF_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "decode_node/decode_input.h"
#include "engine/model.h"
#include "engine/sampler.h"

namespace tandem {

struct LocalHandoff {
  // The decode request: prompt, first token, handoff, sampling (with
  // num_logprobs from `logprobs`), max_tokens; stop conditions empty.
  DecodeInput input;
  // The first token's logprob and alternatives, as the prefill reports them.
  SampledToken first;
  // The encoded blocks, keyed, in handoff order: the full blocks, then the
  // partial one if any.
  std::vector<std::string> blocks;
};

// Prefills `prompt` with Model::Prefill in a cache of its own, exports
// every full block and the trailing partial one with their content keys,
// and samples the first token with `sampling` (seed included) as local
// generation does. logprobs < 0 asks for none. InvalidArgument for a bad
// prompt or sampling parameters; the engine's errors otherwise.
absl::StatusOr<LocalHandoff> MakeLocalHandoff(
    Model& model, const std::vector<int32_t>& prompt,
    const SamplingParams& sampling, int logprobs, int max_tokens,
    int block_size = 16);

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_LOCAL_HANDOFF_H_
