// make_random_model: writes a Llama-family checkpoint (config.json and
// safetensors) with random weights, deterministic from --seed.
//
//   make_random_model --out /tmp/tiny --num_layers 2 --hidden_size 64
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "tools/random_model.h"

namespace {
const tandem::RandomModelFlags kDefaults;
}  // namespace

ABSL_FLAG(std::string, out, "",
          "directory to create; must not exist or be empty (required)");
ABSL_FLAG(uint64_t, seed, kDefaults.seed, "seed of the random weights");
ABSL_FLAG(std::string, dtype, kDefaults.dtype, "f32, f16 or bf16");
ABSL_FLAG(int, shards, kDefaults.shards,
          "number of safetensors files; above 1 adds an index");
ABSL_FLAG(std::string, architecture, kDefaults.architecture,
          "LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM");
ABSL_FLAG(int, hidden_size, kDefaults.hidden_size, "model width");
ABSL_FLAG(int, intermediate_size, kDefaults.intermediate_size,
          "MLP hidden width");
ABSL_FLAG(int, num_layers, kDefaults.num_layers, "decoder layers");
ABSL_FLAG(int, num_heads, kDefaults.num_heads, "attention heads");
ABSL_FLAG(int, num_kv_heads, kDefaults.num_kv_heads,
          "key/value heads; 0 means --num_heads");
ABSL_FLAG(int, head_dim, kDefaults.head_dim,
          "per-head width; 0 means --hidden_size / --num_heads");
ABSL_FLAG(int, vocab_size, kDefaults.vocab_size, "vocabulary size");
ABSL_FLAG(double, rms_norm_eps, kDefaults.rms_norm_eps, "RMSNorm epsilon");
ABSL_FLAG(double, rope_theta, kDefaults.rope_theta, "rotary base");
ABSL_FLAG(std::string, rope_scaling, kDefaults.rope_scaling,
          "none, linear or llama3");
ABSL_FLAG(double, rope_factor, kDefaults.rope_factor,
          "rope scaling factor (linear, llama3)");
ABSL_FLAG(double, rope_low_freq_factor, kDefaults.rope_low_freq_factor,
          "llama3 rope scaling low_freq_factor");
ABSL_FLAG(double, rope_high_freq_factor, kDefaults.rope_high_freq_factor,
          "llama3 rope scaling high_freq_factor");
ABSL_FLAG(int, rope_original_max_position_embeddings,
          kDefaults.rope_original_max_position_embeddings,
          "llama3 rope scaling original_max_position_embeddings");
ABSL_FLAG(bool, tie_word_embeddings, kDefaults.tie_word_embeddings,
          "share the embedding table with the output projection");
ABSL_FLAG(bool, attention_bias, kDefaults.attention_bias,
          "q, k and v biases (Qwen2ForCausalLM only)");
ABSL_FLAG(int, max_position_embeddings, kDefaults.max_position_embeddings,
          "longest context");
ABSL_FLAG(int, bos_token_id, kDefaults.bos_token_id, "-1 for none");
ABSL_FLAG(std::string, eos_token_id, kDefaults.eos_token_id,
          "comma-separated ids; empty for none");

namespace tandem {
namespace {

RandomModelFlags FlagsFromCommandLine() {
  RandomModelFlags f;
  f.out = absl::GetFlag(FLAGS_out);
  f.seed = absl::GetFlag(FLAGS_seed);
  f.dtype = absl::GetFlag(FLAGS_dtype);
  f.shards = absl::GetFlag(FLAGS_shards);
  f.architecture = absl::GetFlag(FLAGS_architecture);
  f.hidden_size = absl::GetFlag(FLAGS_hidden_size);
  f.intermediate_size = absl::GetFlag(FLAGS_intermediate_size);
  f.num_layers = absl::GetFlag(FLAGS_num_layers);
  f.num_heads = absl::GetFlag(FLAGS_num_heads);
  f.num_kv_heads = absl::GetFlag(FLAGS_num_kv_heads);
  f.head_dim = absl::GetFlag(FLAGS_head_dim);
  f.vocab_size = absl::GetFlag(FLAGS_vocab_size);
  f.rms_norm_eps = absl::GetFlag(FLAGS_rms_norm_eps);
  f.rope_theta = absl::GetFlag(FLAGS_rope_theta);
  f.rope_scaling = absl::GetFlag(FLAGS_rope_scaling);
  f.rope_factor = absl::GetFlag(FLAGS_rope_factor);
  f.rope_low_freq_factor = absl::GetFlag(FLAGS_rope_low_freq_factor);
  f.rope_high_freq_factor = absl::GetFlag(FLAGS_rope_high_freq_factor);
  f.rope_original_max_position_embeddings =
      absl::GetFlag(FLAGS_rope_original_max_position_embeddings);
  f.tie_word_embeddings = absl::GetFlag(FLAGS_tie_word_embeddings);
  f.attention_bias = absl::GetFlag(FLAGS_attention_bias);
  f.max_position_embeddings = absl::GetFlag(FLAGS_max_position_embeddings);
  f.bos_token_id = absl::GetFlag(FLAGS_bos_token_id);
  f.eos_token_id = absl::GetFlag(FLAGS_eos_token_id);
  return f;
}

int RunMakeRandomModel(const RandomModelFlags& flags) {
  auto options = RandomModelOptionsFromFlags(flags);
  absl::Status status = options.status();
  if (status.ok()) status = WriteRandomModel(*options, flags.out);
  if (!status.ok()) {
    std::fprintf(stderr, "make_random_model: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  std::printf("make_random_model: wrote %s (%s, %d layers, %s, %d file%s)\n",
              flags.out.c_str(), options->config.architecture.c_str(),
              options->config.num_layers, flags.dtype.c_str(), flags.shards,
              flags.shards == 1 ? "" : "s");
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes a Llama-family checkpoint with random weights.\n"
      "Usage: make_random_model --out DIR [--flag=value ...]");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "make_random_model: unexpected argument '%s'\n",
                 rest[1]);
    return 1;
  }
  return tandem::RunMakeRandomModel(tandem::FlagsFromCommandLine());
}
