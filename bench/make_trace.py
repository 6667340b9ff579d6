#!/usr/bin/env python3
"""Writes a synthetic request trace with shared prompt prefixes.

The output is JSON lines in the format `tandem bench --trace` reads (the
format of the public Mooncake traces): `timestamp` (ms since the start),
`input_length`, `output_length` and `hash_ids`, one id per block of
`--block-tokens` prompt tokens (the last block may be partial). Equal ids
mean equal blocks.

Structure of the prompts:
  * a few shared prefixes (think system prompts or documents), chosen with
    Zipf-like popularity (`--prefixes`, `--zipf`); a request takes the
    first `--prefix-share` of its blocks from its prefix's chain;
  * with probability `--followup`, a request continues an earlier request
    of the same prefix: its prompt is that whole prompt plus new blocks (a
    later turn of a conversation);
  * every other block is new.
Arrivals are Poisson at `--rate` requests per second; lengths are
log-normal around `--input-mean` and `--output-mean`.

    python3 bench/make_trace.py --requests 200 --rate 2 --seed 1 > trace.jsonl
"""

import argparse
import json
import math
import random
import sys


def lognormal_length(rng, mean, sigma, lo):
    # Log-normal with the given mean: mu = ln(mean) - sigma^2 / 2.
    mu = math.log(mean) - sigma * sigma / 2
    return max(lo, int(round(rng.lognormvariate(mu, sigma))))


def pick_prefix(rng, weights):
    return rng.choices(range(len(weights)), weights=weights)[0]


def make_trace(args):
    rng = random.Random(args.seed)
    weights = [1.0 / (k + 1) ** args.zipf for k in range(args.prefixes)]
    next_id = 0
    chains = []  # each prefix's block ids, extended as requests need them
    for _ in range(args.prefixes):
        chains.append([])
    history = [[] for _ in range(args.prefixes)]  # earlier prompts' ids
    now_ms = 0.0
    for _ in range(args.requests):
        now_ms += rng.expovariate(args.rate) * 1000.0
        group = pick_prefix(rng, weights)
        output_length = lognormal_length(rng, args.output_mean, 0.6, 1)
        if history[group] and rng.random() < args.followup:
            base = rng.choice(history[group])
            turn = lognormal_length(rng, args.input_mean / 4, 0.5, 1)
            blocks = len(base) + math.ceil(turn / args.block_tokens)
            input_length = (blocks - 1) * args.block_tokens + rng.randint(
                1, args.block_tokens)
            ids = list(base)
        else:
            input_length = lognormal_length(rng, args.input_mean, 0.5, 1)
            blocks = math.ceil(input_length / args.block_tokens)
            shared = min(blocks, int(round(blocks * args.prefix_share)))
            chain = chains[group]
            while len(chain) < shared:
                chain.append(next_id)
                next_id += 1
            ids = chain[:shared]
        while len(ids) < blocks:
            ids.append(next_id)
            next_id += 1
        history[group].append(ids)
        yield {
            "timestamp": int(round(now_ms)),
            "input_length": input_length,
            "output_length": output_length,
            "hash_ids": ids,
        }


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--rate", type=float, default=1.0,
                   help="mean arrivals per second (Poisson)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block-tokens", "--block_tokens", type=int, default=512)
    p.add_argument("--input-mean", "--input_mean", type=float, default=2048)
    p.add_argument("--output-mean", "--output_mean", type=float, default=256)
    p.add_argument("--prefixes", type=int, default=4,
                   help="distinct shared prefixes")
    p.add_argument("--zipf", type=float, default=1.0,
                   help="popularity skew of the prefixes (0: uniform)")
    p.add_argument("--prefix-share", "--prefix_share", type=float,
                   default=0.5,
                   help="fraction of a new prompt's blocks from its prefix")
    p.add_argument("--followup", type=float, default=0.3,
                   help="probability that a request continues an earlier one")
    p.add_argument("--out", default="-", help="output file; - is stdout")
    args = p.parse_args(argv)
    checks = [
        (args.requests >= 1, "--requests must be >= 1"),
        (args.rate > 0, "--rate must be > 0"),
        (args.block_tokens >= 1, "--block-tokens must be >= 1"),
        (args.input_mean >= 1 and args.output_mean >= 1,
         "--input-mean and --output-mean must be >= 1"),
        (args.prefixes >= 1, "--prefixes must be >= 1"),
        (0 <= args.prefix_share <= 1, "--prefix-share must be in [0, 1]"),
        (0 <= args.followup <= 1, "--followup must be in [0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            p.error(message)
    return args


def main(argv):
    args = parse_args(argv)
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    with out:
        for entry in make_trace(args):
            out.write(json.dumps(entry) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
