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
