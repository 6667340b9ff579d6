#include "bench/serving_driver.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "proto/generate.grpc.pb.h"
#include "service/grpc_status.h"

namespace tandem::bench {
namespace {

// Requests spread over this many connections, so that one HTTP/2
// connection's stream limit does not queue them in the client.
constexpr int kChannels = 4;

// Text whose tokens make up prompts: ordinary words, digits and
// punctuation, never special tokens.
constexpr char kPoolText[] =
    "The quick brown fox jumps over the lazy dog while seven wizards quietly "
    "judge boxing matches. 0123456789 + - * / = ( ) [ ] , ; : ! ? ' \" "
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
    "Servers answer requests; caches keep blocks; models predict tokens.";

std::unique_ptr<v1::Router::Stub> NewStub(const std::string& address,
                                          int channel) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Separate connections per channel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("tandem.bench_channel", channel);
  return v1::Router::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), args));
}

void PrepareContext(grpc::ClientContext* context, const RouterTarget& target,
                    absl::Duration timeout) {
  if (!target.api_key.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", target.api_key));
  }
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

const char* FinishName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    default:
      return "";
  }
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

v1::GenerateRequest ToProto(const BenchRequest& request,
                            const DriverOptions& options) {
  v1::GenerateRequest proto;
  proto.set_request_id(
      absl::StrCat("bench-", options.seed, "-", request.index));
  proto.set_model(options.target.model);
  proto.mutable_tokens()->mutable_ids()->Add(request.prompt.begin(),
                                             request.prompt.end());
  proto.set_max_tokens(request.max_tokens);
  proto.mutable_sampling()->set_temperature(options.temperature);
  proto.mutable_sampling()->set_seed(options.seed +
                                     static_cast<uint64_t>(request.index));
  proto.set_ignore_eos(options.ignore_eos);
  proto.set_logprobs(-1);
  return proto;
}

// Sends one request and measures it.
RequestRecord SendOne(v1::Router::Stub& stub, const BenchRequest& request,
                      const DriverOptions& options, absl::Time run_start) {
  RequestRecord record;
  record.index = request.index;
  record.prompt_tokens = static_cast<int>(request.prompt.size());
  record.requested_output = request.max_tokens;
  record.wanted_input = request.wanted_input;
  record.wanted_output = request.wanted_output;
  record.clipped = request.clipped;
  const v1::GenerateRequest proto = ToProto(request, options);
  grpc::ClientContext context;
  PrepareContext(&context, options.target, options.request_timeout);
  const absl::Time sent = absl::Now();
  record.start_ms = Ms(sent - run_start);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub.Generate(&context, proto);
  v1::GenerateResponse reply;
  absl::Time last = sent;
  while (reader->Read(&reply)) {
    const absl::Time now = absl::Now();
    if (reply.token_ids_size() > 0) {
      if (!record.ttft_ms.has_value()) {
        record.ttft_ms = Ms(now - sent);
      } else {
        record.itl_ms.push_back(Ms(now - last));
      }
      last = now;
      record.generated_tokens += reply.token_ids_size();
    }
    if (reply.has_usage()) {
      record.usage_prompt_tokens = reply.usage().prompt_tokens();
      record.usage_cached_tokens = reply.usage().cached_tokens();
      record.usage_completion_tokens = reply.usage().completion_tokens();
      record.router_ttft_ms = reply.usage().time_to_first_token_ms();
    }
    if (reply.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      record.finish = FinishName(reply.finish_reason());
    }
  }
  const absl::Status status = FromGrpcStatus(reader->Finish());
  record.e2e_ms = Ms(absl::Now() - sent);
  record.code = status.code();
  record.error = std::string(status.message());
  return record;
}

// The state of one run, shared by its threads.
class Run {
 public:
  Run(const DriverOptions& options, const RequestSource& source,
      const std::function<void(const DriverProgress&)>& progress)
      : options_(options),
        source_(source),
        progress_(progress),
        start_(absl::Now()) {
    for (int i = 0; i < kChannels; ++i) {
      stubs_.push_back(NewStub(options.target.address, i));
    }
  }

  // Whether request `index` may start now.
  bool MayStart(int64_t index) const {
    if (options_.num_requests > 0 && index >= options_.num_requests) {
      return false;
    }
    return absl::Now() - start_ < options_.duration;
  }

  void Send(const BenchRequest& request) {
    v1::Router::Stub& stub = *stubs_[request.index % kChannels];
    Record(SendOne(stub, request, options_, start_));
  }

  void OpenLoop(ArrivalSchedule& schedule) {
    std::vector<Flight> flights;
    for (int64_t index = 0;; ++index) {
      std::optional<absl::Duration> arrival = schedule.Next();
      if (!arrival.has_value() || *arrival >= options_.duration ||
          !MayStart(index)) {
        break;
      }
      std::optional<BenchRequest> request = source_(index);
      if (!request.has_value()) break;
      absl::SleepFor(start_ + *arrival - absl::Now());
      ReapFinished(flights);
      auto done = std::make_shared<std::atomic<bool>>(false);
      flights.push_back(
          {std::thread([this, done, request = *std::move(request)] {
             Send(request);
             done->store(true);
           }),
           done});
    }
    for (Flight& flight : flights) flight.thread.join();
  }

