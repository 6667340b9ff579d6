#include "bench/engine_figures.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "bench/machine_limits.h"
#include "engine/paged_kv_cache.h"
#include "engine/status_macros.h"

namespace tandem::bench {
namespace {

constexpr int kBlockSize = 16;

double LayerParameters(const ModelConfig& c) {
  const double h = c.hidden_size;
  const double attention =
      h * c.q_dim() * 2 + h * c.kv_dim() * 2 +
      (c.attention_bias ? c.q_dim() + 2.0 * c.kv_dim() : 0.0);
  const double mlp = 3.0 * h * c.intermediate_size;
  return attention + mlp + 2 * h;  // two norms
}

// FLOPs of one prefill of `tokens` from position 0: 2 per layer parameter
// per token, attention's QK^T and PV over each token's causal context, and
// the LM head once (only the last position's logits are computed).
double PrefillFlops(const ModelConfig& c, int tokens) {
  const double pairs = 0.5 * tokens * (tokens + 1.0);
  const double attention = 4.0 * c.q_dim() * pairs * c.num_layers;
  return 2.0 * LayerParameters(c) * c.num_layers * tokens + attention +
         2.0 * c.hidden_size * c.vocab_size;
}

// Bytes of weights one batch-1 decode step reads: all but the embedding
// table, of which it reads one row.
double DecodeBytesPerToken(const ModelConfig& c) {
  const double params = LayerParameters(c) * c.num_layers + c.hidden_size +
                        static_cast<double>(c.hidden_size) * c.vocab_size;
  return params * sizeof(float);
}

std::vector<int32_t> Tokens(int count, int vocab, uint64_t seed) {
  std::vector<int32_t> tokens(count);
  for (int32_t& t : tokens) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int32_t>((seed >> 33) % vocab);
  }
  return tokens;
}

absl::StatusOr<double> TimePrefill(Model& model, PagedKvCache& cache,
                                   const BenchSettings& s) {
  const std::vector<int32_t> prompt =
      Tokens(s.prompt_tokens, model.config().vocab_size, 7);
  std::vector<float> logits;
  double best = 1e30;
  for (int r = 0; r <= s.repetitions; ++r) {  // the first run warms up
    TANDEM_RETURN_IF_ERROR(cache.AddSequence(r));
    TANDEM_RETURN_IF_ERROR(cache.Append(r, s.prompt_tokens));
    const Model::Chunk chunk{r, prompt};
    const double start = NowSeconds();
    TANDEM_RETURN_IF_ERROR(model.Prefill(
        {&chunk, 1}, cache, Model::Logits::kLastPerSequence, &logits));
    if (r > 0) best = std::min(best, NowSeconds() - start);
    TANDEM_RETURN_IF_ERROR(cache.RemoveSequence(r));
  }
  return s.prompt_tokens / best;
}

absl::StatusOr<double> TimeDecode(Model& model, PagedKvCache& cache,
                                  const BenchSettings& s, int batch) {
  const int vocab = model.config().vocab_size;
  std::vector<SequenceId> seqs;
  std::vector<std::vector<int32_t>> prompts;
  for (int b = 0; b < batch; ++b) {
    seqs.push_back(1000 + b);
    prompts.push_back(Tokens(s.context, vocab, 100 + b));
    TANDEM_RETURN_IF_ERROR(cache.AddSequence(seqs.back()));
    TANDEM_RETURN_IF_ERROR(cache.Append(seqs.back(), s.context));
  }
  std::vector<float> logits;
  for (int b = 0; b < batch; ++b) {
    const Model::Chunk chunk{seqs[b], prompts[b]};
    TANDEM_RETURN_IF_ERROR(model.Prefill(
        {&chunk, 1}, cache, Model::Logits::kLastPerSequence, &logits));
  }
  const std::vector<int32_t> next = Tokens(batch, vocab, 3);
  double best = 1e30;
  for (int r = 0; r <= s.repetitions; ++r) {
    double elapsed = 0;
    for (int step = 0; step < s.decode_steps; ++step) {
      for (SequenceId seq : seqs) TANDEM_RETURN_IF_ERROR(cache.Append(seq, 1));
      const double start = NowSeconds();
      TANDEM_RETURN_IF_ERROR(model.DecodeStep(seqs, next, cache, &logits));
      elapsed += NowSeconds() - start;
    }
    if (r > 0) best = std::min(best, elapsed);  // the first run warms up
  }
  for (SequenceId seq : seqs) TANDEM_RETURN_IF_ERROR(cache.RemoveSequence(seq));
  return batch * s.decode_steps / best;
}

}  // namespace

ModelConfig BenchmarkModelConfig() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 32000;
  c.hidden_size = 768;
  c.intermediate_size = 2048;
  c.num_layers = 12;
  c.num_heads = 12;
  c.num_kv_heads = 4;
  c.head_dim = 64;
  c.rms_norm_eps = 1e-5f;
  c.max_position_embeddings = 2048;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

