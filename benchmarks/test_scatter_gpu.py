"""GPU: the CSR segment-sum kernel vs index_add_, scatter_add_ and torch-scatter, and the tiny
student's MD step on 1k / 10k / 100k atoms. Skipped without CUDA (run where a GPU is lent).

Goal (issue on the CUDA kernel): >= 1.5x index_add_ at 1M edges x 64 features fp32 on an H100,
bitwise deterministic.
"""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

EDGES = [10_000, 100_000, 1_000_000, 10_000_000]
WIDTHS = [16, 64, 256]


def _graph(n_edges, width, dtype=torch.float32, avg_degree=32):
    n_nodes = max(n_edges // avg_degree, 1)
    index = torch.randint(n_nodes, (n_edges,), device="cuda").sort().values
    src = torch.randn(n_edges, width, device="cuda", dtype=dtype)
    from ase_distill.ops import csr_offsets

    return src, index, csr_offsets(index, n_nodes), n_nodes


def _timed(benchmark, fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    run()
    benchmark.pedantic(run, rounds=20, iterations=1, warmup_rounds=3)


DTYPES = {"fp32": torch.float32, "fp64": torch.float64}


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("n_edges", EDGES)
@pytest.mark.parametrize("impl", ["csr_kernel", "index_add_", "scatter_add_", "torch_scatter"])
def test_segment_sum(benchmark, impl, n_edges, width, dtype):
    if n_edges * width > 1_000_000_000:
        pytest.skip("beyond memory budget")
    src, index, offsets, n = _graph(n_edges, width, DTYPES[dtype])
    benchmark.group = f"{n_edges} edges x {width} {dtype}"
    benchmark.extra_info.update(
        {
            "impl": impl,
            "edges": n_edges,
            "width": width,
            "dtype": dtype,
            "device": torch.cuda.get_device_name(),
        }
    )
    if impl == "csr_kernel":
        from ase_distill.ops import cuda_segment

        _timed(
            benchmark, lambda: cuda_segment.segment_sum_csr(src, index, offsets, n, validate=False)
        )
    elif impl == "index_add_":
        _timed(benchmark, lambda: src.new_zeros(n, width).index_add_(0, index, src))
    elif impl == "scatter_add_":
        idx = index[:, None].expand(-1, width)
        _timed(benchmark, lambda: src.new_zeros(n, width).scatter_add_(0, idx, src))
    else:
        torch_scatter = pytest.importorskip("torch_scatter")
        _timed(benchmark, lambda: torch_scatter.scatter_sum(src, index, dim=0, dim_size=n))


@pytest.mark.parametrize("n_molecules", [333, 3333, 33333])
@pytest.mark.parametrize("backend", ["torch", "cuda"])
def test_tiny_md_step(benchmark, n_molecules, backend, monkeypatch):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from ase_distill import DistilledCalculator
    from ase_distill.ops import ENV_VAR
    from benchmarks.systems import water_box

    monkeypatch.setenv(ENV_VAR, backend)
    atoms = water_box(n_molecules)
    atoms.calc = DistilledCalculator("tiny", device="cuda", dtype=torch.float32)
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.run(2)
    benchmark.group = f"tiny MD step, {len(atoms)} atoms"
    benchmark.extra_info.update(
        {"backend": backend, "n_atoms": len(atoms), "device": torch.cuda.get_device_name()}
    )
    benchmark.pedantic(lambda: dyn.run(1), rounds=10, iterations=1)


@pytest.mark.parametrize("n_molecules", [333, 3333, 33333])
@pytest.mark.parametrize("backend", ["torch", "cuda"])
def test_tiny_model_call(benchmark, n_molecules, backend, monkeypatch):
    """Energy + forces on a graph already on the GPU: the model's ceiling without the CPU
    neighbour list and ASE's Python step around it."""
    from ase_distill import ConservativePotential, atoms_to_graph, load_student
    from ase_distill.ops import ENV_VAR
    from benchmarks.systems import water_box

    monkeypatch.setenv(ENV_VAR, backend)
    model, _ = load_student("tiny")
    model = model.to("cuda", torch.float32)
    atoms = water_box(n_molecules)
    graph = atoms_to_graph(atoms, model.cutoff, model.species, torch.float32, "cuda")
    potential = ConservativePotential(model)

    def call():
        out = potential.evaluate(graph, forces=True)
        torch.cuda.synchronize()
        return out

    call()
    benchmark.group = f"tiny model call, {len(atoms)} atoms"
    benchmark.extra_info.update(
        {
            "model_backend": backend,
            "n_atoms": len(atoms),
            "n_edges": int(graph.edge_index.shape[1]),
            "device": torch.cuda.get_device_name(),
        }
    )
    benchmark.pedantic(call, rounds=10, iterations=1, warmup_rounds=2)
