// The router's OpenAI-compatible HTTP API (docs/api.md): POST
// /v1/completions (whole or streamed as server-sent events), GET /v1/models
// and GET /v1/models/{id}, with OpenAI's error bodies for every failure,
// unknown paths (404), wrong methods (405) and oversized bodies (413)
// included.
//
// Every request becomes a call to the router's own tandem.v1.Router service
// over an in-process channel, so validation, placement, cancellation and
// the per-request log line are those of gRPC clients. The completion's id
// is "cmpl-<request id>", the id in the router's log line. A streamed
// completion whose client goes away is cancelled: the gRPC call is, and
// with it the workers' calls.
//
// Auth: with an API key set, /v1/* requests need `Authorization: Bearer
// <key>` (else 401); the header is forwarded to the gRPC call. Other routes
// on the same server (/health, /metrics) are not affected.
#ifndef TANDEM_ROUTER_OPENAI_API_H_
#define TANDEM_ROUTER_OPENAI_API_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "httplib.h"

namespace tandem {

struct OpenAiApiOptions {
  // A channel to the router's tandem.v1.Router service (an in-process
  // channel of its grpc::Server).
  std::shared_ptr<grpc::Channel> channel;
  // The served model's id, shown in replies.
  std::string model_id;
  // The key /v1/* requests must carry; empty: none.
  std::string api_key;
  // A streamed completion that has sent nothing for this long sends an SSE
  // comment, which keeps proxies from closing an idle connection and finds
  // clients that went away while the workers were busy.
  absl::Duration stream_heartbeat = absl::Seconds(2);
  // Longer request bodies get 413.
  size_t max_body_bytes = 4 << 20;
};

// Registers the API's routes and an error handler (OpenAI's error body for
// any 4xx or 5xx reply that has no body of its own) on `server`, and sets
// its payload limit. The handlers keep what they need from `options`.
// REQUIRES: options.channel is set and the service behind it outlives the
// server's handlers.
void AddOpenAiRoutes(httplib::Server& server, const OpenAiApiOptions& options);

}  // namespace tandem

#endif  // TANDEM_ROUTER_OPENAI_API_H_