absl::StatusOr<EngineFigures> MeasureEngine(Model& model,
                                            const BenchSettings& s) {
  const ModelConfig& c = model.config();
  EngineFigures f;
  f.settings = s;
  f.parameters =
      LayerParameters(c) * c.num_layers + c.hidden_size +
      (c.tie_word_embeddings ? 1.0 : 2.0) * c.hidden_size * c.vocab_size;
  f.prefill_flops = PrefillFlops(c, s.prompt_tokens);
  f.decode_bytes_per_token = DecodeBytesPerToken(c);

  const int max_batch = *std::max_element(s.batches.begin(), s.batches.end());
  const int tokens_per_seq = std::max(
      s.prompt_tokens, s.context + s.decode_steps * (s.repetitions + 1));
  const int blocks = (max_batch + 1) * (tokens_per_seq / kBlockSize + 2);
  const KvLayout layout = model.kv_layout(kBlockSize);
  TANDEM_ASSIGN_OR_RETURN(
      auto cache, PagedKvCache::Create(
                      layout, PagedKvCache::BlockStrideBytes(layout) * blocks));

  TANDEM_ASSIGN_OR_RETURN(f.prefill_tokens_per_second,
                          TimePrefill(model, *cache, s));
  for (int batch : s.batches) {
    TANDEM_ASSIGN_OR_RETURN(double rate, TimeDecode(model, *cache, s, batch));
    f.decode.push_back({batch, rate});
  }
  return f;
}

double PrefillFraction(const EngineFigures& f) {
  const double gflops = f.prefill_flops * f.prefill_tokens_per_second /
                        f.settings.prompt_tokens / 1e9;
  return gflops / f.sgemm_gflops;
}

double DecodeFraction(const EngineFigures& f) {
  const double bound = f.read_bandwidth_gbs * 1e9 / f.decode_bytes_per_token;
  for (const DecodeFigure& d : f.decode) {
    if (d.batch == 1) return d.tokens_per_second / bound;
  }
  return 0;
}

double DecodeSpeedup(const EngineFigures& f, int batch) {
  double one = 0, other = 0;
  for (const DecodeFigure& d : f.decode) {
    if (d.batch == 1) one = d.tokens_per_second;
    if (d.batch == batch) other = d.tokens_per_second;
  }
  return one > 0 ? other / one : 0;
}

nlohmann::json FiguresToJson(const EngineFigures& f) {
  nlohmann::json decode = nlohmann::json::object();
  for (const DecodeFigure& d : f.decode) {
    decode[absl::StrCat("batch_", d.batch)] = d.tokens_per_second;
  }
  return {
      {"threads", f.settings.threads},
      {"parameters", f.parameters},
      {"prompt_tokens", f.settings.prompt_tokens},
      {"decode_context", f.settings.context},
      {"prefill_tokens_per_second", f.prefill_tokens_per_second},
      {"prefill_gflops", f.prefill_flops * f.prefill_tokens_per_second /
                             f.settings.prompt_tokens / 1e9},
      {"decode_tokens_per_second", decode},
      {"decode_bytes_per_token", f.decode_bytes_per_token},
      {"sgemm_gflops", f.sgemm_gflops},
      {"read_bandwidth_gbs", f.read_bandwidth_gbs},
      {"prefill_fraction_of_sgemm", PrefillFraction(f)},
      {"decode_fraction_of_bandwidth_bound", DecodeFraction(f)},
      {"decode_batch16_speedup", DecodeSpeedup(f, 16)},
  };
}

void PrintFigures(const EngineFigures& f) {
  std::printf("model: %.1fM parameters, %d threads\n", f.parameters / 1e6,
              f.settings.threads);
  std::printf("machine: sgemm %.1f GFLOP/s (M=%d), read bandwidth %.2f GB/s\n",
              f.sgemm_gflops, f.settings.prompt_tokens, f.read_bandwidth_gbs);
  std::printf(
      "prefill %d tokens: %.1f tokens/s, %.1f GFLOP/s = %.3f of sgemm\n",
      f.settings.prompt_tokens, f.prefill_tokens_per_second,
      f.prefill_flops * f.prefill_tokens_per_second / f.settings.prompt_tokens /
          1e9,
      PrefillFraction(f));
  for (const DecodeFigure& d : f.decode) {
    std::printf("decode batch %2d at context %d: %8.1f tokens/s\n", d.batch,
                f.settings.context, d.tokens_per_second);
  }
  std::printf("batch-1 decode: %.3f of the bandwidth bound (%.1f MB/token)\n",
              DecodeFraction(f), f.decode_bytes_per_token / 1e6);
  std::printf("batch-16 decode: %.2f times batch 1\n", DecodeSpeedup(f, 16));
}

}  // namespace tandem::bench
