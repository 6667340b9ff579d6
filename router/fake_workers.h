// Scripted prefill and decode workers for the router's tests: they answer
// with made-up tokens, record what the router sent them, and can fail,
// hang or stop mid-stream on demand. Served in-process on loopback.
//
// Thread-safe: gRPC calls them from its threads while the test inspects
// them.
#ifndef TANDEM_ROUTER_FAKE_WORKERS_H_
#define TANDEM_ROUTER_FAKE_WORKERS_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/worker.grpc.pb.h"

namespace tandem::testing {

// The keying both fakes report.
inline constexpr uint64_t kFakeFingerprint0 = 0x1234;
inline constexpr uint64_t kFakeFingerprint1 = 0x5678;
inline constexpr int kFakeBlockSize = 16;

// An idle worker's load of `kind` with the fakes' keying.
v1::WorkerLoad FakeLoad(v1::WorkerKind kind);

class FakePrefillWorker final : public v1::PrefillWorker::Service {
 public:
  grpc::Status Prefill(grpc::ServerContext* context,
                       const v1::PrefillRequest* request,
                       v1::PrefillResponse* response) override;
  grpc::Status Load(grpc::ServerContext* context,
                    const v1::LoadRequest* request,
                    v1::WorkerLoad* response) override;

  // Every later Prefill fails with `status`.
  void FailWith(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  int calls() ABSL_LOCKS_EXCLUDED(mu_);
  v1::PrefillRequest last_request() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  grpc::Status failure_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  v1::PrefillRequest last_request_ ABSL_GUARDED_BY(mu_);
};

// Streams the first token, then ids first+1, first+2, ... one per reply
// (text: one letter each, "a" to "z"), up to max_tokens, ending with
// LENGTH. With logprobs >= 0 requested, reply i carries the chosen token at
// logprob -0.5 - i and `logprobs` alternatives "A", "B", ... at -1, -2, ...
class FakeDecodeWorker final : public v1::DecodeWorker::Service {
 public:
  enum class Mode {
    kComplete,
    kHangAfterFirst,  // one reply, then wait until cancelled
    kFailAfterFirst,  // one reply, then UNAVAILABLE
  };

  grpc::Status Decode(grpc::ServerContext* context,
                      const v1::DecodeRequest* request,
                      grpc::ServerWriter<v1::DecodeResponse>* writer) override;
  grpc::Status Load(grpc::ServerContext* context,
                    const v1::LoadRequest* request,
                    v1::WorkerLoad* response) override;

  void set_mode(Mode mode) ABSL_LOCKS_EXCLUDED(mu_);
  int calls() ABSL_LOCKS_EXCLUDED(mu_);
  int active() ABSL_LOCKS_EXCLUDED(mu_);
  // Decode calls that saw their context cancelled.
  int cancelled() ABSL_LOCKS_EXCLUDED(mu_);
  v1::DecodeRequest last_request() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `timeout` for `cancelled() >= n`.
  bool AwaitCancelled(int n, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kComplete;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  int cancelled_ ABSL_GUARDED_BY(mu_) = 0;
  v1::DecodeRequest last_request_ ABSL_GUARDED_BY(mu_);
};

// A fake worker served on a free loopback port.
struct FakeServer {
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

// Serves `service` (not owned; it must outlive the server).
FakeServer ServeFake(grpc::Service* service);

}  // namespace tandem::testing

#endif  // TANDEM_ROUTER_FAKE_WORKERS_H_
