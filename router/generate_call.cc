#include "router/generate_call.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/status_macros.h"
#include "glog/logging.h"
#include "router/placement.h"
#include "router/router_metrics.h"
#include "service/grpc_status.h"

namespace tandem {
namespace {

double MillisSince(absl::Time start) {
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

// Appends `next` to `into`: tokens, text and logprobs accumulate, the
// finish reason and usage are the latest.
void Merge(v1::GenerateResponse& into, const v1::GenerateResponse& next) {
  into.mutable_token_ids()->Add(next.token_ids().begin(),
                                next.token_ids().end());
  into.mutable_text()->append(next.text());
  for (const v1::Logprobs& logprobs : next.logprobs()) {
    *into.add_logprobs() = logprobs;
  }
  if (next.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
    into.set_finish_reason(next.finish_reason());
  }
  if (next.has_usage()) *into.mutable_usage() = next.usage();
}

void ToProto(const BlockKey& key, v1::BlockKey* out) {
  out->set_hi(key.hi);
  out->set_lo(key.lo);
}

// "id" or, when the id is not the address, "id at address".
std::string WorkerName(const WorkerState& worker) {
  if (worker.id == worker.address) return worker.id;
  return absl::StrCat(worker.id, " at ", worker.address);
}

// "%.1f" of `value`, or "-" when there is none.
std::string FormatMs(std::optional<double> value) {
  return value.has_value() ? absl::StrFormat("%.1f", *value) : "-";
}

}  // namespace

GenerateCall::GenerateCall(RouterCore* core,
                           grpc::CallbackServerContext* context,
                           const v1::GenerateRequest* request)
    : core_(core),
      context_(context),
      request_proto_(request),
      start_(absl::Now()) {}

GenerateCall* GenerateCall::Start(RouterCore* core,
                                  grpc::CallbackServerContext* context,
                                  const v1::GenerateRequest* request) {
  auto* call = new GenerateCall(core, context, request);
  if (!core->TryAdmit()) {
    const absl::Status status = absl::ResourceExhaustedError(
        "the router is at its limit of requests in flight; retry later");
    call->ReportOutcome(status);
    {
      absl::MutexLock lock(&call->mu_);
      call->thread_done_ = true;
    }
    call->Finish(ToGrpcStatus(status));
    return call;
  }
  std::thread([call] { call->Run(); }).detach();
  return call;
}

void GenerateCall::Run() {
  const absl::Status status = Serve();
  ReportOutcome(status);
  FinishWith(status);
  core_->Release();  // the last use of core_
  bool last;
  {
    absl::MutexLock lock(&mu_);
    thread_done_ = true;
    last = done_;
  }
  if (last) delete this;
}

void GenerateCall::OnDone() {
  bool last;
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
    last = thread_done_;
  }
  if (last) delete this;
}

void GenerateCall::OnCancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (worker_call_ != nullptr) worker_call_->TryCancel();
}

bool GenerateCall::cancelled() {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

bool GenerateCall::BeginWorkerCall(grpc::ClientContext* context,
                                   const WorkerState& worker) {
  context->set_deadline(context_->deadline());
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return false;
    worker_call_ = context;
  }
  core_->TrackWorkerCall(worker.id, context);
  return true;
}

bool GenerateCall::EndWorkerCall(grpc::ClientContext* context,
                                 const WorkerState& worker) {
  {
    absl::MutexLock lock(&mu_);
    worker_call_ = nullptr;
  }
  return core_->UntrackWorkerCall(worker.id, context);
}

absl::Status GenerateCall::Serve() {
  TANDEM_ASSIGN_OR_RETURN(
      request_, ValidateGenerateRequest(core_->model(), *request_proto_,
                                        [this] { return core_->Random(); }));
  outcome_.prompt_tokens = request_.prompt_ids.size();
  ClusterView view = core_->View();
  // Colocated workers, when any is in rotation, take whole requests.
  if (!view.colocated.empty()) return Colocated(view);
  if (view.prefill.empty()) {
    return absl::UnavailableError("no prefill worker is available");
  }
  if (view.decode.empty()) {
    return absl::UnavailableError("no decode worker is available");
  }
  v1::PrefillResponse prefill;
  TANDEM_RETURN_IF_ERROR(Prefill(view, &prefill));
  return Decode(prefill);
}

