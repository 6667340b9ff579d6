#include "router/fake_workers.h"

#include "absl/strings/str_cat.h"

namespace tandem::testing {
v1::WorkerLoad FakeLoad(v1::WorkerKind kind) {
  v1::WorkerLoad load;
  load.set_kind(kind);
  load.mutable_fingerprint()->set_word0(kFakeFingerprint0);
  load.mutable_fingerprint()->set_word1(kFakeFingerprint1);
  load.set_block_size(kFakeBlockSize);
  load.set_max_batch(8);
  load.set_total_blocks(64);
  load.set_free_blocks(64);
  return load;
}

grpc::Status FakePrefillWorker::Prefill(grpc::ServerContext* context,
                                        const v1::PrefillRequest* request,
                                        v1::PrefillResponse* response) {
  absl::MutexLock lock(&mu_);
  ++calls_;
  last_request_ = *request;
  if (!failure_.ok()) return failure_;
  response->set_first_token(request->prompt_token_ids(0) + 1);
  v1::Handoff* handoff = response->mutable_handoff();
  handoff->mutable_model()->set_word0(kFakeFingerprint0);
  handoff->mutable_model()->set_word1(kFakeFingerprint1);
  handoff->set_block_size(kFakeBlockSize);
  handoff->set_prompt_tokens(request->prompt_token_ids_size());
  *handoff->mutable_full_blocks() = request->block_keys();
  handoff->set_next_draw(1);
  const int cached = request->cached_blocks_hint() * kFakeBlockSize;
  response->set_cached_tokens(cached);
  response->set_computed_tokens(request->prompt_token_ids_size() - cached);
  return grpc::Status::OK;
}

grpc::Status FakePrefillWorker::Load(grpc::ServerContext* context,
                                     const v1::LoadRequest* request,
                                     v1::WorkerLoad* response) {
  *response = FakeLoad(v1::WORKER_KIND_PREFILL);
  return grpc::Status::OK;
}

void FakePrefillWorker::FailWith(grpc::Status status) {
  absl::MutexLock lock(&mu_);
  failure_ = std::move(status);
}

int FakePrefillWorker::calls() {
  absl::MutexLock lock(&mu_);
  return calls_;
}

v1::PrefillRequest FakePrefillWorker::last_request() {
  absl::MutexLock lock(&mu_);
  return last_request_;
}

grpc::Status FakeDecodeWorker::Decode(
    grpc::ServerContext* context, const v1::DecodeRequest* request,
    grpc::ServerWriter<v1::DecodeResponse>* writer) {
  Mode mode;
  {
    absl::MutexLock lock(&mu_);
    ++calls_;
    ++active_;
    last_request_ = *request;
    mode = mode_;
  }
  grpc::Status status = grpc::Status::OK;
  for (int i = 0; i < request->max_tokens(); ++i) {
    if (i == 1 && mode == Mode::kFailAfterFirst) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker failed");
      break;
    }
    if (i == 1 && mode == Mode::kHangAfterFirst) {
      while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(2));
      status = grpc::Status::CANCELLED;
      break;
    }
    v1::DecodeResponse reply;
    reply.add_token_ids(request->first_token() + i);
    reply.set_text(std::string(1, static_cast<char>('a' + i % 26)));
    if (request->logprobs() >= 0) {
      // The chosen token at -0.5 - i, then alternatives "A", "B", ... lower.
      v1::Logprobs* logprobs = reply.add_logprobs();
      logprobs->mutable_chosen()->set_token_id(request->first_token() + i);
      logprobs->mutable_chosen()->set_logprob(-0.5f - i);
      logprobs->mutable_chosen()->set_text(reply.text());
      for (int k = 0; k < request->logprobs(); ++k) {
        v1::TokenLogprob* top = logprobs->add_top();
        top->set_token_id(k);
        top->set_logprob(-1.0f - k);
        top->set_text(std::string(1, static_cast<char>('A' + k)));
      }
    }
    if (i + 1 == request->max_tokens()) {
      reply.set_finish_reason(v1::FINISH_REASON_LENGTH);
      reply.set_completion_tokens(request->max_tokens());
    }
    if (!writer->Write(reply)) break;
  }
  absl::MutexLock lock(&mu_);
  --active_;
  if (context->IsCancelled()) ++cancelled_;
  return status;
}

grpc::Status FakeDecodeWorker::Load(grpc::ServerContext* context,
                                    const v1::LoadRequest* request,
                                    v1::WorkerLoad* response) {
  *response = FakeLoad(v1::WORKER_KIND_DECODE);
  absl::MutexLock lock(&mu_);
  response->set_running_sequences(active_);
  return grpc::Status::OK;
}

void FakeDecodeWorker::set_mode(Mode mode) {
  absl::MutexLock lock(&mu_);
  mode_ = mode;
}

int FakeDecodeWorker::calls() {
  absl::MutexLock lock(&mu_);
  return calls_;
}

int FakeDecodeWorker::active() {
  absl::MutexLock lock(&mu_);
  return active_;
}

int FakeDecodeWorker::cancelled() {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

v1::DecodeRequest FakeDecodeWorker::last_request() {
  absl::MutexLock lock(&mu_);
  return last_request_;
}

bool FakeDecodeWorker::AwaitCancelled(int n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

FakeServer ServeFake(grpc::Service* service) {
  FakeServer fake;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service);
  fake.server = builder.BuildAndStart();
  fake.address = absl::StrCat("127.0.0.1:", port);
  return fake;
}

}  // namespace tandem::testing
