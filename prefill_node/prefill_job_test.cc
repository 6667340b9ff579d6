#include "prefill_node/prefill_job.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

ServedModel TestModel() {
  ServedModel model;
  model.config.vocab_size = 100;
  model.config.max_position_embeddings = 32;
  model.fingerprint.words = {1, 2};
  model.block_size = 4;
  return model;
}

PrefillJob ValidJob(const ServedModel& model, int tokens) {
  PrefillJob job;
  for (int i = 0; i < tokens; ++i) job.prompt.push_back(i * 7 % 100);
  job.block_keys =
      ComputeKeyChain(model.fingerprint, job.prompt, model.block_size);
  job.sampling.seed = 3;
  return job;
}

void ExpectInvalid(const PrefillJob& job, const std::string& field) {
  const absl::Status status = ValidatePrefillJob(job, TestModel());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(field));
}

TEST(ValidatePrefillJobTest, AcceptsAPromptWithItsKeyChain) {
  for (int tokens : {1, 3, 4, 9, 31}) {
    EXPECT_TRUE(
        ValidatePrefillJob(ValidJob(TestModel(), tokens), TestModel()).ok())
        << tokens;
  }
}

TEST(ValidatePrefillJobTest, RejectsAnEmptyPrompt) {
  ExpectInvalid(PrefillJob{}, "prompt_token_ids is empty");
}

TEST(ValidatePrefillJobTest, RejectsTokensOutsideTheVocabulary) {
  PrefillJob job = ValidJob(TestModel(), 6);
  job.prompt[5] = 100;
  ExpectInvalid(job, "prompt_token_ids[5]=100");
  job.prompt[5] = -1;
  ExpectInvalid(job, "prompt_token_ids[5]=-1");
}

TEST(ValidatePrefillJobTest, RejectsAPromptThatFillsTheContext) {
  ExpectInvalid(ValidJob(TestModel(), 32), "prompt_token_ids has 32 tokens");
}

TEST(ValidatePrefillJobTest, RejectsAMissingOrExtraBlockKey) {
  PrefillJob job = ValidJob(TestModel(), 9);
  job.block_keys.pop_back();
  ExpectInvalid(job, "block_keys has 1 keys");
  job = ValidJob(TestModel(), 9);
  job.block_keys.push_back(job.block_keys[0]);
  ExpectInvalid(job, "block_keys has 3 keys");
}

TEST(ValidatePrefillJobTest, RejectsAKeyOfAnotherChain) {
  PrefillJob job = ValidJob(TestModel(), 9);
  job.block_keys[1].lo ^= 1;
  ExpectInvalid(job, "block_keys[1]");
}

TEST(ValidatePrefillJobTest, RejectsKeysOfAnotherModel) {
  PrefillJob job = ValidJob(TestModel(), 8);
  job.block_keys = ComputeKeyChain(Fingerprint{{9, 9}}, job.prompt, 4);
  ExpectInvalid(job, "block_keys[0]");
}

TEST(ValidatePrefillJobTest, RejectsBadSamplingNamingTheField) {
  PrefillJob job = ValidJob(TestModel(), 4);
  job.sampling.top_p = 0;
  ExpectInvalid(job, "top_p");
}

TEST(ValidatePrefillJobTest, RejectsANegativeHint) {
  PrefillJob job = ValidJob(TestModel(), 4);
  job.cached_blocks_hint = -1;
  ExpectInvalid(job, "cached_blocks_hint");
}

TEST(PartialBlockKeyTest, ChainsTheTrailingTokensToTheLastFullBlock) {
  const ServedModel model = TestModel();
  const std::vector<int32_t> prompt = {5, 6, 7, 8, 9, 10};
  const std::vector<BlockKey> chain =
      ComputeKeyChain(model.fingerprint, prompt, 4);
  const std::vector<int32_t> tail = {9, 10};
  EXPECT_EQ(PartialBlockKey(model.fingerprint, chain, prompt, 4),
            ComputeBlockKey(model.fingerprint, &chain[0], tail));
}

TEST(PartialBlockKeyTest, KeysAShortPromptWithoutParent) {
  const Fingerprint model{{1, 2}};
  const std::vector<int32_t> prompt = {5, 6};
  EXPECT_EQ(PartialBlockKey(model, {}, prompt, 4),
            ComputeBlockKey(model, nullptr, prompt));
}

TEST(PartialBlockKeyTest, IsAbsentForWholeBlocks) {
  const Fingerprint model{{1, 2}};
  const std::vector<int32_t> prompt = {5, 6, 7, 8};
  EXPECT_EQ(
      PartialBlockKey(model, ComputeKeyChain(model, prompt, 4), prompt, 4),
      std::nullopt);
}

}  // namespace
}  // namespace tandem
