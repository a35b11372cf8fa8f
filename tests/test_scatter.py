"""The one scatter interface: backends, selection and double differentiability."""

import pytest
import torch

from ase_distill.ops import ENV_VAR, active_backend, csr_offsets, segment_sum


def test_matches_loop():
    torch.manual_seed(0)
    index = torch.tensor([0, 0, 2, 2, 2, 4])
    src = torch.randn(6, 5, dtype=torch.float64)
    out = segment_sum(src, index, 6)
    ref = torch.zeros(6, 5, dtype=torch.float64)
    for e, s in enumerate(index.tolist()):
        ref[s] += src[e]
    assert torch.equal(out, ref)  # empty segments 1, 3, 5 stay zero


def test_twice_differentiable():
    index = torch.tensor([0, 1, 1, 3])
    src = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: segment_sum(x, index, 4), (src,))
    assert torch.autograd.gradgradcheck(lambda x: segment_sum(x, index, 4) ** 2, (src,))


def test_csr_offsets_and_unsorted_rejected():
    index = torch.tensor([0, 0, 2, 2, 3])
    assert csr_offsets(index, 5).tolist() == [0, 2, 2, 4, 5, 5]
    with pytest.raises(ValueError, match="sorted"):
        csr_offsets(torch.tensor([1, 0]), 2)


def test_backend_selection(monkeypatch):
    assert active_backend("cpu") == "torch"
    monkeypatch.setenv(ENV_VAR, "bogus")
    with pytest.raises(ValueError, match="Unknown scatter backend 'bogus'"):
        active_backend("cpu")
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        active_backend("cpu")


def test_torch_scatter_backend_when_installed():
    pytest.importorskip("torch_scatter", reason="optional extra ase-distill[scatter]")
    index = torch.tensor([0, 0, 1])
    src = torch.randn(3, 2)
    torch.testing.assert_close(
        segment_sum(src, index, 2, backend="torch_scatter"), segment_sum(src, index, 2)
    )


def test_torch_scatter_missing_is_clear(monkeypatch):
    import ase_distill.ops.scatter as sc

    monkeypatch.setattr(sc, "_torch_scatter_installed", lambda: False)
    with pytest.raises(ValueError, match="torch-scatter is not installed"):
        active_backend("cpu", "torch_scatter")
