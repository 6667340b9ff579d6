#!/usr/bin/env python3
"""Draws the plots of `tandem bench` reports (JSON, see docs/benchmarks.md).

    python3 bench/plot_serving.py --out DIR REPORT.json [REPORT.json ...]

Writes into DIR:
  latency_cdf.png      CDFs of TTFT, TPOT and end-to-end latency, one line
                       per report, labelled with its config.label;
  goodput_vs_rate.png  goodput and request throughput against the offered
                       request rate, one line per series;
  tokens_vs_rate.png   output token throughput against the offered rate.
The rate plots need at least two reports; reports in the same directory
form one series (a sweep writes one directory per deployment), named after
the directory. The offered rate is config.rate, or for closed-loop and
trace runs the requests sent per second.
"""

import argparse
import collections
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def load(path):
    with open(path) as f:
        report = json.load(f)
    for key in ("config", "summary", "requests"):
        if key not in report:
            raise ValueError(f"{path}: not a tandem bench report (no '{key}')")
    return report


def label_of(path, report):
    return report["config"].get("label") or os.path.basename(path)


def ok_values(report, key):
    return sorted(r[key] for r in report["requests"]
                  if r.get("status") == "OK" and r.get(key) is not None)


def offered_rate(report):
    rate = report["config"].get("rate")
    if rate:
        return float(rate)
    summary = report["summary"]
    duration = summary.get("duration_s") or 0
    return summary["requests"] / duration if duration > 0 else 0.0


def plot_cdfs(reports, out_dir):
    metrics = [("ttft_ms", "TTFT (ms)"), ("tpot_ms", "TPOT (ms)"),
               ("e2e_ms", "end-to-end latency (ms)")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4))
    for ax, (key, title) in zip(axes, metrics):
        for path, report in reports:
            values = ok_values(report, key)
            if not values:
                continue
            n = len(values)
            ax.step(values, [(i + 1) / n for i in range(n)], where="post",
                    label=label_of(path, report))
        ax.set_xlabel(title)
        ax.set_ylabel("fraction of requests")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    path = os.path.join(out_dir, "latency_cdf.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def series(reports):
    groups = collections.OrderedDict()
    for path, report in reports:
        name = os.path.basename(os.path.dirname(os.path.abspath(path)))
        groups.setdefault(name, []).append(report)
    for name in groups:
        groups[name].sort(key=offered_rate)
    return groups


def plot_rates(reports, out_dir):
    groups = series(reports)
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, runs) in enumerate(groups.items()):
        x = [offered_rate(r) for r in runs]
        ax.plot(x, [r["summary"]["goodput"] for r in runs], marker="o",
                color=f"C{i}", label=f"{name} goodput")
        ax.plot(x, [r["summary"]["request_throughput"] for r in runs],
                marker="x", linestyle="--", color=f"C{i}",
                label=f"{name} throughput")
    slo = reports[0][1]["config"]
    ax.set_title(f"goodput: TTFT <= {slo.get('slo_ttft_ms')} ms, "
                 f"TPOT <= {slo.get('slo_tpot_ms')} ms", fontsize="medium")
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("requests/s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    written.append(os.path.join(out_dir, "goodput_vs_rate.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in groups.items():
        ax.plot([offered_rate(r) for r in runs],
                [r["summary"]["output_token_throughput"] for r in runs],
                marker="o", label=name)
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("output tokens/s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    written.append(os.path.join(out_dir, "tokens_vs_rate.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


def main(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory for the PNGs")
    p.add_argument("reports", nargs="+", help="report JSON files")
    args = p.parse_args(argv)
    try:
        reports = [(path, load(path)) for path in args.reports]
    except (OSError, ValueError) as e:
        print(f"plot_serving: {e}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    written = [plot_cdfs(reports, args.out)]
    if len(reports) >= 2:
        written += plot_rates(reports, args.out)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
