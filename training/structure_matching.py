"""A loss on the liquid's structure: the teacher's RDFs matched by trajectory reweighting.

Force and energy matching fit each frame; the structure a student's MD settles into depends on
how it ranks whole ensembles, and a student can fit every frame to well under 1 meV/atom and
still over-order a liquid (README, water section). This term fits the structure itself, the way
DiffTRe does (Thaler and Zavadlav, Nat. Commun. 12, 6884, 2021): the student runs NVT of a few
boxes, and the partial RDFs of its frames, reweighted to the current parameters,

    g_theta(r) = sum_i w_i g_i(r),   w_i = softmax_i(-beta [U_theta(x_i) - U_sampled(x_i)]),

are pulled towards the teacher's. The frames do not move when theta changes (no gradient
through the dynamics): only their weights do, through the student's energies, so the term
costs one energy backward over the frames. Each epoch samples afresh with the current student
(a chain per box, continued from its last frame); while the weights drift the estimate holds
only as long as the effective sample size stays high, so the term stops for the rest of an
epoch once it falls below ``min_ess`` of the frames.

RDFs here are per-frame histograms of minimum-image pair distances, normalised as
``md_validation.metrics.rdf`` (MDAnalysis) normalises them; target and student use this same
code, so their difference is what MD would show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.geometry import get_distances
from ase.md.langevin import Langevin
from tqdm import tqdm

from ase_distill.graph import batch_graphs, structure_graph
from ase_distill.model import ConservativePotential

#: Element pairs whose partial RDFs are matched (water: O-O, O-H, H-H).
PAIRS = ((8, 8), (8, 1), (1, 1))


class StructureMatchingError(ValueError):
    """Bad input for the structure term: a target or start box that cannot be used."""


@dataclass(frozen=True)
class RdfGrid:
    """Histogram bins of the partial RDFs (the validation's: 120 bins up to half the box)."""

    r_max: float
    bins: int = 120

    @property
    def edges(self) -> np.ndarray:
        """Bin edges (A)."""
        return np.linspace(0.0, self.r_max, self.bins + 1)


def frame_rdfs(atoms: Atoms, grid: RdfGrid, intermolecular: bool = False) -> np.ndarray:
    """Partial RDFs ``g_ab(r)`` of one periodic frame, shape ``(len(PAIRS), bins)``.

    Args:
        atoms: the frame.
        grid: the bins.
        intermolecular: count only pairs in different molecules (bond graph of
            ``md_validation.metrics.molecule_index``), normalised as all pairs are. The
            intramolecular peaks (O-H at 0.97 A, height ~28) are a matter of force matching, and
            at 0.04 A bins their sampling noise alone outweighs the liquid's structure.
    """
    _, dist = get_distances(atoms.positions, cell=atoms.cell, pbc=True)
    if intermolecular:
        from md_validation.metrics import molecule_index

        # bonds up to 1.35 x the covalent radii: a hot O-H bond (1.2 A) stays in its molecule,
        # a hydrogen bond (O...H from 1.5 A) never joins two
        mol = molecule_index(atoms, mult=1.35)
        dist = np.where(mol[:, None] == mol[None, :], np.inf, dist)
    numbers, volume, edges = atoms.numbers, atoms.get_volume(), grid.edges
    shells = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    out = np.zeros((len(PAIRS), grid.bins))
    for k, (a, b) in enumerate(PAIRS):
        ia, ib = np.flatnonzero(numbers == a), np.flatnonzero(numbers == b)
        d = dist[np.ix_(ia, ib)]  # inf: an excluded pair, outside every bin
        pairs = len(ia) * len(ib)
        if a == b:  # self-pairs excluded, as MDAnalysis's exclusion block does
            d = d[~np.eye(len(ia), dtype=bool)]
            pairs -= len(ia)
        counts = np.histogram(d.ravel(), edges)[0]
        out[k] = counts * volume / (pairs * shells)
    return out


def read_frames(spec: str) -> list[Atoms]:
    """Frames of ``PATH[@START:STOP][+PATH...]``, as ``md_validation.compare_rdf`` reads them.

    Raises:
        StructureMatchingError: a missing file, or no periodic frames.
    """
    from md_validation.compare_rdf import read_frames as read_spec

    try:
        return read_spec(spec)
    except ValueError as err:
        raise StructureMatchingError(f"{err} Give PATH[@START:STOP][+PATH...].") from err


def target_rdfs(frames: list[Atoms], grid: RdfGrid, intermolecular: bool = False) -> np.ndarray:
    """The mean partial RDFs of the teacher's frames."""
    return np.mean([frame_rdfs(f, grid, intermolecular) for f in frames], axis=0)


def common_grid(frames: list[Atoms]) -> RdfGrid:
    """The validation's grid: up to 6 A or half the shortest cell length, whichever is less."""
    shortest = min(min(f.cell.lengths()) for f in frames)
    return RdfGrid(r_max=min(6.0, 0.5 * shortest - 1e-6))


def sample_chain(
    model: torch.nn.Module,
    start: Atoms,
    temperature: float,
    equilibrate_steps: int,
    sample_steps: int,
    interval: int,
    seed: int,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> list[Atoms]:
    """NVT (Langevin, 0.5 fs) of ``start`` with a float32 copy of ``model`` (the calculator's).

    Frames every ``interval`` steps after ``equilibrate_steps``; momenta are kept, so a chain
    continues from its last frame. ``start`` and ``model`` are not changed. ``device`` is the
    training device: the chains are the term's cost (~80 ms per step of 96 atoms on a core),
    and long chains are what a GPU run of the term is for.
    """
    from ase_distill.calculator import DistilledCalculator

    atoms = start.copy()
    atoms.calc = DistilledCalculator(model, dtype=torch.float32, compile=False, device=device)
    if not atoms.has("momenta") or not np.any(atoms.get_momenta()):
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(
            atoms, temperature_K=temperature, rng=np.random.default_rng(seed)
        )
    dyn = Langevin(
        atoms,
        0.5 * units.fs,
        temperature_K=temperature,
        friction=0.01,
        rng=np.random.default_rng(seed),
    )
    frames: list[Atoms] = []
    bar = tqdm(
        total=equilibrate_steps + sample_steps,
        desc="structure sample",
        disable=not progress,
        leave=False,
    )
    for step in range(equilibrate_steps + sample_steps):
        dyn.run(1)
        bar.update(1)
        if step >= equilibrate_steps and (step - equilibrate_steps + 1) % interval == 0:
            frame = atoms.copy()
            frame.calc = None
            frames.append(frame)
    bar.close()
    return frames


class ReweightedEnsemble:
    """The student's sampled frames, their RDFs and energies at sampling: the term's data.

    Args:
        model: the student at sampling time (its energies become ``U_sampled``).
        frames: the sampled frames (one or several boxes of the same state point).
        grid: RDF bins.
        temperature: of the sampling (K): sets ``beta``.
        dtype: training dtype.
        device: training device.
    """

    def __init__(
        self, model, frames, grid, temperature, dtype, device, intermolecular: bool = False
    ) -> None:
        self.beta = 1.0 / (units.kB * temperature)
        self.grid, self.dtype, self.device = grid, dtype, device
        self.rdfs = torch.tensor(
            np.stack([frame_rdfs(f, grid, intermolecular) for f in frames]),
            dtype=dtype,
            device=device,
        )
        self.graphs = [
            structure_graph(f, model.cutoff, model.species, min_distance=None) for f in frames
        ]
        with torch.no_grad():
            everything = np.arange(len(frames))
            self.sampled_energy = self.energies(model, everything).detach()

    def __len__(self) -> int:
        return len(self.graphs)

    def energies(self, model, indices: np.ndarray) -> torch.Tensor:
        """Energies of frames ``indices`` under ``model`` (differentiable in its parameters)."""
        graph = batch_graphs([self.graphs[k] for k in indices], self.dtype, self.device)
        return ConservativePotential(model).evaluate(graph, forces=False)["energy"]

    def weights(
        self, model, indices: np.ndarray, local: bool = False
    ) -> tuple[torch.Tensor, float]:
        """Weights of frames ``indices`` (sum 1 over them), differentiable, and their ESS.

        Args:
            model: the student now.
            indices: the frames.
            local: take the current energies, not the sampled ones, as the reference. The
                weights are then uniform, with the gradient reweighting would have at the
                sampling point; the returned ESS still measures how far the energies drifted
                since sampling (a diagnostic of stale frames).
        """
        energy = self.energies(model, indices)
        drift = (energy - self.sampled_energy[indices]).detach()
        reference = energy.detach() if local else self.sampled_energy[indices]
        w = torch.softmax(-self.beta * (energy - reference), dim=0)
        stale = torch.softmax(-self.beta * drift, dim=0)
        return w, float(1.0 / (len(w) * torch.sum(stale**2)))


def structure_loss(
    model,
    ensemble: ReweightedEnsemble,
    target: torch.Tensor,
    indices: np.ndarray,
    local: bool = False,
) -> tuple[torch.Tensor, float, float]:
    """Mean squared difference of the reweighted and the target partial RDFs.

    Args:
        model: the student being trained.
        ensemble: its sampled frames.
        target: the teacher's partial RDFs, ``(len(PAIRS), bins)``.
        indices: the frames of this step (a random draw keeps a step's cost bounded; the
            weights are normalised over the draw, as a mini-batch estimate).
        local: the gradient at the current parameters (see :meth:`ReweightedEnsemble.weights`).

    Returns:
        The loss (differentiable), the effective sample size of the draw as a fraction of it
        (``1 / (n sum w_i^2)``), and the reweighted O-O g(r) over the first shell (for logs).
    """
    w, ess = ensemble.weights(model, indices, local)
    g = torch.einsum("i,ibr->br", w, ensemble.rdfs[indices])
    loss = torch.mean((g - target) ** 2)
    return loss, ess, first_shell(g.detach()[0].cpu().numpy(), ensemble.grid)


def first_shell(g_oo: np.ndarray, grid: RdfGrid) -> float:
    """Mean O-O g(r) over the first shell (``md_validation.compare_rdf``'s measure of order)."""
    from md_validation.compare_rdf import SHELL_A

    edges = grid.edges
    x = 0.5 * (edges[1:] + edges[:-1])
    return float(g_oo[(x > SHELL_A[0]) & (x < SHELL_A[1])].mean())


class StructureTerm:
    """The structure term of a training run: target, NVT chains, the epoch's ensemble.

    Each epoch :meth:`resample` runs every box's chain on from its last frame with the current
    student; the chains' last frames are written to ``chain_file`` (atomically), so a resumed
    run continues them. :meth:`step` gives a step's weighted loss, or ``None`` once the weights
    have drifted (effective sample size below ``config.structure_min_ess``) until the next
    resampling.

    Args:
        config: the run's ``TrainConfig`` (``structure_*`` keys).
        chain_file: where the chains' last frames are kept.
        dtype: training dtype.
        device: training device.
    """

    def __init__(self, config, chain_file: Path, dtype: torch.dtype, device) -> None:
        if not config.structure_target or not config.structure_boxes:
            raise StructureMatchingError(
                "train.structure_weight > 0 needs train.structure_target (the teacher's NVT "
                "frames, PATH[@START:STOP][+...]) and train.structure_boxes (one start frame "
                "per box of the same state point, e.g. data/x/dataset.xyz@-1)."
            )
        self.config, self.chain_file = config, chain_file
        self.dtype, self.device = dtype, device
        teacher = read_frames(config.structure_target)
        self.starts = read_frames(
            str(chain_file) if chain_file.is_file() else config.structure_boxes
        )
        self.grid = common_grid(teacher + self.starts)
        target = target_rdfs(teacher, self.grid, config.structure_intermolecular)
        self.target = torch.tensor(target, dtype=dtype, device=device)
        self.ensemble: ReweightedEnsemble | None = None
        self.active = False
        self.log: dict[str, list[float]] = {}

    def resample(self, model, epoch: int, progress: bool) -> None:
        """New frames from every chain with ``model`` (its copy; ``model`` is not changed)."""
        c = self.config
        steps = lambda ps: int(round(ps * 2000))  # noqa: E731 (0.5 fs steps)
        frames, ends = [], []
        for k, start in enumerate(self.starts):
            chain = sample_chain(
                model,
                start,
                c.structure_temperature,
                steps(c.structure_equilibrate_ps),
                steps(c.structure_sample_ps),
                c.structure_interval,
                seed=c.seed * 1000 + epoch * 10 + k,
                progress=progress,
                device=self.device,
            )
            frames += chain
            ends.append(chain[-1])
        _atomic_write_frames(self.chain_file, ends)
        self.starts = ends
        self.ensemble = ReweightedEnsemble(
            model,
            frames,
            self.grid,
            c.structure_temperature,
            self.dtype,
            self.device,
            c.structure_intermolecular,
        )
        sampled = first_shell(self.ensemble.rdfs[:, 0].mean(0).cpu().numpy(), self.grid)
        self.log = {"sampled_oo_shell": [sampled], "loss": [], "ess": [], "reweighted_oo_shell": []}
        self.active = True

    def step(self, model, rng: np.random.Generator) -> torch.Tensor | None:
        """This step's weighted term, or ``None`` while paused."""
        if not self.active or self.ensemble is None:
            return None
        n = len(self.ensemble)
        draw = rng.choice(n, size=min(self.config.structure_frames, n), replace=False)
        local = self.config.structure_estimator == "local"
        loss, ess, shell = structure_loss(model, self.ensemble, self.target, np.sort(draw), local)
        self.log["loss"].append(float(loss.detach()))
        self.log["ess"].append(ess)
        self.log["reweighted_oo_shell"].append(shell)
        if not local and ess < self.config.structure_min_ess:
            self.active = False  # the estimate no longer holds: wait for new frames
            return None
        return self.config.structure_weight * loss

    def row(self) -> dict[str, float]:
        """The epoch's numbers for the metrics row."""
        out = {f"structure_{k}": float(np.mean(v)) for k, v in self.log.items() if v}
        target_shell = first_shell(self.target[0].cpu().numpy(), self.grid)
        return {
            **out,
            "structure_target_oo_shell": target_shell,
            "structure_steps": len(self.log.get("loss", [])),
        }


def _atomic_write_frames(path: Path, frames: list[Atoms]) -> None:
    """Write ``frames`` (extxyz, momenta kept) through a temporary file and a rename."""
    from ase.io import write

    tmp = path.with_name(path.name + ".tmp")
    write(tmp, frames, format="extxyz")
    tmp.replace(path)
