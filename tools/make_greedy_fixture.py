"""Writes the PyTorch fixtures that tests/fortune_model_test.cc checks the
engine against, for a byte-level default model (models/NAME, trained by
tools/train_default_model.py):

  tests/testdata/NAME_greedy.json      prompts and their greedy
                                       continuations
  tests/testdata/fortune_held_out_CONTEXT.txt
                                       the held-out split of the training
                                       corpus for that context, fortunes
                                       separated by '%' lines

    /usr/bin/python3 tools/make_greedy_fixture.py --model models/fortune

Greedy decoding runs the model in float64 (tools/torch_llama.py), every
step a full forward pass over the sequence so far, argmax of the last
position (ties to the lower id), stopping after EOS or --tokens tokens. A
continuation is cut before any step whose two best logits are closer than
--min-gap, where float32 rounding in the engine could pick the other one.

The held-out split is tools/train_default_model.py's own (same corpus
reader, same split), so scoring it reproduces the `held_out_bpb` that the
training recorded in the model's training.json.
"""

import argparse
import hashlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama  # noqa: E402
import train_default_model  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROMPTS = [
    "",
    "Q: What do you call",
    "A bird in the hand",
    "Computers are",
    "The best way to",
    "Never trust",
    "You will",
    "Love is",
]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@torch.no_grad()
def greedy(model, prompt_ids, max_tokens, eos, min_gap):
    """-> (generated ids, smallest top-1/top-2 logit gap seen)."""
    ids = list(prompt_ids)
    out, smallest = [], float("inf")
    for _ in range(max_tokens):
        logits = model(torch.tensor([ids]))[0, -1]
        top = torch.topk(logits, 2)
        gap = float(top.values[0] - top.values[1])
        if gap < min_gap:
            break
        smallest = min(smallest, gap)
        token = int(torch.argmax(logits))  # first maximum: the lower id
        out.append(token)
        ids.append(token)
        if token == eos:
            break
    return out, smallest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.path.join(REPO, "models",
                                                        "fortune"))
    parser.add_argument("--out-dir", default=os.path.join(REPO, "tests",
                                                          "testdata"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--min-gap", type=float, default=1e-3)
    args = parser.parse_args()

    model, config = torch_llama.load_model(args.model, dtype=torch.float64)
    bos, eos = config["bos_token_id"], config["eos_token_id"]
    cases = []
    for prompt in PROMPTS:
        prompt_ids = [bos] + list(prompt.encode("utf-8"))
        ids, gap = greedy(model, prompt_ids, args.tokens, eos, args.min_gap)
        text = bytes(t for t in ids if t < 256).decode("utf-8", "replace")
        cases.append({"prompt": prompt, "prompt_ids": prompt_ids,
                      "greedy_ids": ids, "text": text, "min_gap": gap})
        print(f"{prompt!r}: {len(ids)} tokens, min gap {gap:.4f}: {text!r}")

    with open(os.path.join(args.model, "training.json")) as f:
        training = json.load(f)
    context = config["max_position_embeddings"]
    _, held_out = train_default_model.split_corpus(
        train_default_model.read_fortunes(), context)
    os.makedirs(args.out_dir, exist_ok=True)
    held_out_file = f"fortune_held_out_{context}.txt"
    with open(os.path.join(args.out_dir, held_out_file), "wb") as f:
        f.write(b"\n%\n".join(held_out) + b"\n")
    name = os.path.basename(os.path.normpath(args.model))
    fixture = {
        "model": os.path.relpath(os.path.abspath(args.model), REPO),
        "model_safetensors_sha256": sha256(
            os.path.join(args.model, "model.safetensors")),
        "max_tokens": args.tokens,
        "min_gap": args.min_gap,
        "held_out_file": held_out_file,
        "held_out_documents": len(held_out),
        "cases": cases,
    }
    with open(os.path.join(args.out_dir, f"{name}_greedy.json"), "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"held-out documents: {len(held_out)} "
          f"(training.json: {training['held_out_documents']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
