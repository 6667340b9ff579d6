// Building the DecodeResponse messages of a Decode stream from the tokens a
// sequence accepts, and merging replies that wait behind a slow client.
//
// Pure functions; thread-safe.
#ifndef TANDEM_DECODE_NODE_DECODE_REPLY_H_
#define TANDEM_DECODE_NODE_DECODE_REPLY_H_

#include <optional>

#include "engine/generation.h"
#include "engine/tokenizer.h"
#include "proto/worker.pb.h"

namespace tandem {

struct ReplyOptions {
  // Whether the request asked for logprobs.
  bool logprobs = false;
  // The prefill's logprobs of the first token, as the request carried them.
  std::optional<v1::Logprobs> first_logprobs;
  // A colocated worker sampled the first token itself: its logprobs come
  // from the token, like every later token's.
  bool first_sampled_here = false;
};

// The reply for token number `index` of the completion (0: the prefill's
// first token, whose logprobs come from options.first_logprobs unless
// options.first_sampled_here). Sets
// token_ids, text, completion_tokens (index + 1), finish_reason on the last
// token, and, when asked for, one Logprobs entry whose chosen and top
// tokens carry their text: the token decoded alone, with bytes that are not
// UTF-8 shown as U+FFFD, empty for ids the tokenizer does not know.
v1::DecodeResponse MakeDecodeReply(const GeneratedToken& token, int index,
                                   const ReplyOptions& options,
                                   const Tokenizer& tokenizer);

// Appends `next` to `into`, as if one reply had carried both: token ids,
// text and logprobs accumulate; finish_reason and completion_tokens are
// `next`'s.
void MergeDecodeReply(const v1::DecodeResponse& next, v1::DecodeResponse* into);

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_DECODE_REPLY_H_
