// The tandem.v1.DecodeWorker service over a Scheduler: Decode streams one
// request's tokens as the scheduler samples them, Load reports the
// worker's occupancy. This is the only place where the decode worker turns
// absl::Status into gRPC status.
//
// Decode: the request is converted and checked (INVALID_ARGUMENT naming the
// field, FAILED_PRECONDITION for a handoff of another model or block size,
// RESOURCE_EXHAUSTED when the waiting queue is full) and submitted. Each
// token the scheduler accepts becomes a DecodeResponse, the prefill's first
// token first; replies are queued and written one at a time by the call's
// reactor, so a slow client never blocks the scheduler (replies that pile
// up behind a write in flight are merged into one). The last reply carries
// finish_reason; an error after the first reply ends the stream with its
// code (NOT_FOUND, FAILED_PRECONDITION, UNAVAILABLE, ...). Cancelling the
// call, or its deadline passing, cancels the sequence, whose blocks the
// scheduler frees at its next iteration.
//
// Generate (colocated workers only, DecodeWorkerInfo::colocated): the
// same, for a whole request whose prompt the scheduler computes; the first
// reply carries the first token with its logprobs and cached_tokens. A
// worker that is not colocated answers Generate with FAILED_PRECONDITION,
// and a colocated one answers Decode so.
//
// Thread-safe.
#ifndef TANDEM_DECODE_NODE_DECODE_SERVICE_H_
#define TANDEM_DECODE_NODE_DECODE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "decode_node/scheduler.h"
#include "engine/model_weights.h"
#include "engine/tokenizer.h"
#include "proto/worker.grpc.pb.h"

namespace tandem {

// What a decode worker reports about itself besides its occupancy.
struct DecodeWorkerInfo {
  std::string model_name;
  Fingerprint fingerprint;
  int block_size = 0;
  // Serves Generate instead of Decode, and reports WORKER_KIND_COLOCATED.
  bool colocated = false;
};

class DecodeService final : public v1::DecodeWorker::CallbackService {
 public:
  // `scheduler` and `tokenizer` are not owned and must outlive the service
  // and every call it serves.
  DecodeService(Scheduler* scheduler, const Tokenizer* tokenizer,
                DecodeWorkerInfo info);

  grpc::ServerWriteReactor<v1::DecodeResponse>* Decode(
      grpc::CallbackServerContext* context,
      const v1::DecodeRequest* request) override;

  grpc::ServerWriteReactor<v1::DecodeResponse>* Generate(
      grpc::CallbackServerContext* context,
      const v1::ColocatedRequest* request) override;

  grpc::ServerUnaryReactor* Load(grpc::CallbackServerContext* context,
                                 const v1::LoadRequest* request,
                                 v1::WorkerLoad* response) override;

  // The worker's load, as Load and heartbeats report it.
  v1::WorkerLoad CurrentLoad() const;

 private:
  Scheduler& scheduler_;
  const Tokenizer& tokenizer_;
  const DecodeWorkerInfo info_;
};

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_DECODE_SERVICE_H_
