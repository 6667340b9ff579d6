// The load generator of `tandem bench`: sends requests to a running
// router (tandem.v1.Router Generate, streamed) either as an open loop
// (each request at its arrival time, however many are in flight) or as a
// closed loop (a fixed number always in flight), and measures each one on
// the client's clock (bench/serving_report.h defines the figures).
//
// Thread-safety: the functions may be called from any thread; each run
// uses its own channels and threads.
#ifndef TANDEM_BENCH_SERVING_DRIVER_H_
#define TANDEM_BENCH_SERVING_DRIVER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/serving_report.h"
#include "bench/serving_workload.h"

namespace tandem::bench {

// How to reach the router.
struct RouterTarget {
  std::string address;  // host:port
  // Sent as `authorization: Bearer <api_key>` metadata when not empty.
  std::string api_key;
  // A model id from ListModels; empty: the cluster's only model.
  std::string model;
};

// The served model as the router describes it.
struct RouterModel {
  std::string id;
  int max_context = 0;
  int vocab_size = 0;
};

// Asks the router's ListModels for `target.model` (or the only model).
// NotFound if the router does not serve it, InvalidArgument if the model
// is empty and the router serves several, FailedPrecondition if the router
// reports a context below 2; the rpc's own errors (Unavailable,
// DeadlineExceeded within `timeout`, Unauthenticated) otherwise.
absl::StatusOr<RouterModel> FetchRouterModel(const RouterTarget& target,
                                             absl::Duration timeout);

// Ordinary token ids of the model, to build prompts from: the sorted,
// distinct ids of a fixed English text tokenized by the router without
// special tokens (so no BOS or EOS id is among them). Errors as the
// Tokenize rpc; FailedPrecondition if the router returns no id.
absl::StatusOr<std::vector<int32_t>> FetchTokenPool(const RouterTarget& target,
                                                    absl::Duration timeout);

struct DriverOptions {
  RouterTarget target;
  // Closed loop with this many requests in flight; 0: open loop, requests
  // at the times the run's ArrivalSchedule gives.
  int concurrency = 0;
  // Most requests to send; 0: no limit (then `duration` or the request
  // source ends the run).
  int64_t num_requests = 0;
  // No request starts after this much time; requests in flight finish.
  absl::Duration duration = absl::InfiniteDuration();
  // Sampling of every request; request i is seeded with seed + i.
  float temperature = 1.0f;
  uint64_t seed = 0;
  bool ignore_eos = true;
  // Deadline of each request.
  absl::Duration request_timeout = absl::Minutes(10);
};

// Request i of the run, or nullopt when there are no more. Called from
// several threads at once.
using RequestSource = std::function<std::optional<BenchRequest>(int64_t)>;

// Where a run stands; passed to the progress callback after each request.
struct DriverProgress {
  int64_t done = 0;
  int64_t total = 0;  // 0 when not known in advance
  int64_t errors = 0;
  double elapsed_s = 0;
};

struct DriverResult {
  std::vector<RequestRecord> records;  // in index order
  // From the run's start to the end of its last request.
  double duration_s = 0;
};

// Runs the benchmark until `num_requests` requests were sent, `duration`
// passed, the source or (open loop) the schedule ran out, whichever comes
// first, and every request sent has finished. `schedule` gives the open
// loop's arrival times; it may be null in a closed loop. `progress` is
// called after each request, one call at a time. Failed requests are
// records with their code. REQUIRES: something bounds the run (a limit, a
// finite duration, or a source that ends).
DriverResult RunServingBenchmark(
    const DriverOptions& options, ArrivalSchedule* schedule,
    const RequestSource& source,
    const std::function<void(const DriverProgress&)>& progress);

}  // namespace tandem::bench

#endif  // TANDEM_BENCH_SERVING_DRIVER_H_