  void ClosedLoop() {
    std::atomic<int64_t> next{0};
    auto worker = [&] {
      for (;;) {
        const int64_t index = next.fetch_add(1);
        if (!MayStart(index)) return;
        std::optional<BenchRequest> request = source_(index);
        if (!request.has_value()) return;
        Send(*request);
      }
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < options_.concurrency; ++i) threads.emplace_back(worker);
    for (std::thread& thread : threads) thread.join();
  }

  DriverResult Finish() {
    absl::MutexLock lock(&mu_);
    DriverResult result;
    result.records = std::move(records_);
    std::sort(result.records.begin(), result.records.end(),
              [](const RequestRecord& a, const RequestRecord& b) {
                return a.index < b.index;
              });
    for (const RequestRecord& r : result.records) {
      result.duration_s =
          std::max(result.duration_s, (r.start_ms + r.e2e_ms) / 1e3);
    }
    return result;
  }

 private:
  // An open-loop request's thread; `done` is set as it ends.
  struct Flight {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  // Joins the threads of finished requests, so that a long run does not
  // keep them all.
  static void ReapFinished(std::vector<Flight>& flights) {
    auto finished = std::partition(
        flights.begin(), flights.end(),
        [](const Flight& flight) { return !flight.done->load(); });
    for (auto it = finished; it != flights.end(); ++it) it->thread.join();
    flights.erase(finished, flights.end());
  }

  void Record(RequestRecord record) {
    absl::MutexLock lock(&mu_);
    if (record.code != absl::StatusCode::kOk) ++errors_;
    records_.push_back(std::move(record));
    progress_({.done = static_cast<int64_t>(records_.size()),
               .total = options_.num_requests,
               .errors = errors_,
               .elapsed_s = absl::ToDoubleSeconds(absl::Now() - start_)});
  }

  const DriverOptions& options_;
  const RequestSource& source_;
  const std::function<void(const DriverProgress&)>& progress_;
  const absl::Time start_;
  std::vector<std::unique_ptr<v1::Router::Stub>> stubs_;

  absl::Mutex mu_;
  std::vector<RequestRecord> records_ ABSL_GUARDED_BY(mu_);
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

absl::StatusOr<RouterModel> FetchRouterModel(const RouterTarget& target,
                                             absl::Duration timeout) {
  std::unique_ptr<v1::Router::Stub> stub = NewStub(target.address, 0);
  grpc::ClientContext context;
  PrepareContext(&context, target, timeout);
  v1::ListModelsResponse response;
  absl::Status status = FromGrpcStatus(
      stub->ListModels(&context, v1::ListModelsRequest(), &response));
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("router ", target.address,
                                                    ": ", status.message()));
  }
  const v1::ModelInfo* found = nullptr;
  for (const v1::ModelInfo& model : response.models()) {
    if (target.model.empty() || model.id() == target.model) {
      if (found != nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("router ", target.address,
                         " serves several models; choose one with --model"));
      }
      found = &model;
    }
  }
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "router ", target.address, " does not serve ",
        target.model.empty() ? "any model" : "model " + target.model));
  }
  if (found->max_context() < 2) {
    return absl::FailedPreconditionError(absl::StrCat(
        "router reports a context of ", found->max_context(), " tokens"));
  }
  return RouterModel{found->id(), found->max_context(), found->vocab_size()};
}

absl::StatusOr<std::vector<int32_t>> FetchTokenPool(const RouterTarget& target,
                                                    absl::Duration timeout) {
  std::unique_ptr<v1::Router::Stub> stub = NewStub(target.address, 0);
  grpc::ClientContext context;
  PrepareContext(&context, target, timeout);
  v1::TokenizeRequest request;
  request.set_model(target.model);
  request.set_text(kPoolText);
  request.set_add_special_tokens(false);
  v1::TokenizeResponse response;
  absl::Status status =
      FromGrpcStatus(stub->Tokenize(&context, request, &response));
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("router ", target.address,
                                                    ": ", status.message()));
  }
  std::vector<int32_t> pool(response.token_ids().begin(),
                            response.token_ids().end());
  std::sort(pool.begin(), pool.end());
  pool.erase(std::unique(pool.begin(), pool.end()), pool.end());
  if (pool.empty()) {
    return absl::FailedPreconditionError(
        "the router's tokenizer returned no token ids");
  }
  return pool;
}

DriverResult RunServingBenchmark(
    const DriverOptions& options, ArrivalSchedule* schedule,
    const RequestSource& source,
    const std::function<void(const DriverProgress&)>& progress) {
  Run run(options, source, progress);
  if (options.concurrency > 0) {
    run.ClosedLoop();
  } else {
    run.OpenLoop(*schedule);
  }
  return run.Finish();
}

}  // namespace tandem::bench
