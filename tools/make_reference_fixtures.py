"""Writes the engine's reference fixtures: small random Llama-family
checkpoints and the logits that tools/torch_llama.py computes for them.

Regenerate (from the repository root, with Debian's python3-torch):

    /usr/bin/python3 tools/make_reference_fixtures.py

It rewrites engine/testdata/reference/<case>/ for every case below, each
holding config.json, model.safetensors and reference.json. The output is a
pure function of the seeds below (torch's CPU generator), so running it again
gives the same bytes. `--out DIR` writes elsewhere; `--check` regenerates into
a temporary directory and fails unless it matches the committed fixtures.

reference.json: {"case", "description", "tokens": [T ints, positions 0..T-1],
"logits": [T rows of vocab_size floats]} where logits[t] are the next-token
logits after tokens[0..t], computed in float64 from the weights exactly as
stored (F16/BF16 weights are read back and widened), then rounded to float32
and written with 7 significant digits.

Weights: every linear and embedding matrix ~ N(0, 1/fan_in) with fan_in the
input width (the hidden size for the embedding), norm weights uniform in
[0.5, 1.5], biases ~ N(0, 0.5^2).
"""

import argparse
import filecmp
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "engine", "testdata", "reference")

BASE = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 96,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 64,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
}

# name -> (description, config overrides, stored dtype, sequence length)
CASES = {
    "mha": ("multi-head attention: 2 heads, 2 kv heads, head_dim 16",
            {}, "F32", 16),
    "gqa": ("grouped-query attention: 4 heads share 2 kv heads",
            {"hidden_size": 64, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 96}, "F32", 16),
    "tied": ("lm_head tied to embed_tokens (no lm_head.weight stored)",
             {"tie_word_embeddings": True}, "F32", 16),
    "attention_bias": ("Qwen2ForCausalLM: biases on q, k and v, 4 heads / "
                       "2 kv heads",
                       {"architectures": ["Qwen2ForCausalLM"],
                        "model_type": "qwen2", "num_attention_heads": 4,
                        "num_key_value_heads": 2, "rms_norm_eps": 1e-6},
                       "F32", 16),
    "rope_theta": ("rope_theta 500000", {"rope_theta": 500000.0}, "F32", 20),
    "rope_linear": ("linear rope scaling, factor 4",
                    {"rope_scaling": {"rope_type": "linear", "factor": 4.0}},
                    "F32", 20),
    "rope_llama3": ("llama3 rope scaling: factor 8, low 1, high 4, original "
                    "max positions 32; with head_dim 16 and theta 10000 the "
                    "frequencies fall in all three bands (kept, blended, "
                    "divided by factor)",
                    {"rope_theta": 10000.0,
                     "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                      "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 32}},
                    "F32", 20),
    "head_dim": ("head_dim 16 != hidden 48 / 4 heads (q_dim 64), 2 kv heads",
                 {"hidden_size": 48, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "head_dim": 16,
                  "intermediate_size": 96}, "F32", 16),
    "bf16": ("weights stored as BF16; reference from the rounded weights",
             {"torch_dtype": "bfloat16", "num_key_value_heads": 1},
             "BF16", 16),
    "f16": ("weights stored as F16; reference from the rounded weights",
            {"torch_dtype": "float16"}, "F16", 16),
}


def random_weights(model, gen):
    """Fills `model` in place from generator `gen` (see module docstring)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                p.copy_(torch.rand(p.shape, generator=gen, dtype=torch.float64)
                        + 0.5)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen,
                                    dtype=torch.float64) * 0.5)
            else:
                fan_in = p.shape[1]
                p.copy_(torch.randn(p.shape, generator=gen,
                                    dtype=torch.float64) / fan_in ** 0.5)


def write_case(out_dir, case, seed):
    description, overrides, dtype, length = CASES[case]
    config = dict(BASE, **overrides)
    gen = torch.Generator().manual_seed(seed)
    model = torch_llama.LlamaForCausalLM(config).double()
    random_weights(model, gen)
    tokens = torch.randint(0, config["vocab_size"], (length,), generator=gen)
    case_dir = os.path.join(out_dir, case)
    torch_llama.save_model(case_dir, model, config, dtype=dtype)
    # The reference reads the checkpoint back, so it sees the stored values.
    loaded, _ = torch_llama.load_model(case_dir, dtype=torch.float64)
    with torch.no_grad():
        logits = loaded(tokens[None, :])[0].float()
    reference = {
        "case": case,
        "description": description,
        "tokens": tokens.tolist(),
        "logits": [[float(f"{v:.7g}") for v in row.tolist()]
                   for row in logits],
    }
    with open(os.path.join(case_dir, "reference.json"), "w") as f:
        json.dump(reference, f, separators=(",", ":"))
        f.write("\n")


def write_all(out_dir):
    for i, case in enumerate(CASES):
        write_case(out_dir, case, seed=1000 + i)


def same_tree(a, b):
    for case in CASES:
        for name in ("config.json", "model.safetensors", "reference.json"):
            if not filecmp.cmp(os.path.join(a, case, name),
                               os.path.join(b, case, name), shallow=False):
                print(f"differs: {case}/{name}")
                return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            write_all(tmp)
            ok = same_tree(tmp, args.out)
        print("fixtures match" if ok else "fixtures differ")
        return 0 if ok else 1
    write_all(args.out)
    print(f"wrote {len(CASES)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
