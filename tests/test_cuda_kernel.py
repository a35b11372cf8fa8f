"""The custom CUDA segment-sum kernel: compile checks on any machine, correctness on a GPU."""

import glob
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch

from ase_distill.ops import csr_offsets, cuda_segment, segment_sum

CSRC = Path(cuda_segment.__file__).with_name("csrc")
TESTS = Path(__file__).parent
NVCC = shutil.which("nvcc")
GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA device (run on a GPU machine)")


def _cuda_include() -> str | None:
    candidates = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"] + sorted(
        glob.glob("/usr/local/cuda-*")
    )
    for root in candidates:
        if root and Path(root, "include", "cuda_runtime_api.h").is_file():
            return str(Path(root, "include"))
    return None


@pytest.mark.skipif(NVCC is None, reason="nvcc not found: CUDA source compile check skipped")
def test_nvcc_compiles_kernel(tmp_path):
    cmd = [
        NVCC,
        "-c",
        "-std=c++17",
        "-O3",
        "-Werror",
        "all-warnings",
        "-gencode",
        "arch=compute_80,code=sm_80",
        "-gencode",
        "arch=compute_90,code=sm_90",
        # the flags torch.utils.cpp_extension adds: no implicit __half / bfloat16 conversions
        # (the first GPU build failed on them while this check, without them, passed)
        "-D__CUDA_NO_HALF_OPERATORS__",
        "-D__CUDA_NO_HALF_CONVERSIONS__",
        "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-D__CUDA_NO_HALF2_OPERATORS__",
        "-I",
        str(CSRC),
        str(CSRC / "segment_sum_kernel.cu"),
        "-o",
        str(tmp_path / "k.o"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")
def test_binding_compiles_against_torch_headers():
    include = _cuda_include()
    if include is None:
        pytest.skip("CUDA runtime headers not found: binding syntax check skipped")
    from torch.utils.cpp_extension import include_paths

    cmd = [
        "g++",
        "-std=c++20",
        "-fsyntax-only",
        "-DTORCH_EXTENSION_NAME=check",
        "-I",
        str(CSRC),
        "-I",
        include,
        "-I",
        sysconfig.get_paths()["include"],
    ]
    cmd += [f"-I{p}" for p in include_paths()]
    done = subprocess.run(
        cmd + [str(CSRC / "segment_sum_binding.cpp")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")
def test_host_indexing_logic_executes_on_cpu(tmp_path):
    exe = tmp_path / "host_test"
    build = subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-O1",
            "-Wall",
            "-Werror",
            "-I",
            str(CSRC),
            str(TESTS / "csrc" / "test_segment_sum_host.cpp"),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0 and "1 passed, 0 failed" in run.stdout, run.stdout


def test_auto_backend_on_cpu_tensors_is_torch(monkeypatch):
    """CPU tensors use the torch backend under "auto" (any machine), and "cuda" is refused."""
    from ase_distill.ops import ENV_VAR, active_backend

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert active_backend("cpu") == "torch"
    out = segment_sum(torch.ones(3, 2), torch.tensor([0, 0, 1]), 2, offsets=torch.tensor([0, 2, 3]))
    assert out.tolist() == [[2.0, 2.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        active_backend("cpu", "cuda")
    if not GPU:
        assert cuda_segment.is_available() is False


def test_offsets_validation_messages():
    with pytest.raises(ValueError, match="not sorted by receiver"):
        cuda_segment.check_offsets(torch.tensor([0, 3, 2, 4]), 4)
    with pytest.raises(ValueError, match="end at the number of edges"):
        cuda_segment.check_offsets(torch.tensor([0, 1, 2]), 5)


# --- GPU: correctness, gradients, determinism ---
def _random_graph(n_segments, n_edges, width, dtype, empty_fraction=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    active = torch.rand(n_segments, generator=g) > empty_fraction
    choices = torch.nonzero(active).flatten()
    index = choices[torch.randint(len(choices), (n_edges,), generator=g)].sort().values
    src = torch.randn(n_edges, width, generator=g, dtype=dtype)
    return src.cuda(), index.cuda(), csr_offsets(index, n_segments).cuda()


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("width", [1, 16, 64, 129])
def test_kernel_matches_torch(dtype, width):
    src, index, offsets = _random_graph(500, 5000, width, dtype)
    out = cuda_segment.segment_sum_csr(src, index, offsets, 500)
    ref = torch.zeros(500, width, dtype=dtype, device="cuda").index_add_(0, index, src)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)


@needs_gpu
def test_one_huge_segment_and_empty_ones():
    index = torch.cat([torch.zeros(1, dtype=torch.long), torch.full((200_000,), 3)]).cuda()
    src = torch.randn(len(index), 8, dtype=torch.float64, device="cuda")
    offsets = csr_offsets(index, 6)
    out = cuda_segment.segment_sum_csr(src, index, offsets, 6)
    torch.testing.assert_close(out[3], src[1:].sum(0))
    assert torch.all(out[[1, 2, 4, 5]] == 0)


@needs_gpu
def test_unsorted_rejected():
    with pytest.raises(ValueError, match="sorted"):
        csr_offsets(torch.tensor([2, 0, 1], device="cuda"), 3)
    with pytest.raises(ValueError, match="not sorted by receiver"):
        cuda_segment.segment_sum_csr(
            torch.ones(4, 2, device="cuda"),
            torch.tensor([0, 1, 1, 2], device="cuda"),
            torch.tensor([0, 3, 2, 4], device="cuda"),
            3,
        )


@needs_gpu
def test_gradcheck_twice_differentiable():
    src, index, offsets = _random_graph(20, 80, 3, torch.float64)
    src.requires_grad_(True)
    fn = lambda x: cuda_segment.segment_sum_csr(x, index, offsets, 20)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (src,))
    assert torch.autograd.gradgradcheck(fn, (src,))


@needs_gpu
def test_bitwise_deterministic():
    src, index, offsets = _random_graph(10_000, 1_000_000, 64, torch.float32)
    first = cuda_segment.segment_sum_csr(src, index, offsets, 10_000)
    for _ in range(5):
        assert torch.equal(cuda_segment.segment_sum_csr(src, index, offsets, 10_000), first)


@needs_gpu
def test_student_forward_backward_equals_torch_backend(monkeypatch):
    from ase.build import molecule

    from ase_distill import ConservativePotential, StudentModel, atoms_to_graph, size_config
    from ase_distill.ops import ENV_VAR

    torch.manual_seed(0)
    model = StudentModel(size_config("tiny")).double().cuda()
    graph = atoms_to_graph(
        [molecule("C6H6"), molecule("CH3CH2OH")], 5.0, model.species, device="cuda"
    )
    results = {}
    for backend in ("torch", "cuda"):
        monkeypatch.setenv(ENV_VAR, backend)
        model.zero_grad()
        out = ConservativePotential(model).evaluate(graph, forces=True, create_graph=True)
        (out["forces"] ** 2).sum().backward()
        results[backend] = (
            out["energy"].detach(),
            out["forces"].detach(),
            # the readout's last bias does not move forces: its grad stays None
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        )
    torch.testing.assert_close(results["cuda"][0], results["torch"][0])
    torch.testing.assert_close(results["cuda"][1], results["torch"][1])
    assert sum(g is not None for g in results["cuda"][2]) > len(results["cuda"][2]) - 3
    for a, b in zip(results["cuda"][2], results["torch"][2]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


# --- zero edges (isolated atoms): the binding once reshaped a 0-element tensor to (0, -1) ---
def _isolated_atoms():
    from ase import Atoms

    return Atoms("HO", positions=[[0, 0, 0], [0, 0, 20.0]])  # 20 A apart: no edge


def test_zero_edge_student_on_cpu():
    from ase_distill import ConservativePotential, StudentModel, atoms_to_graph, size_config
    from ase_distill.testing import randomize_readout

    model = randomize_readout(StudentModel(size_config("tiny")).double())
    graph = atoms_to_graph(_isolated_atoms(), 5.0, model.species)
    assert graph.edge_index.shape[1] == 0
    out = ConservativePotential(model).evaluate(graph, forces=True)
    atoms = _isolated_atoms()
    alone = [
        ConservativePotential(model).evaluate(atoms_to_graph(a, 5.0, model.species))["energy"]
        for a in (atoms[:1], atoms[1:])
    ]
    torch.testing.assert_close(out["energy"], alone[0] + alone[1], rtol=0, atol=1e-12)
    assert torch.all(out["forces"] == 0)


@needs_gpu
@pytest.mark.parametrize("shape", [(0,), (0, 8), (0, 3, 8)])
def test_zero_edges_kernel(shape):
    index = torch.zeros(0, dtype=torch.long, device="cuda")
    offsets = csr_offsets(index, 4)
    src = torch.zeros(shape, dtype=torch.float64, device="cuda", requires_grad=True)
    out = cuda_segment.segment_sum_csr(src, index, offsets, 4)
    assert out.shape == (4,) + shape[1:] and torch.all(out == 0)
    out.sum().backward()
    assert src.grad is not None and src.grad.shape == src.shape
    # the C++ binding itself, below the Python guard
    stream = torch.cuda.current_stream().cuda_stream
    raw = cuda_segment._extension().segment_sum_csr(src.detach(), offsets, stream)
    assert raw.shape == (4,) + shape[1:] and torch.all(raw == 0)


@needs_gpu
def test_zero_edge_student_on_gpu(monkeypatch):
    from ase_distill import ConservativePotential, StudentModel, atoms_to_graph, size_config
    from ase_distill.ops import ENV_VAR

    monkeypatch.setenv(ENV_VAR, "cuda")
    model = StudentModel(size_config("tiny")).double().cuda()
    graph = atoms_to_graph(_isolated_atoms(), 5.0, model.species, device="cuda")
    out = ConservativePotential(model).evaluate(graph, forces=True, create_graph=True)
    out["energy"].sum().backward()
    assert torch.all(out["forces"] == 0)
