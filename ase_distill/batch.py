"""Many structures in one call: batched evaluation and a batched MD driver.

Small molecules leave a CPU idle between the framework's per-call overheads; evaluating many
structures as one disjoint graph amortises them (replicas, conformer sampling, the on-policy
loop of distillation). Results per structure are those of separate calls: the graph is the
union of the structures' graphs and nothing couples them.

>>> evaluator = BatchEvaluator("tiny")                          # doctest: +SKIP
>>> results = evaluator.evaluate([molecule("C6H6"), bulk_cell])  # doctest: +SKIP
>>> md = BatchedMD(replicas, evaluator, timestep_fs=0.5)        # doctest: +SKIP
>>> md.run(1000)                                                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms, units

from ase_distill.graph import atoms_to_graph
from ase_distill.md import ENSEMBLES
from ase_distill.model import ConservativePotential, StudentModel


class BatchEvaluator:
    """Energies, forces (and stress) of many structures of any sizes in one model call.

    Args:
        model: a student name, a checkpoint path or a :class:`StudentModel`.
        device: torch device.
        dtype: float64 (default, the reference) or float32.
        compile: energies and forces through the compiled package (:mod:`ase_distill.compiled`,
            CPU; as :class:`~ase_distill.calculator.DistilledCalculator`'s ``compile``: ``"auto"``
            uses a cached one); stress calls stay eager.
    """

    def __init__(
        self,
        model: str | StudentModel = "tiny",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        compile: bool | str = "auto",
    ) -> None:
        from ase_distill.calculator import DistilledCalculator

        # The calculator does the loading and the checks (name or file, device, dtype), and
        # keeps a private eval-mode copy of the model.
        self.calculator = DistilledCalculator(model, device=device, dtype=dtype, compile=compile)
        if self.calculator.model is None:
            raise ValueError("BatchEvaluator needs an eager student, not an exported file.")
        self.model, self.device, self.dtype = self.calculator.model, self.calculator.device, dtype
        self.potential = ConservativePotential(self.model)

    def evaluate(self, structures: Sequence[Atoms], stress: bool = False) -> list[dict[str, Any]]:
        """One call for all ``structures``; returns one dict per structure.

        Each dict holds ``energy`` (eV), ``forces`` (n, 3) and, with ``stress=True`` for fully
        periodic structures, ``stress`` (3, 3) in eV/A^3 (ASE's sign).
        """
        energy, forces, stresses = self.evaluate_arrays(structures, stress)
        out, start = [], 0
        for k, atoms in enumerate(structures):
            row = {"energy": float(energy[k]), "forces": forces[start : start + len(atoms)]}
            if stresses is not None and np.asarray(atoms.pbc).all():
                row["stress"] = stresses[k]
            out.append(row)
            start += len(atoms)
        return out

    def evaluate_arrays(
        self, structures: Sequence[Atoms], stress: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Energies ``(B,)``, concatenated forces ``(N, 3)`` and stresses ``(B, 3, 3)``."""
        model = self.model
        graph = atoms_to_graph(structures, model.cutoff, model.species, self.dtype, self.device)
        n_edges = graph.edge_index.shape[1]
        if not stress and self.calculator.uses_compiled_package(graph.n_atoms, n_edges):
            out = self.calculator.compiled_call(graph)
        else:
            with torch.enable_grad():
                out = self.potential.evaluate(graph, forces=True, stress=stress)
        energy = out["energy"].detach().cpu().numpy().astype(np.float64)
        forces = out["forces"].detach().cpu().numpy().astype(np.float64)
        stresses = out["stress"].detach().cpu().numpy().astype(np.float64) if stress else None
        return energy, forces, stresses


class BatchedMD:
    """NVE (velocity Verlet, as ASE's) or Langevin (BAOAB) MD of independent systems at once.

    The systems share nothing but the force call. Velocity Verlet reproduces ASE's
    ``VelocityVerlet`` step by step; Langevin uses the BAOAB splitting with one random stream
    per system, so a system's trajectory does not depend on the others.

    Args:
        systems: the structures (positions and momenta are copied; the inputs stay untouched).
        evaluator: a :class:`BatchEvaluator`.
        timestep_fs: time step.
        ensemble: ``nve`` or ``langevin``.
        temperature_K: Langevin target temperature.
        friction_per_fs: Langevin friction.
        seed: random seed (system ``k`` uses ``seed + k``).
    """

    def __init__(
        self,
        systems: Sequence[Atoms],
        evaluator: BatchEvaluator,
        timestep_fs: float = 0.5,
        ensemble: str = "nve",
        temperature_K: float = 300.0,
        friction_per_fs: float = 0.01,
        seed: int = 0,
    ) -> None:
        if ensemble not in ("nve", "langevin"):
            raise ValueError(f"BatchedMD runs 'nve' or 'langevin', not {ensemble!r} {ENSEMBLES}.")
        if not timestep_fs > 0 or temperature_K < 0 or friction_per_fs < 0:
            raise ValueError("timestep_fs must be > 0, temperature_K and friction_per_fs >= 0.")
        self.systems = [a.copy() for a in systems]
        self.evaluator = evaluator
        self.dt = timestep_fs * units.fs
        self.ensemble, self.temperature_K = ensemble, temperature_K
        self.gamma = friction_per_fs / units.fs
        self.counts = np.array([len(a) for a in self.systems])
        self.bounds = np.concatenate([[0], np.cumsum(self.counts)])
        self.positions = np.concatenate([a.positions for a in self.systems])
        self.momenta = np.concatenate([a.get_momenta() for a in self.systems])
        self.masses = np.concatenate([a.get_masses() for a in self.systems])[:, None]
        self.rngs = [np.random.default_rng(seed + k) for k in range(len(self.systems))]
        self.steps_done = 0
        self.energies, self.forces = self._forces()

    def _forces(self) -> tuple[np.ndarray, np.ndarray]:
        for k, atoms in enumerate(self.systems):
            atoms.positions = self.positions[self.bounds[k] : self.bounds[k + 1]]
        energy, forces, _ = self.evaluator.evaluate_arrays(self.systems)
        return energy, forces

    def _kick(self, fraction: float) -> None:
        self.momenta += fraction * self.dt * self.forces

    def _drift(self, fraction: float) -> None:
        self.positions += fraction * self.dt * self.momenta / self.masses

    def _thermostat(self) -> None:
        """Exact Ornstein-Uhlenbeck step of the momenta over one time step (BAOAB's O)."""
        c1 = np.exp(-self.gamma * self.dt)
        kt = units.kB * self.temperature_K
        noise = np.concatenate([rng.normal(size=(n, 3)) for rng, n in zip(self.rngs, self.counts)])
        self.momenta = c1 * self.momenta + np.sqrt((1 - c1**2) * kt * self.masses) * noise

    def step(self) -> None:
        """One time step of every system."""
        self._kick(0.5)
        if self.ensemble == "nve":
            self._drift(1.0)
        else:  # BAOAB
            self._drift(0.5)
            self._thermostat()
            self._drift(0.5)
        self.energies, self.forces = self._forces()
        self._kick(0.5)
        self.steps_done += 1

    def run(self, steps: int) -> None:
        """``steps`` time steps."""
        for _ in range(int(steps)):
            self.step()

    def kinetic_energies(self) -> np.ndarray:
        """Kinetic energy of each system (eV)."""
        per_atom = 0.5 * (self.momenta**2 / self.masses).sum(axis=1)
        return np.add.reduceat(per_atom, self.bounds[:-1])

    def temperatures(self) -> np.ndarray:
        """Instantaneous temperature of each system (3N degrees of freedom, as ASE)."""
        return 2 * self.kinetic_energies() / (3 * self.counts * units.kB)

    def atoms(self) -> list[Atoms]:
        """The systems now: positions and momenta (copies)."""
        out = []
        for k, atoms in enumerate(self.systems):
            a = atoms.copy()
            a.positions = self.positions[self.bounds[k] : self.bounds[k + 1]]
            a.set_momenta(self.momenta[self.bounds[k] : self.bounds[k + 1]])
            out.append(a)
        return out
