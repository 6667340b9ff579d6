"""Trains Tandem's default models: byte-level Llama-architecture models on
the English fortune cookies of Debian's `fortunes` package, on the CPU.

    nice -n 5 /usr/bin/python3 tools/train_default_model.py --model fortune
    nice -n 5 /usr/bin/python3 tools/train_default_model.py \
        --model fortune-draft

Each run writes models/<name>/ (config.json, model.safetensors in F32,
tokenizer.json, tokenizer_config.json, training.json) atomically. The result
is a function of the seed, the corpus and the thread count (set per preset).
`--steps N --no-save` gives a short calibration run; `--eval-only DIR`
prints the held-out bits per byte of a saved model directory.

Corpus: every regular file in /usr/share/games/fortunes/ that does not end in
.dat or .u8, read as bytes in name order. Fortunes are separated by lines
holding only '%'; leading and trailing newlines of a fortune are stripped and
empty fortunes dropped. Each fortune is one document: BOS (256), its UTF-8
bytes (ids 0-255), EOS (257).

Split: a fortune is held out when crc32(its bytes) % 20 == 0 (identical
fortunes land on the same side). Held-out fortunes whose document (BOS +
bytes + EOS) is longer than the context are used by neither split, so every
held-out document is scored whole.

Held-out bits per byte: each held-out document is run alone from position 0;
every token after BOS (each byte and the EOS) is predicted from the tokens
before it. bpb = sum over those predictions of -log2 p(token) divided by
their count (bytes + 1 per document).

Training: documents shuffled per epoch (seeded), concatenated into one
stream, cut into windows of `context` + 1 tokens; AdamW (betas 0.9/0.95,
weight decay on matrices only), linear warmup then cosine decay to a tenth,
gradient clipping at 1, dropout 0. The training forward pass
(`training_logits`) computes the same function as torch_llama's reference
model with less work: the query heads that share a KV head are stacked into
one matrix product, the causal mask is an additive bias fused into that
product, and the queries are split in two halves so the second half alone
looks at the later keys (a quarter of the score matrix is never computed).
Scoring and sampling use the reference forward pass.
"""

import argparse
import json
import math
import os
import sys
import time
import zlib

# Threads that wait for work sleep instead of spinning: the training shares
# its cores with other jobs, and spinning threads stall each other there.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORTUNE_DIR = "/usr/share/games/fortunes"
BOS, EOS, VOCAB = 256, 257, 258
HELD_OUT_MODULUS = 20

# Architecture and recipe of each model. Compute per token scales with the
# non-embedding parameters; the draft stays under an eighth of `fortune`'s.
# The result depends on the thread count too, so each preset fixes it.
PRESETS = {
    "fortune": dict(hidden=192, layers=6, heads=6, kv_heads=2, ffn=512,
                    context=512, batch=8, steps=3600, lr=2e-3, warmup=100,
                    weight_decay=0.1, seed=1234, threads=2),
    "fortune-draft": dict(hidden=96, layers=2, heads=3, kv_heads=1, ffn=256,
                          context=512, batch=16, steps=500, lr=3e-3,
                          warmup=50, weight_decay=0.1, seed=4321, threads=2),
}


# --------------------------------------------------------------------------
# Corpus


def read_fortunes(directory=FORTUNE_DIR):
    """All fortunes as bytes, in file-name then file order."""
    docs = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if (name.endswith((".dat", ".u8")) or os.path.islink(path)
                or not os.path.isfile(path)):
            continue
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        current = []
        for line in lines + [b"%"]:
            if line == b"%":
                text = b"\n".join(current).strip(b"\n")
                if text.strip():
                    docs.append(text)
                current = []
            else:
                current.append(line)
    return docs


def split_corpus(docs, context):
    """-> (train docs, held-out docs) as lists of bytes."""
    train, held_out = [], []
    for doc in docs:
        if zlib.crc32(doc) % HELD_OUT_MODULUS != 0:
            train.append(doc)
        elif len(doc) + 2 <= context:
            held_out.append(doc)
    return train, held_out


def encode(doc):
    return [BOS] + list(doc) + [EOS]


