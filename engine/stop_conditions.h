// When a generated sequence ends, and which of its text may be released to
// the client so far.
//
// A StopChecker watches one sequence's generated tokens and the text each
// adds (in order, as a streaming detokenizer gives it) and applies, for
// every token:
//
//   1. end ids      an EOS id or a stop token id ends the sequence with
//                   reason "stop"; that token's text is not emitted.
//   2. stop strings the text is matched against every stop string across
//                   token boundaries. On a match the sequence ends with
//                   "stop" and only the text before the match is emitted
//                   (the stop string itself and anything after it are
//                   dropped, as the OpenAI API does). Text that could still
//                   be the start of a stop string is held back until the
//                   next tokens resolve it.
//   3. max tokens   the max_tokens-th token ends the sequence with
//                   "length".
//
// When the sequence ends, every held-back text that did not turn into a
// stop string is released with the final token. When several stop strings
// occur, the one that starts first cuts the text.
//
// Pure logic, no I/O: the CLI and the decode worker share it. A StopChecker
// is a value type, thread-compatible (one thread at a time).
#ifndef TANDEM_ENGINE_STOP_CONDITIONS_H_
#define TANDEM_ENGINE_STOP_CONDITIONS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem {

// Why a sequence ended.
enum class FinishReason {
  kNone,    // still running
  kStop,    // an EOS id, a stop token id or a stop string
  kLength,  // max_tokens reached
};

// The OpenAI API's name for `reason`: "stop", "length", or "" for kNone.
std::string_view FinishReasonName(FinishReason reason);

// What ends one sequence.
struct StopCriteria {
  // Ids that end generation, usually the model's EOS ids.
  std::vector<int32_t> eos_ids;
  // Further ids that end generation (a request's stop_token_ids).
  std::vector<int32_t> stop_token_ids;
  // Strings that end generation; each must be non-empty.
  std::vector<std::string> stop_strings;
  // The most tokens to generate, the ending token included; at least 1.
  int max_tokens = 16;
};

// The outcome of one token.
struct StopStep {
  // Text that may be sent to the client now (possibly empty).
  std::string text;
  // kNone while the sequence goes on.
  FinishReason finish = FinishReason::kNone;
  // Whether the sequence ended on a stop string (then `text` stops before
  // it). Only with finish == kStop.
  bool matched_stop_string = false;
};

class StopChecker {
 public:
  // Returns a checker for `criteria`, or InvalidArgument naming the field
  // if max_tokens < 1 or a stop string is empty.
  static absl::StatusOr<StopChecker> Create(StopCriteria criteria);

  // Records the next generated token and the text it adds to the output
  // (`text` may be empty, e.g. while a multi-byte character is incomplete).
  // Returns what may be released and whether the sequence has ended.
  // REQUIRES: !finished().
  StopStep Append(int32_t token, std::string_view text);

  // Ends the sequence early (e.g. the client went away) and returns the
  // held-back text. Afterwards finished() is true and finish_reason() stays
  // kNone.
  std::string Flush();

  // Tokens appended so far.
  int num_tokens() const { return num_tokens_; }
  bool finished() const { return finished_; }
  FinishReason finish_reason() const { return finish_reason_; }
  // Text held back because it may start a stop string.
  const std::string& held_text() const { return held_; }

 private:
  explicit StopChecker(StopCriteria criteria);

  bool IsEndToken(int32_t token) const;
  // Finds the earliest stop string in held_; npos if none.
  size_t FindStopString() const;
  // The length of the longest suffix of held_ that is a proper prefix of
  // some stop string.
  size_t HeldSuffixLength() const;
  // Finishes with `reason`, returning the step.
  StopStep Finish(FinishReason reason, std::string text, bool matched);

  StopCriteria criteria_;
  std::string held_;  // text not yet released
  int num_tokens_ = 0;
  bool finished_ = false;
  FinishReason finish_reason_ = FinishReason::kNone;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_STOP_CONDITIONS_H_
