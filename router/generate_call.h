// One Router.Generate call: validate, look up the cached prefix, prefill on
// one worker, decode on another, and relay the decode stream to the client.
// When colocated workers are in rotation, the whole request goes to one of
// them instead (DecodeWorker.Generate), and its stream is relayed the same
// way; prefill and decode workers serve only while no colocated worker is
// in rotation.
//
// The reactor streams replies to the client; the blocking work (the store
// lookup, the prefill call, reading the decode stream) runs on a thread of
// its own, so gRPC's callback threads never block. Replies that arrive
// while the client has not taken the previous one are merged into one, so a
// slow client never holds back the decode worker.
//
// Cancellation: when the client cancels or its deadline passes, the worker
// call in progress is cancelled at once, which makes the decode worker free
// the sequence's blocks. Worker calls carry the client's deadline.
#ifndef TANDEM_ROUTER_GENERATE_CALL_H_
#define TANDEM_ROUTER_GENERATE_CALL_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/generate.pb.h"
#include "proto/worker.grpc.pb.h"
#include "router/request_validation.h"
#include "router/router_core.h"

namespace tandem {

class GenerateCall final
    : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Starts serving `request` on `context`. The call owns itself and is
  // deleted once gRPC is done with it and its thread has ended. `core`
  // must outlive every call (RouterCore::WaitIdle tells when none is left).
  static GenerateCall* Start(RouterCore* core,
                             grpc::CallbackServerContext* context,
                             const v1::GenerateRequest* request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // What the request's log line reports.
  struct Outcome {
    int prompt_tokens = 0;
    int cached_tokens = 0;
    int completion_tokens = 0;
    double ttft_ms = 0;  // 0 until the first token
    // Until the prefill began computing; unset if no prefill answered.
    std::optional<double> queue_ms;
    std::string prefill_worker = "-";
    std::string decode_worker = "-";
    v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  };

  GenerateCall(RouterCore* core, grpc::CallbackServerContext* context,
               const v1::GenerateRequest* request);

  // The thread's body.
  void Run();
  absl::Status Serve();
  absl::Status Prefill(const ClusterView& view, v1::PrefillResponse* response);
  absl::Status Decode(const v1::PrefillResponse& prefill);
  // The whole request on a colocated worker (generate_call_colocated.cc).
  absl::Status Colocated(const ClusterView& view);
  // Copies the request's id, prompt and generation settings (sampling,
  // max_tokens, stop strings and ids, logprobs, ignore_eos) into a worker
  // request: a DecodeRequest or a ColocatedRequest.
  template <typename WorkerRequest>
  void FillWorkerRequest(WorkerRequest& out) const {
    out.set_request_id(request_.request_id);
    out.mutable_prompt_token_ids()->Add(request_.prompt_ids.begin(),
                                        request_.prompt_ids.end());
    *out.mutable_sampling() = request_.sampling_proto;
    out.set_max_tokens(request_.max_tokens);
    for (const std::string& stop : request_.stop) out.add_stop(stop);
    out.mutable_stop_token_ids()->Add(request_.stop_token_ids.begin(),
                                      request_.stop_token_ids.end());
    out.set_logprobs(request_.logprobs);
    out.set_ignore_eos(request_.ignore_eos);
  }
  // Reads the decode stream until it ends; OK once a finish reason came.
  absl::Status Relay(grpc::ClientReaderInterface<v1::DecodeResponse>& reader);
  // A worker call's failure as the client should see it.
  // `departed`: the call was cancelled because the worker left rotation.
  absl::Status WorkerError(const char* role, const WorkerState& worker,
                           const grpc::Status& status, bool departed);

  // Streams `reply` to the client (merged with any not yet sent).
  void Send(v1::GenerateResponse reply) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the call once every reply is written.
  void FinishWith(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // Registers the call to `worker` to cancel with the client's call or
  // when the worker leaves rotation; false if the client already
  // cancelled. EndWorkerCall returns whether the worker left during it.
  bool BeginWorkerCall(grpc::ClientContext* context, const WorkerState& worker)
      ABSL_LOCKS_EXCLUDED(mu_);
  bool EndWorkerCall(grpc::ClientContext* context, const WorkerState& worker)
      ABSL_LOCKS_EXCLUDED(mu_);
  bool cancelled() ABSL_LOCKS_EXCLUDED(mu_);
  // Logs the request's one line and records it in the router's metrics.
  void ReportOutcome(const absl::Status& status) const;

  RouterCore* const core_;
  grpc::CallbackServerContext* const context_;
  const v1::GenerateRequest* const request_proto_;
  const absl::Time start_;

  // Used by the thread only.
  ValidatedRequest request_;
  Outcome outcome_;

  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  // The reply being written: set under mu_ while no write is in flight,
  // then read by gRPC until OnWriteDone.
  v1::GenerateResponse out_;
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  v1::GenerateResponse pending_ ABSL_GUARDED_BY(mu_);
  bool finish_wanted_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* worker_call_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool done_ ABSL_GUARDED_BY(mu_) = false;         // OnDone ran
  bool thread_done_ ABSL_GUARDED_BY(mu_) = false;  // Run returned
};

}  // namespace tandem

#endif  // TANDEM_ROUTER_GENERATE_CALL_H_