def epoch_windows(train_docs, context, seed, epoch):
    """[n, context + 1] int64 windows of one shuffled pass over the data."""
    gen = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(len(train_docs), generator=gen).tolist()
    stream = np.fromiter(
        (t for i in order for t in encode(train_docs[i])), dtype=np.int64)
    n = (len(stream) - 1) // context
    idx = np.arange(n)[:, None] * context + np.arange(context + 1)[None, :]
    return torch.from_numpy(stream[idx])


def batches(train_docs, context, batch, seed):
    """Endless deterministic stream of [batch, context + 1] windows."""
    epoch = 0
    while True:
        windows = epoch_windows(train_docs, context, seed, epoch)
        for i in range(0, len(windows) - batch + 1, batch):
            yield epoch, windows[i:i + batch]
        epoch += 1


# --------------------------------------------------------------------------
# Model


def model_config(p):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": p["hidden"],
        "intermediate_size": p["ffn"],
        "num_hidden_layers": p["layers"],
        "num_attention_heads": p["heads"],
        "num_key_value_heads": p["kv_heads"],
        "head_dim": p["hidden"] // p["heads"],
        "max_position_embeddings": p["context"],
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "hidden_act": "silu",
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "torch_dtype": "float32",
    }


def init_weights(model, num_layers):
    """N(0, 0.02); projections into the residual stream scaled down by
    sqrt(2 * layers); norm weights 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                p.normal_(0.0, 0.02 / math.sqrt(2 * num_layers))
            else:
                p.normal_(0.0, 0.02)


def weights_crc(model):
    """crc32 over every tensor's float32 bytes, in name order."""
    crc = 0
    for name, t in sorted(model.checkpoint_tensors().items()):
        crc = zlib.crc32(t.float().contiguous().numpy().tobytes(), crc)
    return f"{crc:08x}"


def count_params(model):
    total = sum(p.numel() for p in model.parameters())
    embed = model.model.embed_tokens.weight.numel()
    return total, total - embed


def flops_per_token(config, length):
    """Forward FLOPs for one token attending to `length` positions:
    2 x every matrix multiplied (all but the embedding lookup) plus the
    attention scores and weighted sum."""
    c = torch_llama.LlamaConfig(config)
    q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    per_layer = (c.hidden_size * (2 * q + 2 * kv)
                 + 3 * c.hidden_size * c.intermediate_size)
    matmul = c.num_layers * per_layer + c.hidden_size * c.vocab_size
    attention = c.num_layers * 2 * q * length
    return 2 * matmul + 2 * attention


# --------------------------------------------------------------------------
# Evaluation and sampling


@torch.no_grad()
def held_out_bits(model, docs, max_tokens=8192):
    """-> (total bits, predicted tokens) over `docs`, each scored alone."""
    model.eval()
    seqs = sorted((encode(d) for d in docs), key=len)
    total_bits, count, i = 0.0, 0, 0
    while i < len(seqs):
        j = i
        while j < len(seqs) and (j - i + 1) * len(seqs[j]) <= max_tokens:
            j += 1
        j = max(j, i + 1)
        group = seqs[i:j]
        width = len(group[-1])
        tokens = torch.zeros(len(group), width, dtype=torch.int64)
        mask = torch.zeros(len(group), width - 1, dtype=torch.bool)
        for r, s in enumerate(group):
            tokens[r, :len(s)] = torch.tensor(s)
            mask[r, :len(s) - 1] = True
        logits = model(tokens[:, :-1])
        nll = F.cross_entropy(logits.reshape(-1, VOCAB).double(),
                              tokens[:, 1:].reshape(-1), reduction="none")
        total_bits += (nll[mask.reshape(-1)].sum().item()) / math.log(2)
        count += int(mask.sum())
        i = j
    model.train()
    return total_bits, count


