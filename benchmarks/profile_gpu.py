"""Where the time of one tiny energy+forces call goes on a GPU (torch.profiler, CUDA time).

python -m benchmarks.profile_gpu 33333 results/profile_gpu.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ase_distill import ConservativePotential, atoms_to_graph, load_student
from benchmarks.systems import water_box


def main(n_molecules: int, out: str) -> None:
    """Profile one float32 call on ``n_molecules`` waters; write the top CUDA kernels."""
    model, _ = load_student("tiny")
    model = model.to("cuda", torch.float32)
    graph = atoms_to_graph(
        water_box(n_molecules), model.cutoff, model.species, torch.float32, "cuda"
    )
    potential = ConservativePotential(model)
    for _ in range(3):
        potential.evaluate(graph, forces=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        potential.evaluate(graph, forces=True)
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25)
    head = (
        f"{torch.cuda.get_device_name()}: tiny float32, {graph.n_atoms} atoms, "
        f"{graph.edge_index.shape[1]} edges, peak memory "
        f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB\n"
    )
    Path(out).write_text(head + table + "\n")
    print(head + table)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
