"""The shared physics checks, applied to every size config (random weights) and shipped student."""

import pytest

from ase_distill import testing as T
from ase_distill.registry import STUDENTS, load_student, shipped_students


def test_param_counts_match_seed_family():
    # seed: original 427K, tiny 77K, ultra-tiny 21K; we allow +-10 %
    from ase_distill import SIZES, StudentModel

    target = {"original": 427_000, "tiny": 77_000, "ultra-tiny": 21_000}
    for name, config in SIZES.items():
        n = StudentModel(config).count_parameters()
        assert abs(n - target[name]) <= 0.1 * target[name], (name, n)


def test_fd_forces_molecule(random_student):
    T.check_finite_difference_forces(random_student, T.random_molecule(random_student, 6, 0))


def test_fd_forces_and_stress_periodic(random_student):
    crystal = T.random_crystal(random_student, 3, 0)
    T.check_finite_difference_forces(random_student, crystal)
    T.check_finite_difference_stress(random_student, crystal)


def test_invariances(random_student):
    T.check_invariances(random_student, T.random_molecule(random_student, 7, 1), seed=1)
    T.check_invariances(random_student, T.random_crystal(random_student, 3, 1), seed=2)


def test_smooth_cutoff(random_student):
    T.check_smooth_cutoff(random_student)


def test_fragments_add_up(random_student):
    a = T.random_molecule(random_student, 5, 2)
    b = T.random_molecule(random_student, 4, 3)
    T.check_fragments_add_up(random_student, a, b)


def test_supercell_is_extensive(random_student):
    T.check_supercell_extensive(random_student, T.random_crystal(random_student, 3, 4))


def test_batch_equals_single(random_student):
    structures = [
        T.random_molecule(random_student, 6, 5),
        T.random_crystal(random_student, 3, 5),
        T.random_molecule(random_student, 3, 6),
    ]
    T.check_batch_equals_single(random_student, structures)


def test_checks_catch_a_hard_cutoff(monkeypatch, random_student):
    """The smoothness check can fail: a hard step cutoff must be caught."""
    import ase_distill.model as model_module

    monkeypatch.setattr(model_module, "cosine_cutoff", lambda r, rc: (r < rc).to(r.dtype) * 1.0)
    with pytest.raises(AssertionError, match="cutoff"):
        T.check_smooth_cutoff(random_student)


def test_checks_catch_non_conservative_forces(monkeypatch, random_student):
    """The finite-difference check can fail: perturbed forces must be caught."""
    real = T.evaluate

    def wrong(model, structures, stress=False):
        out = real(model, structures, stress)
        out["forces"] = out["forces"] * 1.01
        return out

    monkeypatch.setattr(T, "evaluate", wrong)
    with pytest.raises(AssertionError, match="finite differences"):
        T.check_finite_difference_forces(random_student, T.random_molecule(random_student, 4))


@pytest.mark.parametrize("name", list(STUDENTS))
def test_shipped_students_pass_all_checks(name):
    assert name in shipped_students(), f"the registry promises {name!r}; its files are missing"
    model, card = load_student(name)
    assert card["sha256"]
    assert card["teacher"]["name"] and card["metrics"]
    assert not card["teacher"]["name"].startswith("orb") or "orb" in card["provenance"].lower()
    T.run_all_checks(model.double())


def test_a_deepened_student_starts_where_the_shallower_one_ended():
    import torch

    from ase_distill.model import deepen

    shallow = T.randomize_readout(load_student("water-tiny")[0].double())
    box = T.random_crystal(shallow, 3, 4)
    before = T.model_fingerprint(shallow)
    deeper = deepen(shallow, shallow.config.interactions + 1)
    T.check_model_unchanged(before, shallow)
    assert deeper.config.interactions == shallow.config.interactions + 1
    a, b = T.evaluate(shallow, box, stress=True), T.evaluate(deeper, box, stress=True)
    for key in ("energy", "forces", "stress"):  # identical up to float64 summation order
        assert abs(a[key] - b[key]).max() < 1e-10, key
    # the new block learns: its zeroed last layers get gradients at once
    from ase_distill.graph import atoms_to_graph
    from ase_distill.model import ConservativePotential

    graph = atoms_to_graph(box, deeper.cutoff, deeper.species, dtype=torch.float64)
    ConservativePotential(deeper).evaluate(graph, forces=False)["energy"].sum().backward()
    k = shallow.config.interactions
    for name in (f"messages.{k}.phi.2.weight", f"updates.{k}.mlp.2.weight"):
        grad = deeper.get_parameter(name).grad
        assert grad is not None and grad.abs().max() > 0, name
    with pytest.raises(ValueError, match="more than the student's"):
        deepen(shallow, shallow.config.interactions)
