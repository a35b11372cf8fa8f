"""A loss on the ensemble energy gap: how a student ranks the teacher's liquid against its own.

Force matching fits each frame, but a student can rate a whole ensemble of structures too high
or too low relative to another by a few meV/atom while every single frame is fitted to well
under 1 meV/atom. Over 96 atoms at 300 K, 3 meV/atom is ~11 kT: enough to move the student's MD
to its own, wrong, structure (README, water section: water-tiny over-orders the liquid).

The measured quantity is ``md_validation``'s ensemble energy gap, per box ``b``::

    gap_b = mean_{x in T_b} dE(x) - mean_{x in S_b} dE(x),   dE = (E_student - E_teacher) / N

with ``T_b`` the teacher's own NVT frames of box ``b`` and ``S_b`` the student's (both labelled
by the teacher). A constant offset per box cancels, so the term acts only on how the student
ranks the two ensembles. Its gradient has the direction of the relative-entropy gradient
``<dU/dtheta>_T - <dU/dtheta>_S`` (Shell, J. Chem. Phys. 129, 144108, 2008) while the gap is
positive, and it stops at zero gap instead of running on; as in relative-entropy training the
student frames must be refreshed from the new student's MD (rounds), since a student that
changes its ranking also changes where it goes.

The term is ``weight * mean_b gap_b**2`` on ``frames`` random frames of each ensemble per box and
step (energies only: no second derivatives, so it costs about one force batch of that size).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ase_distill.model import ConservativePotential


class EnsembleGapError(ValueError):
    """The ensemble-gap term was asked for but the data has no box with both ensembles."""


@dataclass(frozen=True)
class GapGroup:
    """Training-sample indices of one box's teacher-ensemble and student-ensemble frames."""

    box: str
    reference: tuple[int, ...]
    student: tuple[int, ...]


def gap_groups(frames: list[Atoms], reference_kind: str, student_kind: str) -> list[GapGroup]:
    """Boxes (frame ``seed``) holding frames of both kinds, with their frame indices.

    Raises:
        EnsembleGapError: no box has both kinds (names the kinds that are there).
    """
    by_box: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for k, frame in enumerate(frames):
        by_box[str(frame.info.get("seed"))][str(frame.info.get("kind"))].append(k)
    groups = [
        GapGroup(box, tuple(kinds[reference_kind]), tuple(kinds[student_kind]))
        for box, kinds in sorted(by_box.items())
        if kinds.get(reference_kind) and kinds.get(student_kind)
    ]
    if not groups:
        present = sorted({kind for kinds in by_box.values() for kind in kinds})
        raise EnsembleGapError(
            f"train.ensemble_gap_weight > 0 needs training frames of kind {reference_kind!r} "
            f"and {student_kind!r} from the same box (info 'seed'); the training split has "
            f"kinds {present}. Add the teacher's NVT frames and the student's own frames of a "
            "box (training/water_teacher_liquid.py, training/water_onpolicy.py), or set "
            "train.ensemble_reference_kind / train.ensemble_student_kind."
        )
    return groups


def per_atom_residuals(
    model: torch.nn.Module,
    graph,
    teacher_energy: torch.Tensor,
    n_atoms: torch.Tensor,
) -> torch.Tensor:
    """``(E_student - E_teacher) / N`` of each structure of ``graph``, differentiable."""
    out = ConservativePotential(model).evaluate(graph, forces=False)
    return (out["energy"] - teacher_energy) / n_atoms


def ensemble_gap_loss(
    model: torch.nn.Module,
    samples: list,
    groups: list[GapGroup],
    frames: int,
    rng: np.random.Generator,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, float]:
    """Mean over boxes of the squared ensemble gap on ``frames`` random frames per ensemble.

    Args:
        model: the student being trained.
        samples: the training samples (``Sample`` of :mod:`training.train`).
        groups: from :func:`gap_groups`.
        frames: frames drawn from each ensemble of each box (fewer if a box has fewer).
        rng: the draw (seeded by the trainer: runs repeat).
        dtype: the training dtype.
        device: the training device.

    Returns:
        The loss term (unweighted, eV^2/atom^2) and the mean gap in meV/atom (for logs).
    """
    from training.train import collate  # imported here: training.train imports this module

    chosen, sizes = [], []
    for group in groups:
        for indices in (group.reference, group.student):
            pick = rng.choice(len(indices), size=min(frames, len(indices)), replace=False)
            chosen.extend(samples[indices[k]] for k in pick)
            sizes.append(len(pick))
    graph, targets = collate(chosen, dtype, device)
    residual = per_atom_residuals(model, graph, targets["energy"], targets["n_atoms"])
    means = torch.stack([part.mean() for part in torch.split(residual, sizes)])
    gaps = means[0::2] - means[1::2]  # reference minus student, one per box
    return torch.mean(gaps**2), float(gaps.detach().mean()) * 1000.0
