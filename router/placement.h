// Placement: which worker takes a request's prefill and which its decode.
//
// Prefill goes to the worker with the least expected time to first token:
// the prompt tokens already waiting there (the larger of what it reported
// and what this router sent since) plus the tokens this prompt adds.
// Decode goes to the worker with the most headroom: the smaller of its free
// share of batch slots and its free share of KV blocks, both after the work
// this router sent since its last report. Ties go to the worker with less
// work, then to the first in the order given.
//
// A whole request goes to the colocated worker (decode_node --colocated)
// that can start it soonest: workers with room for the sequence (decode
// headroom >= 0) come before workers that would queue it; among them, the
// one with the fewest prompt tokens to compute before this prompt's (as for
// prefill), then the most headroom, then the first in the order given.
//
// Pure functions; thread-safe.
#ifndef TANDEM_ROUTER_PLACEMENT_H_
#define TANDEM_ROUTER_PLACEMENT_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "router/worker_registry.h"

namespace tandem {

// Prompt tokens `worker` would compute before finishing a prompt that needs
// `uncached_tokens` computed.
int64_t ExpectedPrefillTokens(const WorkerState& worker,
                              int64_t uncached_tokens);

// Free share of `worker`'s capacity, in (-inf, 1], once it takes a
// sequence that may fill `blocks_needed` KV blocks. Below 0 the worker
// would have to queue the sequence.
double DecodeHeadroom(const WorkerState& worker, int64_t blocks_needed);

// The index in `workers` of the prefill worker for a prompt with
// `uncached_tokens` tokens to compute. Unavailable if `workers` is empty.
absl::StatusOr<size_t> PickPrefillWorker(absl::Span<const WorkerState> workers,
                                         int64_t uncached_tokens);

// The index in `workers` of the decode worker for a sequence that may fill
// `blocks_needed` blocks. Unavailable if `workers` is empty.
absl::StatusOr<size_t> PickDecodeWorker(absl::Span<const WorkerState> workers,
                                        int64_t blocks_needed);

// The index in `workers` of the colocated worker for a request with
// `uncached_tokens` prompt tokens to compute and a sequence that may fill
// `blocks_needed` blocks. Unavailable if `workers` is empty.
absl::StatusOr<size_t> PickColocatedWorker(
    absl::Span<const WorkerState> workers, int64_t uncached_tokens,
    int64_t blocks_needed);

}  // namespace tandem

#endif  // TANDEM_ROUTER_PLACEMENT_H_
