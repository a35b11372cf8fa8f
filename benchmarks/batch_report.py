"""Ratio of the batched-evaluation benchmark: ``python -m benchmarks.batch_report RUN.json``."""

import json
import sys
from pathlib import Path


def main(path: str, out: str = "benchmarks/results/batch_speedup.json") -> dict:
    """Throughput ratio batched / separate from one pytest-benchmark run; written to ``out``."""
    data = json.loads(Path(path).read_text())
    times = {b["extra_info"]["mode"]: b["stats"]["median"] for b in data["benchmarks"]}
    replicas = data["benchmarks"][0]["extra_info"]["replicas"]
    result = {
        "replicas": replicas,
        "separate_ms_per_structure": times["separate"] / replicas * 1e3,
        "batched_ms_per_structure": times["batched"] / replicas * 1e3,
        "throughput_ratio": times["separate"] / times["batched"],
        "ms_per_structure": {mode: t / replicas * 1e3 for mode, t in times.items()},
        # the compiled float64 batch against the default separate calls (the baseline)
        # and against separate calls of the same compiled package (the fair one)
        "compiled_batch_vs_separate_default": times["separate"] / times["batched-compiled"],
        "compiled_batch_vs_separate_compiled": (
            times["separate-compiled"] / times["batched-compiled"]
        ),
        "machine": data.get("machine_info", {}).get("cpu", {}).get("brand_raw"),
    }
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(*sys.argv[1:])
