// The router's API key: loading it from a flag or a file, and checking the
// `Authorization: Bearer <key>` that clients send, over HTTP as a header and
// over gRPC as `authorization` metadata.
//
// Thread-safety: the functions are thread-safe.
#ifndef TANDEM_ROUTER_API_KEY_H_
#define TANDEM_ROUTER_API_KEY_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem {

// Name of the gRPC metadata (and, case aside, the HTTP header) that carries
// the key.
inline constexpr char kAuthorizationMetadata[] = "authorization";

// The key the router requires: `key` (from --api_key) or the contents of
// `key_file` (from --api_key_file) with surrounding whitespace trimmed;
// empty when neither is set (no key required). InvalidArgument if both are
// set, or the key holds a character other than printable ASCII without
// spaces; NotFound if `key_file` cannot be read; InvalidArgument if it is
// empty. Messages name the flag or the file.
absl::StatusOr<std::string> LoadApiKey(const std::string& key,
                                       const std::string& key_file);

// OK if `key` is empty (none required) or `authorization` is
// "Bearer <key>" (the scheme in any case). Otherwise Unauthenticated saying
// whether the key was missing or wrong. Compares keys in time that does
// not depend on how much of the key the client got right.
absl::Status CheckAuthorization(std::optional<absl::string_view> authorization,
                                const std::string& key);

// "Bearer <key>", the value to send.
std::string BearerValue(absl::string_view key);

}  // namespace tandem

#endif  // TANDEM_ROUTER_API_KEY_H_