absl::Status GenerateCall::Prefill(const ClusterView& view,
                                   v1::PrefillResponse* response) {
  const int block_size = view.keying.block_size;
  const std::vector<BlockKey> keys =
      ComputeKeyChain(view.keying.fingerprint, request_.prompt_ids, block_size);
  const size_t cached = core_->CachedBlocks(keys, request_.request_id);
  const int64_t uncached =
      static_cast<int64_t>(request_.prompt_ids.size()) - cached * block_size;
  TANDEM_ASSIGN_OR_RETURN(size_t index,
                          PickPrefillWorker(view.prefill, uncached));
  const WorkerState& worker = view.prefill[index];
  outcome_.prefill_worker = worker.id;
  core_->registry().RecordSent(worker.id, uncached, 1, 0);

  v1::PrefillRequest request;
  request.set_request_id(request_.request_id);
  request.mutable_prompt_token_ids()->Add(request_.prompt_ids.begin(),
                                          request_.prompt_ids.end());
  for (const BlockKey& key : keys) ToProto(key, request.add_block_keys());
  request.set_cached_blocks_hint(cached);
  *request.mutable_sampling() = request_.sampling_proto;
  request.set_logprobs(request_.logprobs);

  grpc::ClientContext context;
  if (!BeginWorkerCall(&context, worker)) {
    return absl::CancelledError("the client cancelled the request");
  }
  auto stub = v1::PrefillWorker::NewStub(core_->Channel(worker.address));
  const double dispatch_ms = MillisSince(start_);
  const grpc::Status status = stub->Prefill(&context, request, response);
  const bool departed = EndWorkerCall(&context, worker);
  if (!status.ok()) return WorkerError("prefill", worker, status, departed);
  outcome_.cached_tokens = response->cached_tokens();
  outcome_.queue_ms = dispatch_ms + response->queue_us() / 1000.0;
  return absl::OkStatus();
}

absl::Status GenerateCall::Decode(const v1::PrefillResponse& prefill) {
  // Loads changed while the prefill ran; place the decode on fresh ones.
  const ClusterView view = core_->View();
  const int block_size = prefill.handoff().block_size();
  const int64_t blocks =
      block_size <= 0 ? 0
                      : (static_cast<int64_t>(request_.prompt_ids.size()) +
                         request_.max_tokens + block_size - 1) /
                            block_size;
  TANDEM_ASSIGN_OR_RETURN(size_t index, PickDecodeWorker(view.decode, blocks));
  const WorkerState& worker = view.decode[index];
  outcome_.decode_worker = worker.id;
  core_->registry().RecordSent(worker.id, 0, 1, blocks);

  v1::DecodeRequest request;
  FillWorkerRequest(request);
  request.set_first_token(prefill.first_token());
  if (prefill.has_first_logprobs()) {
    *request.mutable_first_logprobs() = prefill.first_logprobs();
  }
  *request.mutable_handoff() = prefill.handoff();

  grpc::ClientContext context;
  if (!BeginWorkerCall(&context, worker)) {
    return absl::CancelledError("the client cancelled the request");
  }
  auto stub = v1::DecodeWorker::NewStub(core_->Channel(worker.address));
  std::unique_ptr<grpc::ClientReader<v1::DecodeResponse>> reader =
      stub->Decode(&context, request);
  absl::Status relayed = Relay(*reader);
  const grpc::Status status = reader->Finish();
  const bool departed = EndWorkerCall(&context, worker);
  if (!status.ok()) return WorkerError("decode", worker, status, departed);
  if (!relayed.ok()) {
    return absl::InternalError(absl::StrCat(
        "decode worker ", WorkerName(worker), ": ", relayed.message()));
  }
  return absl::OkStatus();
}

absl::Status GenerateCall::Relay(
    grpc::ClientReaderInterface<v1::DecodeResponse>& reader) {
  v1::DecodeResponse reply;
  int tokens = 0;
  while (reader.Read(&reply)) {
    if (outcome_.finish != v1::FINISH_REASON_UNSPECIFIED) continue;
    if (tokens == 0 && reply.token_ids_size() > 0) {
      outcome_.ttft_ms = MillisSince(start_);
    }
    // A colocated worker reports its prompt's cached tokens itself.
    if (reply.cached_tokens() > 0)
      outcome_.cached_tokens = reply.cached_tokens();
    tokens += reply.token_ids_size();
    v1::GenerateResponse out;
    out.set_request_id(request_.request_id);
    *out.mutable_token_ids() = std::move(*reply.mutable_token_ids());
    *out.mutable_text() = std::move(*reply.mutable_text());
    *out.mutable_logprobs() = std::move(*reply.mutable_logprobs());
    out.set_finish_reason(reply.finish_reason());
    if (reply.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      outcome_.finish = reply.finish_reason();
      outcome_.completion_tokens =
          reply.completion_tokens() > 0 ? reply.completion_tokens() : tokens;
      v1::Usage* usage = out.mutable_usage();
      usage->set_prompt_tokens(outcome_.prompt_tokens);
      usage->set_cached_tokens(outcome_.cached_tokens);
      usage->set_completion_tokens(outcome_.completion_tokens);
      usage->set_time_to_first_token_ms(outcome_.ttft_ms);
      usage->set_seed(request_.sampling.seed);
    }
    Send(std::move(out));
  }
  if (outcome_.finish == v1::FINISH_REASON_UNSPECIFIED) {
    outcome_.completion_tokens = tokens;
    return absl::FailedPreconditionError(
        "the stream ended without a finish reason");
  }
  return absl::OkStatus();
}

