// Conversions between the prefill worker's C++ types and their tandem.v1
// messages (proto/worker.proto, proto/generate.proto). Pure functions,
// thread-safe.
#ifndef TANDEM_PREFILL_NODE_PREFILL_PROTO_H_
#define TANDEM_PREFILL_NODE_PREFILL_PROTO_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/sampler.h"
#include "prefill_node/prefill_job.h"
#include "prefill_node/prefill_worker.h"
#include "proto/generate.pb.h"
#include "proto/worker.pb.h"

namespace tandem {

// The sampling parameters of `sampling` with the documented defaults for
// unset fields. InvalidArgument ("sampling.seed ...") if the seed is unset:
// the router always sets it so that every worker draws the same stream.
// Ranges are checked later, by ValidatePrefillJob.
absl::StatusOr<SamplingParams> SeededSamplingFromProto(
    const v1::SamplingParams& sampling);

// The job a PrefillRequest asks for, without its deadline (the caller's).
// InvalidArgument naming the field for an unset seed or logprobs above
// kMaxLogprobs; everything else is checked by ValidatePrefillJob.
absl::StatusOr<PrefillJob> PrefillJobFromProto(
    const v1::PrefillRequest& request);

void ToProto(const PrefillHandoff& handoff, v1::Handoff* out);
// The reply for `result`; first_logprobs only if `logprobs` (token texts
// are left empty: the prefill worker has no tokenizer).
void ToProto(const PrefillResult& result, bool logprobs,
             v1::PrefillResponse* out);

// What a prefill worker reports of itself, for heartbeats and Load.
v1::WorkerLoad ToWorkerLoad(const PrefillLoad& load, const ServedModel& model,
                            const std::string& model_name, int max_batch);

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_PREFILL_PROTO_H_
