// GenerateCall's colocated path: the whole request goes to one colocated
// worker (decode_node --colocated), which computes the prompt itself, and
// its stream is relayed exactly as a decode worker's is.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/block_key.h"
#include "engine/status_macros.h"
#include "kvstore/kvstore_proto.h"
#include "router/generate_call.h"
#include "router/placement.h"

namespace tandem {

absl::Status GenerateCall::Colocated(const ClusterView& view) {
  const int block_size = view.keying.block_size;
  const std::vector<BlockKey> keys =
      ComputeKeyChain(view.keying.fingerprint, request_.prompt_ids, block_size);
  const size_t cached = core_->CachedBlocks(keys, request_.request_id);
  const int64_t prompt = request_.prompt_ids.size();
  const int64_t uncached = prompt - static_cast<int64_t>(cached) * block_size;
  const int64_t blocks =
      (prompt + request_.max_tokens + block_size - 1) / block_size;
  TANDEM_ASSIGN_OR_RETURN(
      size_t index, PickColocatedWorker(view.colocated, uncached, blocks));
  const WorkerState& worker = view.colocated[index];
  outcome_.prefill_worker = worker.id;
  outcome_.decode_worker = worker.id;
  core_->registry().RecordSent(worker.id, uncached, 1, blocks);

  v1::ColocatedRequest request;
  FillWorkerRequest(request);
  for (const BlockKey& key : keys) ToProto(key, request.add_block_keys());
  request.set_cached_blocks_hint(cached);

  grpc::ClientContext context;
  if (!BeginWorkerCall(&context, worker)) {
    return absl::CancelledError("the client cancelled the request");
  }
  auto stub = v1::DecodeWorker::NewStub(core_->Channel(worker.address));
  std::unique_ptr<grpc::ClientReader<v1::DecodeResponse>> reader =
      stub->Generate(&context, request);
  const absl::Status relayed = Relay(*reader);
  const grpc::Status status = reader->Finish();
  const bool departed = EndWorkerCall(&context, worker);
  if (!status.ok()) return WorkerError("colocated", worker, status, departed);
  if (!relayed.ok()) {
    return absl::InternalError(
        absl::StrCat("colocated worker ", worker.id, ": ", relayed.message()));
  }
  return absl::OkStatus();
}

}  // namespace tandem
