"""Ratios, scaling exponents and a plot from one run of ``benchmarks/test_small_and_large.py``.

python -m benchmarks.small_large_report benchmarks/results/small-large-run.json [MORE.json ...]

Several files (for example the two groups run separately) are merged; each ratio still comes
from one group, hence from one run.
"""

import json
import sys
from pathlib import Path

import numpy as np

GOALS = {  # issue 14, one thread, same run
    "fast vs gfn2-xtb": 10.0,
    "fast vs orb-v3-conservative-inf": 250.0,
    "default vs orb-v3-conservative-inf": 50.0,
    "eager float64 vs orb-v3-conservative-inf": 50.0,
    "fast ms": 1.0,
    "default / fast": 2.0,
    "scaling exponent (default, 333-9999)": 1.1,
}


def _exponent(points: dict[int, float], lo: int = 300, hi: int = 10_000) -> float | None:
    """Slope of log(time) against log(atoms) between ``lo`` and ``hi`` atoms."""
    xs = [n for n in sorted(points) if lo <= n <= hi]
    if len(xs) < 2:
        return None
    return float(np.polyfit(np.log(xs), np.log([points[n] for n in xs]), 1)[0])


def _plot(scaling: dict[str, dict[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, points in sorted(scaling.items()):
        xs = sorted(points)
        ax.loglog(xs, [points[n] / n * 1e6 for n in xs], "o-", label=label)
    ax.set_xlabel("atoms (water box)")
    ax.set_ylabel("us per atom per energy+forces call")
    ax.set_title("tiny, 1 CPU thread: cost per atom", fontsize=9)
    if scaling:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(*paths: str, out: str = "benchmarks/results/small_large.json") -> dict:
    """Write the ratios against the issue's goals, the exponents, memory and a PNG."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    data = {**runs[0], "benchmarks": [b for run in runs for b in run["benchmarks"]]}
    small, scaling, memory = {}, {}, {}
    for b in data["benchmarks"]:
        info, median = b["extra_info"], b["stats"]["median"]
        if b["group"].startswith("small-"):
            small[info["calculator"]] = median
        else:
            scaling.setdefault(info["calculator"], {})[info["n_atoms"]] = median
            memory.setdefault(info["calculator"], {})[str(info["n_atoms"])] = round(
                info["process_peak_rss_mb"]
            )
    measured = {}
    if {"tiny-fast", "gfn2-xtb"} <= small.keys():
        measured["fast vs gfn2-xtb"] = small["gfn2-xtb"] / small["tiny-fast"]
    if {"tiny-fast", "orb-v3-conservative-inf"} <= small.keys():
        measured["fast vs orb-v3-conservative-inf"] = (
            small["orb-v3-conservative-inf"] / small["tiny-fast"]
        )
    if {"tiny-default", "orb-v3-conservative-inf"} <= small.keys():
        measured["default vs orb-v3-conservative-inf"] = (
            small["orb-v3-conservative-inf"] / small["tiny-default"]
        )
    if "tiny-fast" in small:
        measured["fast ms"] = small["tiny-fast"] * 1e3
    if {"tiny-fast", "tiny-default"} <= small.keys():
        measured["default / fast"] = small["tiny-default"] / small["tiny-fast"]
    if {"tiny-eager", "orb-v3-conservative-inf"} <= small.keys():
        measured["eager float64 vs orb-v3-conservative-inf"] = (
            small["orb-v3-conservative-inf"] / small["tiny-eager"]
        )
    exponents = {label: _exponent(points) for label, points in scaling.items()}
    if exponents.get("tiny-default") is not None:
        measured["scaling exponent (default, 333-9999)"] = exponents["tiny-default"]
    higher_better = {"fast vs gfn2-xtb", "fast vs orb-v3-conservative-inf"}
    higher_better |= {key for key in GOALS if "orb" in key}
    verdicts = {
        key: {
            "measured": round(value, 3),
            "goal": GOALS[key],
            "met": value >= GOALS[key] if key in higher_better else value <= GOALS[key],
        }
        for key, value in measured.items()
    }
    result = {
        "machine": data.get("machine_info", {}).get("cpu", {}).get("brand_raw"),
        "threads": 1,
        "small_molecule_ms": {k: round(v * 1e3, 3) for k, v in small.items()},
        "goals": verdicts,
        "scaling_s_per_call": {
            k: {str(n): round(t, 4) for n, t in sorted(v.items())} for k, v in scaling.items()
        },
        "scaling_exponent_333_9999": {k: v and round(v, 3) for k, v in exponents.items()},
        "process_peak_rss_mb": memory,
    }
    _plot(scaling, Path(out).with_suffix(".png"))
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(*sys.argv[1:])
