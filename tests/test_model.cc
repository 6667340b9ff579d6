#include "tests/test_model.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/random_model.h"

namespace tandem::testing {
namespace {

absl::Status WriteText(const std::filesystem::path& path,
                       const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path.string()));
  }
  return absl::OkStatus();
}

nlohmann::json AddedToken(int id, const std::string& content) {
  return {{"id", id},        {"content", content}, {"single_word", false},
          {"lstrip", false}, {"rstrip", false},    {"normalized", false},
          {"special", true}};
}

}  // namespace

std::string ByteTokenizerJson() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int byte = 0; byte < 256; ++byte) {
    vocab[absl::StrFormat("<0x%02X>", byte)] = byte;
  }
  nlohmann::json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {AddedToken(kTestBos, "<s>"), AddedToken(kTestEos, "</s>")}},
      {"normalizer", nullptr},
      {"pre_tokenizer", nullptr},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", nlohmann::json::array()}}},
  };
  return root.dump();
}

absl::Status WriteTestModel(const std::filesystem::path& dir,
                            const TestModelOptions& options) {
  RandomModelFlags flags;
  flags.out = dir.string();
  flags.seed = options.seed;
  flags.hidden_size = options.hidden_size;
  flags.intermediate_size = options.intermediate_size;
  flags.num_layers = options.num_layers;
  flags.num_heads = options.num_heads;
  flags.num_kv_heads = options.num_kv_heads;
  flags.vocab_size = 258;
  flags.max_position_embeddings = options.context;
  flags.bos_token_id = kTestBos;
  flags.eos_token_id = absl::StrCat(kTestEos);
  TANDEM_ASSIGN_OR_RETURN(RandomModelOptions model,
                          RandomModelOptionsFromFlags(flags));
  TANDEM_RETURN_IF_ERROR(WriteRandomModel(model, dir));
  TANDEM_RETURN_IF_ERROR(
      WriteText(dir / "tokenizer.json", ByteTokenizerJson()));
  return WriteText(dir / "tokenizer_config.json",
                   R"({"bos_token": "<s>", "eos_token": "</s>",)"
                   R"( "add_bos_token": true, "add_eos_token": false})");
}

}  // namespace tandem::testing
