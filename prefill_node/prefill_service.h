// The PrefillWorker gRPC service (proto/worker.proto) over a PrefillWorker:
// the only place where the prefill worker's absl::Status results become
// gRPC statuses.
#ifndef TANDEM_PREFILL_NODE_PREFILL_SERVICE_H_
#define TANDEM_PREFILL_NODE_PREFILL_SERVICE_H_

#include <string>

#include "prefill_node/prefill_worker.h"
#include "proto/worker.grpc.pb.h"

namespace tandem {

// Thread-safe (gRPC calls it from its own threads).
class PrefillService final : public v1::PrefillWorker::CallbackService {
 public:
  // `worker` is not owned and must outlive the service's server.
  // `model_name` and `max_batch` are reported by Load.
  PrefillService(PrefillWorker* worker, std::string model_name, int max_batch);

  // Runs the request through the worker; cancelling the call, or its
  // deadline passing, abandons it there. Codes as proto/worker.proto.
  grpc::ServerUnaryReactor* Prefill(grpc::CallbackServerContext* context,
                                    const v1::PrefillRequest* request,
                                    v1::PrefillResponse* response) override;

  // The worker's load. Always OK.
  grpc::ServerUnaryReactor* Load(grpc::CallbackServerContext* context,
                                 const v1::LoadRequest* request,
                                 v1::WorkerLoad* response) override;

  // What Load answers; also the heartbeat's load.
  v1::WorkerLoad CurrentLoad() const;

 private:
  PrefillWorker* const worker_;
  const std::string model_name_;
  const int max_batch_;
};

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_PREFILL_SERVICE_H_
