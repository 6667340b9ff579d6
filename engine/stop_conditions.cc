#include "engine/stop_conditions.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tandem {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kNone:
      break;
  }
  return "";
}

absl::StatusOr<StopChecker> StopChecker::Create(StopCriteria criteria) {
  if (criteria.max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens must be at least 1, got ", criteria.max_tokens));
  }
  for (size_t i = 0; i < criteria.stop_strings.size(); ++i) {
    if (criteria.stop_strings[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "] is an empty string"));
    }
  }
  return StopChecker(std::move(criteria));
}

StopChecker::StopChecker(StopCriteria criteria)
    : criteria_(std::move(criteria)) {}

bool StopChecker::IsEndToken(int32_t token) const {
  auto contains = [token](const std::vector<int32_t>& ids) {
    return std::find(ids.begin(), ids.end(), token) != ids.end();
  };
  return contains(criteria_.eos_ids) || contains(criteria_.stop_token_ids);
}

size_t StopChecker::FindStopString() const {
  size_t best = std::string::npos;
  for (const std::string& stop : criteria_.stop_strings) {
    best = std::min(best, held_.find(stop));
  }
  return best;
}

size_t StopChecker::HeldSuffixLength() const {
  size_t longest = 0;
  for (const std::string& stop : criteria_.stop_strings) {
    // Only a suffix shorter than `stop` can still grow into it; a suffix as
    // long as `stop` would have matched already.
    size_t max_len = std::min(stop.size() - 1, held_.size());
    for (size_t len = max_len; len > longest; --len) {
      if (std::string_view(held_).substr(held_.size() - len) ==
          std::string_view(stop).substr(0, len)) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

StopStep StopChecker::Finish(FinishReason reason, std::string text,
                             bool matched) {
  finished_ = true;
  finish_reason_ = reason;
  held_.clear();
  StopStep step;
  step.text = std::move(text);
  step.finish = reason;
  step.matched_stop_string = matched;
  return step;
}

StopStep StopChecker::Append(int32_t token, std::string_view text) {
  ++num_tokens_;
  if (IsEndToken(token)) {
    return Finish(FinishReason::kStop, std::move(held_), false);
  }
  held_.append(text);
  if (size_t match = FindStopString(); match != std::string::npos) {
    return Finish(FinishReason::kStop, held_.substr(0, match), true);
  }
  if (num_tokens_ >= criteria_.max_tokens) {
    return Finish(FinishReason::kLength, std::move(held_), false);
  }
  size_t keep = HeldSuffixLength();
  StopStep step;
  step.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return step;
}

std::string StopChecker::Flush() {
  finished_ = true;
  std::string text = std::move(held_);
  held_.clear();
  return text;
}

}  // namespace tandem
