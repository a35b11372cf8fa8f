"""MD that stays on the device: a torch cell list with a Verlet skin, and tensor steps.

Velocity Verlet (NVE) and Langevin (BAOAB) on tensors of one periodic system.

ASE's MD loop costs a host round trip per step: positions go to the CPU, the neighbour list is
rebuilt there (vesin), the graph is copied back. On a GPU that is 98 % of a step at 100,000
atoms (``benchmarks/results/gpu/``). Here positions, momenta, forces and the graph never leave
the device; the neighbour list is built on the device with a cutoff ``cutoff + skin`` and
reused until some atom has moved more than ``skin / 2`` (then no pair inside the cutoff can be
missing). Pairs between the cutoff and ``cutoff + skin`` contribute exactly zero: the students'
radial filters carry a cosine cutoff that is zero there, value and gradient.

With ``compile=True`` energy and forces are traced as one graph (``torch.func`` through
``make_fx``) and compiled by inductor; the edge list is padded to a fixed capacity so that the
compiled code is reused across rebuilds (padding edges point to an image beyond the cutoff).

>>> md = DeviceMD(water_box, "tiny", device="cuda", dtype=torch.float32)  # doctest: +SKIP
>>> md.run(1000); print(md.rebuilds, md.temperature())                    # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms, units

from ase_distill.compiled import _EnergyForces
from ase_distill.graph import check_atoms
from ase_distill.model import ConservativePotential, StudentModel
from ase_distill.neighbors import check_cell

#: Candidate pairs per chunk of the cell-list search (bounds its memory: ~40 bytes each).
CANDIDATES_PER_CHUNK = 2**24


class DeviceMDError(ValueError):
    """The system cannot run on the device MD path (the message says what to do instead)."""


def perpendicular_widths(cell: torch.Tensor) -> torch.Tensor:
    """Distances between opposite faces of ``cell`` (rows are cell vectors), ``(3,)``."""
    return 1.0 / torch.linalg.inv(cell).norm(dim=0)


def cell_list_pairs(
    positions: torch.Tensor, cell: torch.Tensor, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full neighbour list of a periodic cell on ``positions``' device, sorted by receiver.

    Atoms are binned in fractional coordinates into bins at least ``cutoff`` wide (measured
    between faces, so triclinic cells work); every pair within ``cutoff`` lies in one of the
    27 bins around the receiver. Positions must be wrapped into the cell.

    Args:
        positions: ``(N, 3)`` positions inside the cell.
        cell: ``(3, 3)`` cell, rows are vectors, periodic in all three directions.
        cutoff: radius; every face-to-face width must be at least this.

    Returns:
        ``edge_index (2, E)`` (receiver, sender) and integer ``shifts (E, 3)``: the sender image
        is ``positions[j] + shifts @ cell``.

    Raises:
        DeviceMDError: a cell width below ``cutoff``.
    """
    widths = perpendicular_widths(cell.double())
    if bool((widths < cutoff).any()):
        raise DeviceMDError(
            f"The cell's face-to-face widths {widths.tolist()} are below the neighbour-list "
            f"radius {cutoff:.2f} A; use a larger supercell (atoms.repeat) or ASE's MD loop."
        )
    device, n = positions.device, positions.shape[0]
    nbins = torch.clamp((widths / cutoff).floor().long(), min=1).to(device)
    frac = (positions.double() @ torch.linalg.inv(cell.double())).clamp(0.0, 1.0 - 1e-12)
    coords = torch.minimum((frac * nbins).long(), nbins - 1)  # (N, 3) bin of each atom
    bin_id = (coords[:, 0] * nbins[1] + coords[:, 1]) * nbins[2] + coords[:, 2]
    table = _bin_table(bin_id, int(nbins.prod()))
    steps = torch.tensor(
        [[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], device=device
    )
    per_atom = 27 * table.shape[1]
    chunk = max(1, CANDIDATES_PER_CHUNK // per_atom)
    grid = (coords, nbins, table, steps)
    parts = [
        _pairs_of(positions, cell, grid, start, min(start + chunk, n), cutoff)
        for start in range(0, n, chunk)
    ]
    edge_index = torch.cat([p[0] for p in parts], 1)
    return edge_index, torch.cat([p[1] for p in parts])


def _bin_table(bin_id: torch.Tensor, n_bins: int) -> torch.Tensor:
    """``(n_bins, max_occupancy)`` atom indices of each bin, padded with -1."""
    order = torch.argsort(bin_id)
    sorted_bins = bin_id[order]
    counts = torch.bincount(bin_id, minlength=n_bins)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(bin_id.shape[0], device=bin_id.device) - starts[sorted_bins]
    table = torch.full((n_bins, int(counts.max())), -1, dtype=torch.long, device=bin_id.device)
    table[sorted_bins, slot] = order
    return table


def _pairs_of(positions, cell, grid, start: int, stop: int, cutoff: float):
    """Pairs whose receivers are atoms ``start..stop-1`` (see :func:`cell_list_pairs`)."""
    coords, nbins, table, steps = grid
    receivers = torch.arange(start, stop, device=positions.device)
    unwrapped = coords[start:stop, None, :] + steps[None]  # (n, 27, 3) neighbouring bins
    shift = torch.div(unwrapped, nbins, rounding_mode="floor")  # image of the wrapped bin
    wrapped = unwrapped - shift * nbins
    bins = (wrapped[..., 0] * nbins[1] + wrapped[..., 1]) * nbins[2] + wrapped[..., 2]
    senders = table[bins]  # (n, 27, occupancy)
    shift = shift[:, :, None, :].expand(-1, -1, senders.shape[2], -1)
    i = receivers[:, None, None].expand_as(senders)
    vec = positions[senders.clamp(min=0)] - positions[i] + shift.to(positions.dtype) @ cell
    d2 = (vec * vec).sum(-1)
    self_image = (senders == i) & (shift == 0).all(-1)
    keep = (senders >= 0) & ~self_image & (d2 < cutoff * cutoff)
    return torch.stack([i[keep], senders[keep]]), shift[keep]


class DeviceMD:
    """NVE (velocity Verlet) or Langevin (BAOAB) MD of one periodic system on one device.

    Args:
        atoms: a fully periodic structure (copied; the input stays untouched). Momenta are
            taken from it (set them with MaxwellBoltzmannDistribution first).
        model: a student name, a checkpoint path or a :class:`StudentModel`.
        device: torch device (the point is a GPU; CPU works and is tested).
        dtype: float32 (default here: MD at scale) or float64.
        timestep_fs: time step.
        skin: Verlet skin in Angstrom: the list holds pairs up to ``cutoff + skin`` and is
            rebuilt once an atom has moved ``skin / 2``.
        compile: trace energy + forces and compile them with inductor (padded edge list).
        ensemble: ``nve`` or ``langevin``.
        temperature_K: Langevin target.
        friction_per_fs: Langevin friction.
        seed: Langevin noise seed.
    """

    def __init__(
        self,
        atoms: Atoms,
        model: str | StudentModel = "tiny",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        timestep_fs: float = 0.5,
        skin: float = 0.5,
        compile: bool = False,
        ensemble: str = "nve",
        temperature_K: float = 300.0,
        friction_per_fs: float = 0.01,
        seed: int = 0,
    ) -> None:
        from ase_distill.calculator import DistilledCalculator

        _check_settings(atoms, timestep_fs, skin, ensemble)
        calc = DistilledCalculator(model, device=device, dtype=dtype, compile=False)
        if calc.model is None:
            raise DeviceMDError("DeviceMD needs an eager student, not an exported file.")
        self.model, self.device, self.dtype = calc.model, calc.device, dtype
        self.model.edge_chunk = 0  # all edges at once: the device path is for speed
        check_atoms(atoms, self.model.species)
        self.atoms = atoms.copy()
        self.skin, self.compile = float(skin), bool(compile)
        self.dt = timestep_fs * units.fs
        self.ensemble, self.temperature_K = ensemble, float(temperature_K)
        self.gamma = friction_per_fs / units.fs
        tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)  # noqa: E731
        self.cell = tensor(atoms.cell[:])
        self.positions = tensor(atoms.positions)
        self.momenta = tensor(atoms.get_momenta())
        self.masses = tensor(atoms.get_masses())[:, None]
        self.numbers = torch.as_tensor(atoms.numbers, dtype=torch.long, device=self.device)
        self.images = torch.zeros((len(atoms), 3), dtype=torch.long, device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.potential = ConservativePotential(self.model)
        self.rebuilds, self.steps_done, self.capacity = 0, 0, 0
        self._compiled = None
        self._rebuild()
        self.energy, self.forces = self._evaluate()

    # -- neighbour list ---------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Wrap positions into the cell and rebuild the list with radius ``cutoff + skin``."""
        frac = self.positions @ torch.linalg.inv(self.cell)
        image = torch.floor(frac)
        self.images += image.long()
        self.positions = (frac - image) @ self.cell
        edges, shifts = cell_list_pairs(self.positions, self.cell, self.model.cutoff + self.skin)
        self.edge_index, self.edge_shift = edges, shifts.to(self.dtype)
        if self.compile:
            self._pad()
        counts = torch.bincount(self.edge_index[0], minlength=len(self.numbers))
        self.offsets = torch.nn.functional.pad(torch.cumsum(counts, 0), (1, 0))
        self.reference = self.positions.clone()
        self.rebuilds += 1

    def _pad(self) -> None:
        """Pad the edges to a fixed capacity: one compiled graph serves every rebuild.

        Padding edges join the last atom to its own image one cell vector away, beyond the
        list radius (every cell width exceeds it), where the cosine cutoff is zero.
        """
        n_edges = self.edge_index.shape[1]
        if n_edges > self.capacity:  # first build, or the list grew: a new compiled graph
            self.capacity = int(math.ceil(n_edges * 1.1 / 1024) * 1024)
            self._compiled = None
        extra = self.capacity - n_edges
        last = len(self.numbers) - 1
        pad_index = torch.full((2, extra), last, dtype=torch.long, device=self.device)
        pad_shift = torch.zeros(extra, 3, dtype=self.dtype, device=self.device)
        pad_shift[:, 0] = 1.0
        self.edge_index = torch.cat([self.edge_index, pad_index], 1)
        self.edge_shift = torch.cat([self.edge_shift, pad_shift])

    def _needs_rebuild(self) -> bool:
        moved = (self.positions - self.reference).norm(dim=1).max()
        return bool(moved > 0.5 * self.skin)

    # -- forces -----------------------------------------------------------------------------
    def _evaluate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Energy (0-d) and forces ``(N, 3)`` of the current positions."""
        if self.compile:
            if self._compiled is None:
                self._compiled = self._compile()
            out = self._compiled(*self._inputs())
            return out[0][0], out[2]
        batch = torch.zeros_like(self.numbers)
        with torch.enable_grad():
            out = self.potential(
                self.positions, self.numbers, self.cell[None], batch, self.edge_index,
                self.edge_shift, self.offsets, 1,
            )  # fmt: skip
        return out["energy"][0].detach(), out["forces"].detach()

    def _inputs(self) -> tuple[torch.Tensor, ...]:
        return self.positions, self.numbers, self.cell, self.edge_index, self.edge_shift

    def _compile(self):
        """Energy + forces traced into one ATen graph and compiled by inductor (fixed shapes)."""
        from torch.fx.experimental.proxy_tensor import make_fx

        module = _EnergyForces(self.model, False)
        try:  # symbolic sizes: one compiled graph for every size
            traced = make_fx(module, tracing_mode="symbolic", _allow_non_fake_inputs=True)(
                *self._inputs()
            )
            return torch.compile(traced, dynamic=True)
        except RuntimeError:  # torch 2.11 on CUDA: an internal assert in symbolic tracing
            # fake tensors: fixed shapes without running (a real trace at 100k atoms took the
            # memory of a whole eager call, 67 GiB, on top of the compiled one)
            traced = make_fx(module, tracing_mode="fake", _allow_non_fake_inputs=True)(
                *self._inputs()
            )
            return torch.compile(traced, dynamic=False)

    # -- integration ------------------------------------------------------------------------
    def step(self) -> None:
        """One time step."""
        self.momenta += 0.5 * self.dt * self.forces
        if self.ensemble == "nve":
            self.positions += self.dt * self.momenta / self.masses
        else:  # BAOAB
            self.positions += 0.5 * self.dt * self.momenta / self.masses
            self._thermostat()
            self.positions += 0.5 * self.dt * self.momenta / self.masses
        if self._needs_rebuild():
            self._rebuild()
        self.energy, self.forces = self._evaluate()
        self.momenta += 0.5 * self.dt * self.forces
        self.steps_done += 1

    def _thermostat(self) -> None:
        """Exact Ornstein-Uhlenbeck step of the momenta (BAOAB's O)."""
        c1 = math.exp(-self.gamma * self.dt)
        kt = units.kB * self.temperature_K
        noise = torch.randn(
            self.momenta.shape, generator=self.generator, device=self.device, dtype=self.dtype
        )
        self.momenta = c1 * self.momenta + torch.sqrt((1 - c1**2) * kt * self.masses) * noise

    def run(self, steps: int) -> None:
        """``steps`` time steps."""
        for _ in range(int(steps)):
            self.step()

    def kinetic_energy(self) -> float:
        """Kinetic energy (eV)."""
        return float(0.5 * (self.momenta**2 / self.masses).sum())

    def temperature(self) -> float:
        """Instantaneous temperature (3N degrees of freedom, as ASE)."""
        return 2 * self.kinetic_energy() / (3 * len(self.numbers) * units.kB)

    def get_atoms(self) -> Atoms:
        """The system now (a copy): unwrapped positions, momenta, energy in ``info``."""
        atoms = self.atoms.copy()
        unwrapped = self.positions + self.images.to(self.dtype) @ self.cell
        atoms.positions = unwrapped.detach().double().cpu().numpy()
        atoms.set_momenta(self.momenta.detach().double().cpu().numpy())
        atoms.info["energy"] = float(self.energy)
        return atoms


def _check_settings(atoms: Atoms, timestep_fs: float, skin: float, ensemble: str) -> None:
    if not isinstance(atoms, Atoms) or not np.asarray(atoms.pbc).all():
        raise DeviceMDError(
            "DeviceMD runs fully periodic cells; put a molecule in a box (atoms.center(vacuum="
            "...), atoms.pbc = True) or use ASE's MD loop with DistilledCalculator."
        )
    check_cell(atoms)
    if ensemble not in ("nve", "langevin"):
        raise DeviceMDError(f"DeviceMD runs 'nve' or 'langevin', not {ensemble!r}.")
    if not timestep_fs > 0 or not skin >= 0:
        raise DeviceMDError("timestep_fs must be > 0 and skin >= 0 (Angstrom).")