@torch.no_grad()
def sample(model, seed, temperature=0.8, max_tokens=None):
    """One document generated from BOS, as bytes (stops at EOS)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    limit = max_tokens or model.config.max_position_embeddings
    tokens = [BOS]
    while len(tokens) < limit:
        logits = model(torch.tensor([tokens]))[0, -1].double()
        probs = torch.softmax(logits / temperature, dim=-1)
        nxt = int(torch.multinomial(probs, 1, generator=gen))
        if nxt == EOS:
            break
        tokens.append(nxt)
    model.train()
    return bytes(t for t in tokens[1:] if t < 256)


# --------------------------------------------------------------------------
# Training


def causal_bias(length):
    """[length, length] additive mask: 0 where a query may look, -inf above
    the diagonal."""
    return torch.full((length, length), float("-inf")).triu(1)


def training_attention(attn, x, cos, sin, bias, halves=2):
    """torch_llama.Attention's function for x [B, T, hidden], computed in
    `halves` query blocks that each read only the keys they can see."""
    b, t, _ = x.shape
    h, kvh, d = attn.num_heads, attn.num_kv_heads, attn.head_dim
    group = h // kvh
    q = attn.q_proj(x).view(b, t, h, d).transpose(1, 2)
    k = attn.k_proj(x).view(b, t, kvh, d).transpose(1, 2)
    v = attn.v_proj(x).view(b, t, kvh, d).transpose(1, 2)
    q = torch_llama.apply_rope(q, cos, sin) * (1.0 / math.sqrt(d))
    k = torch_llama.apply_rope(k, cos, sin)
    # Query heads j*group .. j*group+group-1 share KV head j: stacking them
    # makes one [group*T, d] x [d, T] product per (sequence, KV head).
    q = q.reshape(b * kvh, group, t, d)
    k, v = k.reshape(b * kvh, t, d), v.reshape(b * kvh, t, d)
    outs = []
    for i in range(halves):
        lo, hi = i * t // halves, (i + 1) * t // halves
        qi = q[:, :, lo:hi].reshape(b * kvh, group * (hi - lo), d)
        scores = torch.baddbmm(bias[lo:hi, :hi].repeat(group, 1), qi,
                               k[:, :hi].transpose(1, 2))
        probs = torch.softmax(scores, dim=-1)
        outs.append(torch.bmm(probs, v[:, :hi]).view(
            b * kvh, group, hi - lo, d))
    out = torch.cat(outs, dim=2).view(b, h, t, d).transpose(1, 2)
    return attn.o_proj(out.reshape(b, t, h * d))


def training_logits(model, tokens, bias):
    """Logits [B, T, V] of tokens [B, T] from position 0, as model(tokens)
    computes them (see the module docstring)."""
    x = model.model.embed_tokens(tokens)
    cos, sin = torch_llama.rope_cos_sin(
        model.inv_freq, torch.arange(tokens.shape[1]), x.dtype)
    for layer in model.model.layers:
        x = x + training_attention(layer.self_attn,
                                   layer.input_layernorm(x), cos, sin, bias)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return model.lm_head(model.model.norm(x))


def lr_at(step, p):
    if step < p["warmup"]:
        return p["lr"] * (step + 1) / p["warmup"]
    progress = (step - p["warmup"]) / max(1, p["steps"] - p["warmup"])
    return p["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model, p):
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": p["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=p["lr"], betas=(0.9, 0.95), eps=1e-8)


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def train(p, train_docs, held_out, eval_every):
    torch.manual_seed(p["seed"])
    config = model_config(p)
    model = torch_llama.LlamaForCausalLM(config)
    init_weights(model, p["layers"])
    opt = make_optimizer(model, p)
    probe = held_out[::8]  # a fixed eighth of the held-out set
    start = time.time()
    history = []
    data = batches(train_docs, p["context"], p["batch"], p["seed"])
    bias = causal_bias(p["context"])
    for step in range(p["steps"]):
        epoch, window = next(data)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, p)
        logits = training_logits(model, window[:, :-1], bias)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB),
                               window[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 20 == 0 or step == p["steps"] - 1:
            elapsed = time.time() - start
            log(f"step={step} epoch={epoch} loss_bits="
                f"{loss.item() / math.log(2):.4f} lr={lr_at(step, p):.2e} "
                f"elapsed_s={elapsed:.0f} s_per_step="
                f"{elapsed / (step + 1):.3f}")
        if eval_every and step > 0 and step % eval_every == 0:
            bits, n = held_out_bits(model, probe)
            history.append({"step": step, "probe_bpb": bits / n})
            log(f"eval step={step} probe_bpb={bits / n:.4f}")
    return model, config, time.time() - start, history


def tokenizer_json():
    """A Hugging Face tokenizer.json for the byte tokenizer (see
    models/README.md): BPE over the 256 byte tokens, no merges."""
    vocab = {f"<0x{b:02X}>": b for b in range(256)}

    def special(token_id, content):
        return {"id": token_id, "content": content, "single_word": False,
                "lstrip": False, "rstrip": False, "normalized": False,
                "special": True}

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(BOS, "<s>"), special(EOS, "</s>")],
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False,
                  "byte_fallback": True, "vocab": vocab, "merges": []},
    }


def tokenizer_config(context):
    return {"tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True,
            "add_eos_token": False, "model_max_length": context}


def evaluate_saved(directory):
    """Scores a saved model directory on the held-out split its context
    admits; prints the bits per byte and the counts behind it."""
    model, config = torch_llama.load_model(directory)
    _, held_out = split_corpus(read_fortunes(),
                               config["max_position_embeddings"])
    bits, n = held_out_bits(model, held_out)
    print(f"model={directory} held_out_docs={len(held_out)} "
          f"predicted_tokens={n} bits={bits:.3f} bpb={bits / n:.4f}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, help="override the preset")
    parser.add_argument("--eval-every", type=int, default=400)
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--out", help="default: models/<model>")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--threads", type=int,
                        help="default: the preset's (2 for --eval-only)")
    parser.add_argument("--eval-only", metavar="DIR",
                        help="print the held-out bpb of a saved model")
    args = parser.parse_args()

    if args.eval_only:
        torch.set_num_threads(args.threads or 2)
        return evaluate_saved(args.eval_only)
    if not args.model:
        parser.error("--model or --eval-only is required")
    p = dict(PRESETS[args.model])
    if args.steps:
        p["steps"] = args.steps
    if args.threads:
        p["threads"] = args.threads
    torch.set_num_threads(p["threads"])
    docs = read_fortunes()
    train_docs, held_out = split_corpus(docs, p["context"])
    train_tokens = sum(len(d) + 2 for d in train_docs)
    log(f"model={args.model} preset={json.dumps(p)} fortunes={len(docs)} "
        f"train_docs={len(train_docs)} train_tokens={train_tokens} "
        f"held_out_docs={len(held_out)}")

    model, config, train_s, history = train(p, train_docs, held_out,
                                            args.eval_every)
    total, non_embed = count_params(model)
    eval_start = time.time()
    bits, n = held_out_bits(model, held_out)
    bpb = bits / n
    log(f"done model={args.model} params={total} non_embedding={non_embed} "
        f"train_s={train_s:.0f} held_out_bpb={bpb:.4f} predicted_tokens={n} "
        f"eval_s={time.time() - eval_start:.0f} "
        f"weights_crc32={weights_crc(model)}")
    samples = [sample(model, seed=i).decode("utf-8", "replace")
               for i in range(args.samples)]
    for i, text in enumerate(samples):
        log(f"sample {i}:\n{text}\n%")
    if args.no_save:
        return 0
    summary = {
        "model": args.model, "recipe": p, "parameters": total,
        "non_embedding_parameters": non_embed,
        "forward_flops_per_token_at_256": flops_per_token(config, 256),
        "tokens_seen": p["steps"] * p["batch"] * p["context"],
        "train_tokens_per_epoch": train_tokens,
        "train_documents": len(train_docs),
        "held_out_documents": len(held_out),
        "held_out_predicted_tokens": n, "held_out_bits": bits,
        "held_out_bpb": bpb, "train_wall_s": round(train_s),
        "threads": p["threads"], "torch": torch.__version__,
        "probe_history": history,
        "samples": {"seeds": list(range(args.samples)),
                    "temperature": 0.8, "text": samples},
    }
    out = args.out or os.path.join(REPO, "models", args.model)
    torch_llama.save_model(out, model, config, dtype="F32", extra_files={
        "tokenizer.json": json.dumps(tokenizer_json(), indent=1) + "\n",
        "tokenizer_config.json": json.dumps(
            tokenizer_config(p["context"]), indent=2) + "\n",
        "training.json": json.dumps(summary, indent=2) + "\n",
    })
    log(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