absl::Status GenerateCall::WorkerError(const char* role,
                                       const WorkerState& worker,
                                       const grpc::Status& status,
                                       bool departed) {
  if (cancelled()) {
    return absl::CancelledError("the client cancelled the request");
  }
  if (departed) {
    return absl::UnavailableError(
        absl::StrCat(role, " worker ", WorkerName(worker),
                     " stopped sending heartbeats and left rotation"));
  }
  const std::string where = absl::StrCat(role, " worker ", WorkerName(worker),
                                         ": ", status.error_message());
  switch (status.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(where);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::ResourceExhaustedError(where);
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:  // the worker is shutting down
    case grpc::StatusCode::NOT_FOUND:  // a handoff block left the store
      // Stop sending work to a worker whose connection is gone; a live
      // worker (one whose store is down) stays.
      if (core_->Channel(worker.address)->GetState(false) !=
          GRPC_CHANNEL_READY) {
        core_->registry().Remove(worker.id, FromGrpcStatus(status));
      }
      return absl::UnavailableError(where);
    default:
      return absl::InternalError(where);
  }
}

void GenerateCall::Send(v1::GenerateResponse reply) {
  {
    absl::MutexLock lock(&mu_);
    if (write_failed_) return;
    if (writing_) {
      if (has_pending_) {
        Merge(pending_, reply);
      } else {
        pending_ = std::move(reply);
        has_pending_ = true;
      }
      return;
    }
    writing_ = true;
    out_ = std::move(reply);
  }
  StartWrite(&out_);
}

void GenerateCall::OnWriteDone(bool ok) {
  bool write = false, finish = false;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      write_failed_ = true;
      has_pending_ = false;
    }
    if (has_pending_) {
      out_ = std::move(pending_);
      pending_.Clear();
      has_pending_ = false;
      writing_ = write = true;
    } else if (finish_wanted_) {
      finish = true;
      status = final_status_;
    }
  }
  if (write) StartWrite(&out_);
  if (finish) Finish(status);
}

void GenerateCall::FinishWith(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (writing_) {
      finish_wanted_ = true;
      final_status_ = ToGrpcStatus(status);
      return;
    }
  }
  Finish(ToGrpcStatus(status));
}

void GenerateCall::ReportOutcome(const absl::Status& status) const {
  const std::string& id = request_.request_id.empty()
                              ? request_proto_->request_id()
                              : request_.request_id;
  const std::string outcome = RequestOutcome(status, outcome_.finish);
  const double e2e_ms = MillisSince(start_);
  std::optional<double> ttft_ms;
  if (outcome_.ttft_ms > 0) ttft_ms = outcome_.ttft_ms;
  const std::optional<double> tpot_ms =
      TimePerOutputToken(e2e_ms, outcome_.ttft_ms,
                         ttft_ms.has_value() ? outcome_.completion_tokens : 0);
  std::string line = absl::StrCat(
      "generate req=", id.empty() ? "-" : id, " outcome=", outcome,
      " prompt_tokens=", outcome_.prompt_tokens,
      " cached_tokens=", outcome_.cached_tokens,
      " completion_tokens=", outcome_.completion_tokens,
      " queue_ms=", FormatMs(outcome_.queue_ms), " ttft_ms=", FormatMs(ttft_ms),
      " tpot_ms=", FormatMs(tpot_ms), " e2e_ms=", FormatMs(e2e_ms),
      " prefill=", outcome_.prefill_worker, " decode=", outcome_.decode_worker);
  if (!status.ok())
    absl::StrAppend(&line, " status=\"", status.message(), "\"");
  LOG(INFO) << line;
  RouterMetrics* metrics = core_->metrics();
  if (metrics == nullptr) return;
  metrics->RecordRequest({.outcome = outcome,
                          .prompt_tokens = outcome_.prompt_tokens,
                          .cached_tokens = outcome_.cached_tokens,
                          .completion_tokens = outcome_.completion_tokens,
                          .ttft_ms = ttft_ms,
                          .queue_ms = outcome_.queue_ms,
                          .e2e_ms = e2e_ms});
}

}  // namespace tandem
