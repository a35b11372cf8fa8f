"""Refit a trained student's per-element energy references, and change nothing else.

``python -m training.refit CHECKPOINT DATASET OUTPUT`` fits the student's energy residuals
``E_teacher - E_student`` on the training split of ``DATASET`` to element counts, adds the fit
to the per-element references and saves the result as ``OUTPUT.pt`` + ``OUTPUT.json``.

Why: a stage that trains on something other than energies (the structure term, a force-only
stage) leaves a constant energy offset per molecule. An offset per element is a constant for
any fixed composition, so the refit changes no force, stress or trajectory (tested), only the
energies, and it is fitted on training frames, never on the held-out ones it is judged on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ase_distill.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from training.generate import read_dataset
from training.train import prepare, refit_energy_reference, split_frames

#: Card fields that ``save_checkpoint`` writes from the model itself.
_DERIVED = ("format", "architecture", "species", "cutoff", "units", "parameters", "sha256")


class RefitError(ValueError):
    """Bad input for a refit: no training frames, or an output that already exists."""


def refit_checkpoint(
    checkpoint: str | Path, dataset: str | Path, output: str | Path, max_frames: int = 3000
) -> dict[str, float]:
    """Refit ``checkpoint``'s references on ``dataset``'s training split; save to ``output``.

    Returns:
        The shift per element symbol (eV), also recorded in the card (``reference_refit``).

    Raises:
        RefitError: the dataset has no training frames, or ``output`` exists (a finished
            result is never overwritten).
    """
    weights, card_path = checkpoint_paths(output)
    if weights.exists() or card_path.exists():
        raise RefitError(f"{weights} or {card_path} exists; choose another OUTPUT or delete it.")
    model, card = load_checkpoint(checkpoint)
    frames, _ = split_frames(read_dataset(dataset), max_force=0)
    if not frames.get("train"):
        raise RefitError(f"{dataset} has no frames of split 'train' to fit the references on.")
    samples = prepare(frames["train"], model.config.cutoff, tuple(model.config.species))
    shift = refit_energy_reference(model, samples, max_samples=max_frames)
    from ase.data import chemical_symbols

    by_symbol = {chemical_symbols[z]: round(e, 8) for z, e in shift.items()}
    kept = {k: v for k, v in card.items() if k not in _DERIVED and k != "weights_file"}
    kept["name"] = weights.name[: -len(".pt")]
    kept["reference_refit"] = {
        "from": str(checkpoint),
        "dataset": str(dataset),
        "frames": min(len(samples), max_frames),
        "shift_eV": by_symbol,
    }
    save_checkpoint(model, output, kept)
    return by_symbol


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="student checkpoint (PATH.pt with PATH.json beside it)")
    p.add_argument("dataset", help="labelled dataset whose 'train' split the fit uses")
    p.add_argument("output", help="new checkpoint path (PATH.pt); never overwritten")
    p.add_argument("--max-frames", type=int, default=3000, help="frames fitted (random subset)")
    args = p.parse_args(argv)
    try:
        shift = refit_checkpoint(args.checkpoint, args.dataset, args.output, args.max_frames)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"references shifted by {shift} (eV per atom); saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
