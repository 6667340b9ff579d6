// `tandem generate --router HOST:PORT`: the request local generation would
// run, sent to a running cluster's router instead (tandem.v1.Router
// Generate) and streamed to stdout the same way, with the same summary
// line on stderr.
//
// Not thread-safe: it writes stdout and stderr.
#ifndef TANDEM_TOOLS_REMOTE_GENERATE_H_
#define TANDEM_TOOLS_REMOTE_GENERATE_H_

#include <string>
#include <string_view>

#include "engine/generation.h"
#include "proto/generate.pb.h"

namespace tandem {

// The file that defines --api_key, for the FlagScope of every subcommand
// that talks to a router.
inline constexpr std::string_view kRouterFlagsFile = "remote_generate.cc";

// The API key to send a router: --api_key, or $TANDEM_API_KEY when the
// flag is empty; empty when neither is set.
std::string RouterApiKey();

// The router's request for `prompt` (tokenized by the router) and the
// settings of `request` (its prompt_ids are ignored). InvalidArgument for a
// setting the cluster API cannot express (none at present).
absl::StatusOr<v1::GenerateRequest> ToRouterRequest(
    const std::string& prompt, const GenerationRequest& request);

// Streams the completion from the router at `router` (host:port), sending
// `api_key` unless it is empty. Returns the process exit code: 0,
// kExitUsageError for a request the router rejects (INVALID_ARGUMENT,
// NOT_FOUND, UNAUTHENTICATED), kExitRuntimeError otherwise; each error is
// one line on stderr.
int GenerateThroughRouter(const std::string& router, const std::string& api_key,
                          const std::string& prompt,
                          const GenerationRequest& request);

}  // namespace tandem

#endif  // TANDEM_TOOLS_REMOTE_GENERATE_H_
