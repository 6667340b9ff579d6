#include "engine/stop_conditions.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kEos = 2;
constexpr int32_t kToken = 7;  // any ordinary token

StopChecker MakeChecker(std::vector<std::string> stops, int max_tokens = 100,
                        std::vector<int32_t> stop_ids = {}) {
  StopCriteria criteria;
  criteria.eos_ids = {kEos};
  criteria.stop_token_ids = std::move(stop_ids);
  criteria.stop_strings = std::move(stops);
  criteria.max_tokens = max_tokens;
  absl::StatusOr<StopChecker> checker = StopChecker::Create(criteria);
  EXPECT_TRUE(checker.ok()) << checker.status();
  return *std::move(checker);
}

// Feeds `pieces` as one token each and returns the released text.
std::string Feed(StopChecker& checker, const std::vector<std::string>& pieces,
                 FinishReason* finish = nullptr) {
  std::string out;
  for (const std::string& piece : pieces) {
    StopStep step = checker.Append(kToken, piece);
    out += step.text;
    if (finish != nullptr) *finish = step.finish;
    if (step.finish != FinishReason::kNone) break;
  }
  return out;
}

TEST(StopCheckerTest, ReleasesTextImmediatelyWithoutStopStrings) {
  StopChecker checker = MakeChecker({});
  StopStep step = checker.Append(kToken, "Hello");
  EXPECT_EQ(step.text, "Hello");
  EXPECT_EQ(step.finish, FinishReason::kNone);
  EXPECT_FALSE(checker.finished());
}

TEST(StopCheckerTest, StopStringSplitAcrossTokensEndsWithTextBeforeIt) {
  StopChecker checker = MakeChecker({"END"});
  StopStep a = checker.Append(kToken, "one E");
  EXPECT_EQ(a.text, "one ");  // "E" may start "END"
  EXPECT_EQ(checker.held_text(), "E");
  StopStep b = checker.Append(kToken, "N");
  EXPECT_EQ(b.text, "");
  EXPECT_EQ(checker.held_text(), "EN");
  StopStep c = checker.Append(kToken, "D and more");
  EXPECT_EQ(c.text, "");
  EXPECT_EQ(c.finish, FinishReason::kStop);
  EXPECT_TRUE(c.matched_stop_string);
  EXPECT_TRUE(checker.finished());
  EXPECT_EQ(checker.finish_reason(), FinishReason::kStop);
}

TEST(StopCheckerTest, StopStringInsideOneTokenDropsItAndWhatFollows) {
  StopChecker checker = MakeChecker({"\n\n"});
  FinishReason finish;
  EXPECT_EQ(Feed(checker, {"a line", "\nnext\n\nrest"}, &finish),
            "a line\nnext");
  EXPECT_EQ(finish, FinishReason::kStop);
}

TEST(StopCheckerTest, HeldBackTextIsReleasedWhenMatchFails) {
  StopChecker checker = MakeChecker({"END"});
  EXPECT_EQ(checker.Append(kToken, "xEN").text, "x");
  StopStep step = checker.Append(kToken, "O");
  EXPECT_EQ(step.text, "ENO");
  EXPECT_EQ(step.finish, FinishReason::kNone);
  EXPECT_EQ(checker.held_text(), "");
}

TEST(StopCheckerTest, FailedMatchStillHoldsANewerPartialMatch) {
  StopChecker checker = MakeChecker({"abc"});
  EXPECT_EQ(checker.Append(kToken, "ab").text, "");
  // "aba": "ab" failed, but the last "a" may start a new "abc".
  EXPECT_EQ(checker.Append(kToken, "a").text, "ab");
  EXPECT_EQ(checker.held_text(), "a");
  FinishReason finish;
  EXPECT_EQ(Feed(checker, {"b", "c"}, &finish), "");
  EXPECT_EQ(finish, FinishReason::kStop);
}

TEST(StopCheckerTest, EarliestOfSeveralStopStringsCutsTheText) {
  StopChecker checker = MakeChecker({"world", "lo"});
  FinishReason finish;
  EXPECT_EQ(Feed(checker, {"hel", "lo world"}, &finish), "hel");
  EXPECT_EQ(finish, FinishReason::kStop);
}

