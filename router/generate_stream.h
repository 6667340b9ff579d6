// A Router.Generate call read by one thread at its own pace, with a
// timeout on each wait: the HTTP API uses it to stream a completion while
// checking now and then that its client is still there.
//
// Flow control: one reply is read ahead at most, so a slow reader slows
// the call (the router merges the replies it cannot send yet).
//
// Thread-safety: Next and Cancel may be called from one thread at a time,
// concurrently with gRPC's callbacks.
#ifndef TANDEM_ROUTER_GENERATE_STREAM_H_
#define TANDEM_ROUTER_GENERATE_STREAM_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/generate.grpc.pb.h"

namespace tandem {

class GenerateStream final
    : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  // Starts Generate(`request`) on `stub`, which must outlive the call.
  // `authorization`, when not empty, is sent as `authorization` metadata.
  GenerateStream(v1::Router::StubInterface& stub, v1::GenerateRequest request,
                 const std::string& authorization);
  // Cancels the call if it has not ended and waits until gRPC is done.
  ~GenerateStream() override;

  GenerateStream(const GenerateStream&) = delete;
  GenerateStream& operator=(const GenerateStream&) = delete;

  enum class Event {
    kReply,    // *reply holds the next reply
    kEnd,      // the call ended; *status holds its status (the router's
               // codes, proto/generate.proto)
    kTimeout,  // nothing came within the timeout
  };
  // Waits up to `timeout` for the next reply or the end of the call.
  Event Next(absl::Duration timeout, v1::GenerateResponse* reply,
             absl::Status* status) ABSL_LOCKS_EXCLUDED(mu_);

  // Cancels the call; Next then reports its end (CANCELLED, or how it
  // ended if that came first).
  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone(const grpc::Status& status) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Lets gRPC finish the call once no more replies will be read.
  void ReleaseHold() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ClientContext context_;
  const v1::GenerateRequest request_;
  // Where the read in flight lands; read by Next only once it completed.
  v1::GenerateResponse incoming_;

  absl::Mutex mu_;
  bool has_reply_ ABSL_GUARDED_BY(mu_) = false;   // incoming_ is complete
  bool read_ended_ ABSL_GUARDED_BY(mu_) = false;  // no more replies
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;  // OnDone ran
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_ROUTER_GENERATE_STREAM_H_
