// Readable renderings of tokens for the `tandem` command line: a token as a
// quoted, escaped string, and the per-token logprob table of
// `tandem generate --logprobs N`.
//
// Stateless functions; thread-safe.
#ifndef TANDEM_TOOLS_TOKEN_DISPLAY_H_
#define TANDEM_TOOLS_TOKEN_DISPLAY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/types/span.h"
#include "engine/generation.h"
#include "engine/tokenizer.h"

namespace tandem {

// `bytes` in double quotes: printable ASCII and valid multi-byte UTF-8 as
// they are, '"' and '\' escaped, \n \t \r, and every other byte as \xNN.
std::string QuoteBytes(std::string_view bytes);

// Token `id` as QuoteBytes of the bytes it contributes to text, or
// "<id N>" for an id the tokenizer does not know.
std::string DisplayToken(const Tokenizer& tokenizer, int32_t id);

// One line per token: its index, id, text and natural-log probability, then
// the top alternatives with theirs. Starts with a header line.
std::string LogprobTable(const Tokenizer& tokenizer,
                         absl::Span<const GeneratedToken> tokens);

}  // namespace tandem

#endif  // TANDEM_TOOLS_TOKEN_DISPLAY_H_
