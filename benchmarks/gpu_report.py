"""Summarise a GPU run (``benchmarks/gpu_run.sh``): JSON of ratios and a plot.

Reads ``scatter_gpu.json`` (pytest-benchmark) and ``train_*.json`` in a folder and writes
``gpu_summary.json`` and ``gpu_scatter.png`` there::

    python -m benchmarks.gpu_report benchmarks/results/gpu
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def _scatter_rows(bench: dict) -> list[dict]:
    rows = []
    for b in bench["benchmarks"]:
        info = b["extra_info"]
        if "impl" in info:
            rows.append({**info, "median_s": b["stats"]["median"]})
    return rows


def _rate_rows(bench: dict, key: str, per: str) -> list[dict]:
    """Rows of the benchmarks tagged with ``key``: median seconds and atoms per second."""
    rows = []
    for b in bench["benchmarks"]:
        info = b["extra_info"]
        if key in info:
            median = b["stats"]["median"]
            rows.append(
                {**info, f"median_{per}_s": median, f"atom_{per}s_per_s": info["n_atoms"] / median}
            )
    return rows


def kernel_ratios(rows: list[dict]) -> list[dict]:
    """Speed of the CSR kernel relative to each torch op, per (edges, width, dtype)."""
    by_case: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in rows:
        by_case[(r["edges"], r["width"], r["dtype"])][r["impl"]] = r["median_s"]
    out = []
    for (edges, width, dtype), times in sorted(by_case.items()):
        if "csr_kernel" not in times:
            continue
        row = {"edges": edges, "width": width, "dtype": dtype}
        row.update({f"{k}_us": round(v * 1e6, 2) for k, v in times.items()})
        for other in ("index_add_", "scatter_add_", "torch_scatter"):
            if other in times:
                row[f"speedup_vs_{other}"] = round(times[other] / times["csr_kernel"], 3)
        out.append(row)
    return out


def plot(ratios: list[dict], path: Path, device: str) -> None:
    """Kernel speed-up over index_add_ against edge count, one line per width and dtype."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    series: dict[tuple, list] = defaultdict(list)
    for r in ratios:
        if "speedup_vs_index_add_" in r:
            series[(r["width"], r["dtype"])].append((r["edges"], r["speedup_vs_index_add_"]))
    for (width, dtype), pts in sorted(series.items()):
        xs, ys = zip(*sorted(pts))
        ax.plot(xs, ys, "o-" if dtype == "fp32" else "s--", label=f"{width} features, {dtype}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(1.5, color="red", lw=0.8, ls=":", label="goal 1.5x (1M x 64 fp32)")
    ax.set_xscale("log")
    ax.set_xlabel("edges")
    ax.set_ylabel("speed-up of CSR kernel over index_add_")
    ax.set_title(f"segment sum on {device}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(folder: str) -> dict:
    """Write the summary of ``folder``; returns it."""
    root = Path(folder)
    bench = json.loads((root / "scatter_gpu.json").read_text())
    rows = _scatter_rows(bench)
    device = rows[0]["device"] if rows else "unknown"
    ratios = kernel_ratios(rows)
    summary = {
        "device": device,
        "segment_sum": ratios,
        "md_step": _rate_rows(bench, "backend", "step"),
        "model_call": _rate_rows(bench, "model_backend", "call"),
        "training": {
            p.stem.removeprefix("train_"): json.loads(p.read_text())
            for p in sorted(root.glob("train_*.json"))
        },
    }
    goal = [r for r in ratios if (r["edges"], r["width"], r["dtype"]) == (1_000_000, 64, "fp32")]
    if goal:
        summary["goal_kernel_1M_x64_fp32_vs_index_add"] = goal[0].get("speedup_vs_index_add_")
    (root / "gpu_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if ratios:
        plot(ratios, root / "gpu_scatter.png", device)
    for r in summary["md_step"]:
        print(f"MD {r['n_atoms']} atoms {r['backend']}: {r['atom_steps_per_s']:.3g} atom-steps/s")
    for r in summary["model_call"]:
        print(
            f"model {r['n_atoms']} atoms {r['model_backend']}: {r['atom_calls_per_s']:.3g} atom/s"
        )
    print("kernel 1M x 64 fp32 vs index_add_:", summary.get("goal_kernel_1M_x64_fp32_vs_index_add"))
    return summary


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/gpu")