TEST(StopCheckerTest, MultiByteStopStringMatchesAcrossTokens) {
  StopChecker checker = MakeChecker({"\xc3\xa9t\xc3\xa9"});  // "été"
  FinishReason finish;
  EXPECT_EQ(Feed(checker, {"un \xc3\xa9", "t", "\xc3\xa9 chaud"}, &finish),
            "un ");
  EXPECT_EQ(finish, FinishReason::kStop);
}

TEST(StopCheckerTest, EosEndsWithStopAndReleasesHeldText) {
  StopChecker checker = MakeChecker({"END"});
  EXPECT_EQ(checker.Append(kToken, "done E").text, "done ");
  StopStep step = checker.Append(kEos, "</s>");
  EXPECT_EQ(step.finish, FinishReason::kStop);
  EXPECT_FALSE(step.matched_stop_string);
  EXPECT_EQ(step.text, "E");  // the EOS text itself is not emitted
  EXPECT_EQ(checker.num_tokens(), 2);
}

TEST(StopCheckerTest, StopTokenIdEndsWithStop) {
  StopChecker checker = MakeChecker({}, 100, {42});
  EXPECT_EQ(checker.Append(kToken, "a").finish, FinishReason::kNone);
  StopStep step = checker.Append(42, "b");
  EXPECT_EQ(step.finish, FinishReason::kStop);
  EXPECT_EQ(step.text, "");
}

TEST(StopCheckerTest, MaxTokensEndsWithLengthAndReleasesHeldText) {
  StopChecker checker = MakeChecker({"END"}, 3);
  EXPECT_EQ(checker.Append(kToken, "a").finish, FinishReason::kNone);
  EXPECT_EQ(checker.Append(kToken, "b").finish, FinishReason::kNone);
  StopStep step = checker.Append(kToken, "EN");
  EXPECT_EQ(step.finish, FinishReason::kLength);
  EXPECT_EQ(step.text, "EN");
  EXPECT_EQ(checker.finish_reason(), FinishReason::kLength);
}

TEST(StopCheckerTest, StopStringOnTheLastAllowedTokenIsStop) {
  StopChecker checker = MakeChecker({"END"}, 2);
  checker.Append(kToken, "xE");
  StopStep step = checker.Append(kToken, "ND");
  EXPECT_EQ(step.finish, FinishReason::kStop);
  EXPECT_EQ(step.text, "");
}

TEST(StopCheckerTest, EosOnTheLastAllowedTokenIsStop) {
  StopChecker checker = MakeChecker({}, 1);
  EXPECT_EQ(checker.Append(kEos, "").finish, FinishReason::kStop);
}

TEST(StopCheckerTest, FlushReturnsHeldTextAndFinishes) {
  StopChecker checker = MakeChecker({"END"});
  checker.Append(kToken, "aEN");
  EXPECT_EQ(checker.Flush(), "EN");
  EXPECT_TRUE(checker.finished());
  EXPECT_EQ(checker.finish_reason(), FinishReason::kNone);
}

TEST(StopCheckerTest, RejectsNonPositiveMaxTokens) {
  StopCriteria criteria;
  criteria.max_tokens = 0;
  absl::StatusOr<StopChecker> checker = StopChecker::Create(criteria);
  EXPECT_EQ(checker.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(checker.status().message(), HasSubstr("max_tokens"));
}

TEST(StopCheckerTest, RejectsEmptyStopString) {
  StopCriteria criteria;
  criteria.stop_strings = {"ok", ""};
  absl::StatusOr<StopChecker> checker = StopChecker::Create(criteria);
  EXPECT_EQ(checker.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(checker.status().message(), HasSubstr("stop[1]"));
}

TEST(FinishReasonTest, NamesMatchTheOpenAiApi) {
  EXPECT_EQ(FinishReasonName(FinishReason::kStop), "stop");
  EXPECT_EQ(FinishReasonName(FinishReason::kLength), "length");
  EXPECT_EQ(FinishReasonName(FinishReason::kNone), "");
}

}  // namespace
}  // namespace tandem
