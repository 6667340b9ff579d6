// The one conversion of a tandem.v1.SamplingParams message into the
// engine's SamplingParams, shared by the router and the workers, which then
// apply their own checks (a required seed, ranges).
#ifndef TANDEM_SERVICE_SAMPLING_PROTO_H_
#define TANDEM_SERVICE_SAMPLING_PROTO_H_

#include "engine/sampler.h"
#include "proto/generate.pb.h"

namespace tandem {

// The engine's sampling parameters for `proto`: each field set in `proto`
// (the seed included) is copied, and unset fields keep SamplingParams'
// defaults, which are the ones proto/generate.proto documents.
// num_logprobs is left at its default. Does not validate.
SamplingParams SamplingFromProto(const v1::SamplingParams& proto);

}  // namespace tandem

#endif  // TANDEM_SERVICE_SAMPLING_PROTO_H_
