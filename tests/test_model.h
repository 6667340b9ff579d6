// A small random model directory for tests that need a real model but not
// a trained one: a random Llama checkpoint (tools/random_model.h) with a
// byte-level tokenizer.json written here, so the directory loads exactly
// as the default model does (bytes are ids 0-255, BOS 256, EOS 257) and
// runs in milliseconds.
//
// Thread-compatible.
#ifndef TANDEM_TESTS_TEST_MODEL_H_
#define TANDEM_TESTS_TEST_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"

namespace tandem::testing {

inline constexpr int32_t kTestBos = 256;
inline constexpr int32_t kTestEos = 257;

struct TestModelOptions {
  uint64_t seed = 7;
  int hidden_size = 32;
  int intermediate_size = 64;
  int num_layers = 2;
  int num_heads = 2;
  int num_kv_heads = 1;
  int context = 512;  // max_position_embeddings
};

// The text of a byte-level tokenizer.json: 256 byte tokens "<0xNN>" and
// the added special tokens <s> (256) and </s> (257).
std::string ByteTokenizerJson();

// Writes config.json, model.safetensors, tokenizer.json and
// tokenizer_config.json (add_bos_token) into `dir`, which must not exist
// or be empty. Errors as WriteRandomModel.
absl::Status WriteTestModel(const std::filesystem::path& dir,
                            const TestModelOptions& options = {});

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_TEST_MODEL_H_
