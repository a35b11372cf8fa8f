"""A CHNO molecule library for distillation: curated SMILES, capped peptides, BRICS recombination.

The first-generation students missed chemistry their data lacked (peptides, purines). This
module builds the training molecules by category and counts what they cover:

* :data:`CURATED`: hand-picked neutral, closed-shell H/C/N/O molecules by category;
* :func:`amino_acids`, :func:`capped_peptides`: the 18 CHNO amino acids (Cys and Met contain
  sulfur, which the students do not know) and Ace-X-NMe / Ace-X-Y-NMe peptides;
* :func:`brics_recombinations`: new molecules from the BRICS fragments of the curated set
  (RDKit), filtered by size, elements, charge and valence;
* :data:`HELD_OUT`: the evaluation molecules, kept out of every list, fragment and product.

``python -m training.chemistry OUT`` writes ``OUT/library.json`` (name, SMILES, category,
functional groups, ring system) and ``OUT/summary.json`` (counts by category, group and ring
system). :func:`conformers` gives ETKDG conformers of a molecule as ASE atoms.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ase import Atoms

from ase_distill.checkpoint import atomic_write_json

ELEMENTS = {"H", "C", "N", "O"}
MAX_ATOMS = 60  # with hydrogens

#: Evaluation molecules: never trained on, never a fragment or a recombination product.
HELD_OUT: dict[str, str] = {
    "aspirin": "CC(=O)OC1=CC=CC=C1C(=O)O",
    "caffeine": "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "histamine": "NCCC1=CN=CN1",
    "lidocaine": "CCN(CC)CC(=O)NC1=C(C)C=CC=C1C",
    "vanillin": "COC1=C(O)C=CC(C=O)=C1",
    "ace_tyr_nme": "CC(=O)N[C@@H](Cc1ccc(O)cc1)C(=O)NC",  # capped dipeptide
    "hypoxanthine": "O=c1[nH]cnc2[nH]cnc12",  # purine
    "nicotinamide": "NC(=O)c1cccnc1",  # heteroaromatic amide
    "methyl_carbamate": "COC(N)=O",  # carbamate
    # added with the third generation: hypoxanthine turned out to have a tautomer in the
    # library (held_out_tautomers), so a purine with none is held out beside it
    "2_aminopurine": "Nc1ncc2[nH]cnc2n1",
}

# fmt: off
CURATED: dict[str, list[str]] = {
    "nucleobase_purine_pyrimidine": [
        "Nc1ncnc2[nH]cnc12", "Nc1nc2[nH]cnc2c(=O)[nH]1", "O=c1cc[nH]c(=O)[nH]1",
        "Cc1c[nH]c(=O)[nH]c1=O", "Nc1cc[nH]c(=O)n1", "c1ncc2nc[nH]c2n1",
        "O=c1[nH]c(=O)c2[nH]cnc2[nH]1",
        "Cn1cnc2c1c(=O)[nH]c(=O)n2C", "Cn1c(=O)c2[nH]cnc2n(C)c1=O", "c1cncnc1", "c1cnccn1",
        "c1ccnnc1", "Nc1ncccn1", "Oc1ncccn1", "Nc1nc(N)c2nc[nH]c2n1", "CNc1ncnc2[nH]cnc12",
        "O=c1nc[nH]c2nc[nH]c12", "Nc1ccncn1", "c1nc2ccccc2[nH]1", "O=c1[nH]cnc2cccnc12",
    ],
    "heterocycle": [
        "c1ccoc1", "c1cc[nH]c1", "c1cnoc1", "c1cocn1", "c1cn[nH]c1", "c1nc[nH]n1", "c1nnn[nH]1",
        "c1ccncc1", "Cc1ccccn1", "Oc1ccccn1", "c1ccc2ncccc2c1", "c1ccc2[nH]ccc2c1",
        "c1ccc2occc2c1", "C1CCOC1", "C1CCNC1", "C1CCOCC1", "C1CNCCN1", "C1COCCN1", "C1CCNCC1",
        "O=C1CCCO1", "C1COCO1", "c1cc2ccccc2o1", "c1ccc2nc[nH]c2c1", "Cn1ccnc1", "Cc1ncc[nH]1",
        "c1cnc2ccccc2n1", "c1ccc2c(c1)OCO2", "O=c1ccocc1", "c1cc(-c2ccccn2)ncc1", "C1=COC=CC1",
    ],
    "amide_lactam": [
        "CC(N)=O", "CNC(C)=O", "CN(C)C(C)=O", "NC(=O)c1ccccc1", "O=C1CCCN1", "O=C1CCCCN1",
        "O=C1CCCCCN1", "CC(=O)Nc1ccccc1", "O=CNc1ccccc1", "NC(=O)CC(N)=O", "CCC(=O)NCC",
        "O=C(NC1CC1)c1ccccc1", "CC(=O)N1CCCC1", "NC(=O)C=C", "O=C1NC(=O)c2ccccc21",
    ],
    "urea_carbamate": [
        "NC(N)=O", "CNC(=O)NC", "CN(C)C(=O)N(C)C", "O=C1NCCN1", "NC(=O)Nc1ccccc1", "CCOC(N)=O",
        "CNC(=O)OC", "O=C1OCCN1", "CC(C)OC(=O)Nc1ccccc1", "NC(=O)NC(N)=O", "O=C1NC(=O)NC1=O",
    ],
    "ester_lactone": [
        "COC(C)=O", "CCOC(=O)CC", "COC(=O)c1ccccc1", "CC(=O)Oc1ccccc1", "O=C1CCCO1",
        "O=C1CCCCO1", "C=CC(=O)OC", "COC(=O)CC(=O)OC", "O=C1OCc2ccccc21", "CCOC(=O)C=Cc1ccccc1",
        "CC(=O)OCC(=O)O", "O=c1ccc2ccccc2o1",
    ],
    "ether_alcohol_phenol": [
        "CCO", "CC(C)O", "OCCO", "COCCO", "CCOCC", "COc1ccccc1", "Oc1ccccc1", "Oc1ccc(O)cc1",
        "Oc1cccc2ccccc12", "OC1CCCCC1", "OCc1ccccc1", "COCCOC", "CC(C)(C)O", "OCC(O)CO",
        "Oc1ccccc1O", "COc1ccc(O)cc1", "c1ccc(Oc2ccccc2)cc1", "OC1COC(CO)C(O)C1O",
    ],
    "amine_imine_hydrazine": [
        "CN", "CCN", "CNC", "CN(C)C", "NCCN", "Nc1ccccc1", "CNc1ccccc1", "NCc1ccccc1",
        "C1CCNCC1", "NCCO", "CC(N)C(=O)O", "CC=NC", "C(=Nc1ccccc1)c1ccccc1", "NN", "CNN",
        "NNc1ccccc1", "NNC(N)=O", "CC(=NN)C", "NC(=N)N", "CN(C)C(=N)N=C(N)N",
    ],
    "nitrile_nitro_oxime": [
        "CC#N", "N#Cc1ccccc1", "N#CCC#N", "N#CC=C", "C[N+](=O)[O-]", "O=[N+]([O-])c1ccccc1",
        "Cc1ccc([N+](=O)[O-])cc1", "CC=NO", "CC(C)=NO", "ON=Cc1ccccc1", "ON=C1CCCCC1",
        "N#Cc1ccncc1", "O=[N+]([O-])c1ccc(O)cc1",
    ],
    "aldehyde_ketone_acid": [
        "CC=O", "O=Cc1ccccc1", "CCCC=O", "CC(C)=O", "CC(=O)c1ccccc1", "O=C1CCCC1", "O=C1CCCCC1",
        "CC(=O)CC(C)=O", "O=C(c1ccccc1)c1ccccc1", "CC(=O)O", "OC(=O)c1ccccc1", "OC(=O)CC(=O)O",
        "CC(O)C(=O)O", "OC(=O)C=Cc1ccccc1", "O=CC=O", "O=C1C=CC(=O)C=C1", "OC(=O)c1ccccc1O",
        "CCCCCC(=O)O", "OC(=O)C(O)c1ccccc1",
    ],
    "drug_like": [
        "CC(=O)NC1=CC=C(O)C=C1", "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O", "CN1CCCC1C2=CN=CC=C2",
        "CCN(CC)CCOC(=O)C1=CC=C(N)C=C1", "CCOC1=CC=C(NC(C)=O)C=C1", "NCCC1=CC(O)=C(O)C=C1",
        "CNC(C)C(O)C1=CC=CC=C1", "CC(C)C1CCC(C)CC1O", "NCCC1=CNC2=CC=CC=C12",
        "CCOC(=O)C1=CC=C(N)C=C1", "COC1=CC=C(CCN)C=C1OC", "CC(C)NCC(O)COc1cccc2ccccc12",
        "CN1C(=O)CN=C(c2ccccc2)c2cc(ccc21)[N+](=O)[O-]", "O=C(O)Cc1ccccc1Nc1ccccc1",
        "CC(=O)Nc1ccc(OCC)cc1", "COc1ccc2[nH]cc(CCNC(C)=O)c2c1", "NC(=O)c1ccccc1O",
        "CN1CCN(C)CC1", "O=C(O)c1ccc(N)cc1", "CCCC(C)C1(CC)C(=O)NC(=O)NC1=O",
        "CC1=C(C(=O)O)C(C)=NO1", "OCC1OC(O)C(O)C(O)C1O", "CN(C)CCOC(c1ccccc1)c1ccccc1",
        "O=C1CN=C(c2ccccc2)c2ccccc2N1", "CC(C(=O)O)c1ccc2cc(OC)ccc2c1",
        "COc1cc(C=O)ccc1OCC=C", "Cc1onc(-c2ccccc2)c1C(=O)O", "NC(=O)N1c2ccccc2C=Cc2ccccc21",
    ],
}
# fmt: on

#: Side chains of the CHNO amino acids (Gly and Pro are built specially; Cys and Met have S).
SIDE_CHAINS: dict[str, str] = {
    "ala": "C", "val": "C(C)C", "leu": "CC(C)C", "ile": "[C@@H](C)CC", "phe": "Cc1ccccc1",
    "trp": "Cc1c[nH]c2ccccc12", "ser": "CO", "thr": "[C@@H](C)O", "asn": "CC(N)=O",
    "gln": "CCC(N)=O", "asp": "CC(=O)O", "glu": "CCC(=O)O", "lys": "CCCCN",
    "arg": "CCCNC(N)=N", "his": "Cc1c[nH]cn1", "tyr": "Cc1ccc(O)cc1",
}  # fmt: skip
RESIDUES = ["gly", "pro", *SIDE_CHAINS]

#: Functional groups counted in the summary (SMARTS).
GROUPS: dict[str, str] = {
    "amide": "[NX3][CX3](=O)[#6]", "urea": "[NX3][CX3](=O)[NX3]", "carbamate": "[NX3]C(=O)O[#6]",
    "ester": "[#6]C(=O)O[#6]", "acid": "C(=O)[OX2H1]", "ether": "[OD2]([#6])[#6]",
    "alcohol": "[CX4][OX2H]", "phenol": "c[OX2H]", "amine": "[NX3;!$(N-C=[O,N]);!$(N-a)]",
    "aniline": "[NX3;!$(N-C=O)]c", "imine": "[CX3]=[NX2][#6,#1]", "nitrile": "C#N",
    "nitro": "[N+](=O)[O-]", "oxime": "C=N[OH]", "hydrazine": "[NX3][NX3]",
    "aldehyde": "[CX3H1](=O)[#6]", "ketone": "[#6][CX3](=O)[#6]", "lactam": "[NR][CR](=O)",
    "lactone": "[OR][CR](=O)", "peptide_bond": "C(=O)N[CX4]C(=O)N",
}  # fmt: skip


def _chem():
    try:
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        return Chem
    except ImportError as exc:  # the extra is optional: say how to get it
        raise ImportError(
            "The molecule library needs RDKit: `pip install ase-distill[smiles]`."
        ) from exc


def canonical(smiles: str) -> str | None:
    """Canonical SMILES of an acceptable molecule, else ``None``.

    Acceptable: parses and sanitises, elements H/C/N/O only, net charge 0, no radicals, at most
    :data:`MAX_ATOMS` atoms with hydrogens, one fragment.
    """
    chem = _chem()
    mol = chem.MolFromSmiles(smiles)
    if mol is None or len(chem.GetMolFrags(mol)) != 1:
        return None
    if chem.GetFormalCharge(mol) != 0 or any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return None
    with_h = chem.AddHs(mol)
    if with_h.GetNumAtoms() > MAX_ATOMS:
        return None
    if any(a.GetSymbol() not in ELEMENTS for a in with_h.GetAtoms()):
        return None
    return chem.MolToSmiles(mol)


def tautomer_key(smiles: str) -> str:
    """Canonical SMILES of the canonical tautomer: one key for every tautomer of a molecule.

    Hypoxanthine's 1,7-H tautomer and hypoxanthine have different canonical SMILES but are one
    molecule; held-out checks compare these keys.
    """
    chem = _chem()
    from rdkit.Chem.MolStandardize import rdMolStandardize

    enumerator = rdMolStandardize.TautomerEnumerator()
    return chem.MolToSmiles(enumerator.Canonicalize(chem.MolFromSmiles(smiles)))


def held_out_tautomers(library: Iterable[dict[str, object]]) -> dict[str, str]:
    """Library entries that are a held-out molecule in another tautomer: name -> held-out name."""
    keys = {tautomer_key(s): name for name, s in HELD_OUT.items()}
    found = {str(e["name"]): keys.get(tautomer_key(str(e["smiles"]))) for e in library}
    return {name: held for name, held in found.items() if held is not None}


def amino_acids() -> dict[str, str]:
    """The 18 CHNO amino acids in their neutral form."""
    out = {name: f"N[C@@H]({side})C(=O)O" for name, side in SIDE_CHAINS.items()}
    out["gly"] = "NCC(=O)O"
    out["pro"] = "OC(=O)[C@@H]1CCCN1"
    return out


def _residue(name: str, ring: int) -> str:
    """The ``N-CA-C(=O)`` piece of a residue inside a chain (``ring``: Pro's closure digit)."""
    if name == "gly":
        return "NCC(=O)"
    if name == "pro":
        return f"N{ring}CCC[C@H]{ring}C(=O)"
    return f"N[C@@H]({SIDE_CHAINS[name]})C(=O)"


def capped_peptide(residues: Iterable[str]) -> str:
    """SMILES of Ace-(residues)-NMe, e.g. ``capped_peptide(["ala"])`` is the alanine dipeptide."""
    body = "".join(_residue(r, k + 1) for k, r in enumerate(residues))
    return f"CC(=O){body}NC"


def capped_peptides(n_tripeptides: int = 80, seed: int = 0) -> dict[str, str]:
    """Every Ace-X-NMe and ``n_tripeptides`` random Ace-X-Y-NMe (fixed seed)."""
    out = {f"ace_{r}_nme": capped_peptide([r]) for r in RESIDUES}
    rng = random.Random(seed)
    pairs = [(a, b) for a in RESIDUES for b in RESIDUES]
    for a, b in rng.sample(pairs, n_tripeptides):
        out[f"ace_{a}_{b}_nme"] = capped_peptide([a, b])
    return out


def brics_recombinations(
    smiles: Iterable[str], n: int = 200, seed: int = 0, exclude: Iterable[str] = ()
) -> list[str]:
    """Up to ``n`` acceptable new molecules built from the BRICS fragments of ``smiles``.

    Fragments come from ``smiles`` only (pass the training molecules, never held-out ones);
    products equal to anything in ``smiles`` or ``exclude`` are dropped.
    """
    chem = _chem()
    from rdkit.Chem import BRICS

    mols = [m for m in (chem.MolFromSmiles(s) for s in smiles) if m is not None]
    fragments = sorted({f for m in mols for f in BRICS.BRICSDecompose(m)})
    rng = random.Random(seed)
    rng.shuffle(fragments)
    known = {canonical(s) for s in smiles} | {canonical(s) for s in exclude}
    products: list[str] = []
    builder = BRICS.BRICSBuild([chem.MolFromSmiles(f) for f in fragments], maxDepth=2)
    for attempt, mol in enumerate(builder):
        if len(products) >= n or attempt > 50 * n:
            break
        try:
            chem.SanitizeMol(mol)
        except Exception:  # noqa: BLE001 (RDKit raises several types for bad valences)
            continue
        smi = canonical(chem.MolToSmiles(mol))
        if smi is not None and smi not in known:
            known.add(smi)
            products.append(smi)
    return products


# fmt: off
#: Ring cores of :func:`substituted_rings`: azoles, azines, pyridones and fused bicycles, the
#: heteroaromatic chemistry the first library holds least of (30 / 24 of its 496 molecules have
#: a lone five- / six-membered heteroaromatic ring).
RING_CORES: list[str] = [
    "c1ccoc1", "c1cc[nH]c1", "c1cocn1", "c1cnoc1", "c1c[nH]cn1", "c1cn[nH]c1", "c1nc[nH]n1",
    "c1c[nH]nn1", "c1nn[nH]n1", "c1nnco1", "c1ncon1", "Cn1ccnc1", "Cn1cccc1", "c1ccccc1",
    "c1ccncc1", "c1cncnc1", "c1cnccn1", "c1ccnnc1", "c1ncncn1", "O=c1cccc[nH]1",
    "O=c1ccnc[nH]1", "O=c1cc[nH]c(=O)[nH]1", "c1ccc2[nH]ccc2c1", "c1ccc2[nH]cnc2c1",
    "c1ccc2ocnc2c1", "c1ccc2occc2c1", "c1ccc2ncccc2c1", "c1ccc2cnccc2c1", "c1ccc2ncncc2c1",
    "c1ccc2nccnc2c1", "c1ncc2[nH]cnc2n1", "c1ncc2cc[nH]c2n1", "c1ccn2ccnc2c1",
    "c1ccc2[nH]ncc2c1", "c1cnc2ncncc2n1", "c1ccc2ccccc2c1", "C1CCNC1", "C1CCOCC1",
]
#: Substituents of :func:`substituted_rings`, bonded through their first atom.
SUBSTITUENTS: list[str] = [
    "C", "CC", "O", "N", "OC", "NC", "N(C)C", "C=O", "C(=O)O", "C(N)=O", "C(=O)OC", "C#N",
    "CO", "CN", "CCN", "CCO", "NC(C)=O", "C(C)=O", "[N+](=O)[O-]", "c1ccccc1", "NC(N)=O",
]
# fmt: on


def _attach(core: str, position: int, substituent: str) -> str | None:
    """Canonical SMILES of ``core`` with ``substituent`` bonded to its atom ``position``."""
    chem = _chem()
    ring, group = chem.MolFromSmiles(core), chem.MolFromSmiles(substituent)
    mol = chem.RWMol(chem.CombineMols(ring, group))
    mol.AddBond(position, ring.GetNumAtoms(), chem.BondType.SINGLE)
    atom = mol.GetAtomWithIdx(position)
    atom.SetNumExplicitHs(0)  # an [nH] gives its hydrogen to the new bond
    try:
        chem.SanitizeMol(mol)
    except Exception:  # noqa: BLE001 (RDKit raises several types for bad valences)
        return None
    return canonical(chem.MolToSmiles(mol))


def ring_positions(core: str) -> list[int]:
    """One ring atom with a hydrogen per symmetry class of ``core`` (where a substituent goes)."""
    chem = _chem()
    mol = chem.MolFromSmiles(core)
    ranks = list(chem.CanonicalRankAtoms(mol, breakTies=False))
    seen: set[int] = set()
    positions = []
    for atom in mol.GetAtoms():
        if atom.IsInRing() and atom.GetTotalNumHs() > 0 and ranks[atom.GetIdx()] not in seen:
            seen.add(ranks[atom.GetIdx()])
            positions.append(atom.GetIdx())
    return positions


def substituted_rings(n: int, seed: int = 0, exclude: Iterable[str] = ()) -> list[str]:
    """``n`` random singly substituted ring molecules (:data:`RING_CORES` x :data:`SUBSTITUENTS`).

    Every product is acceptable (:func:`canonical`), new against ``exclude``, and is no tautomer
    of a :data:`HELD_OUT` molecule (an enumeration builds 2-aminopurine or nicotinamide
    otherwise).
    """
    banned = {tautomer_key(s) for s in HELD_OUT.values()}
    known = {canonical(s) for s in exclude}
    candidates = sorted(
        {
            smi
            for core in RING_CORES
            for position in ring_positions(core)
            for group in SUBSTITUENTS
            if (smi := _attach(core, position, group)) is not None and smi not in known
        }
    )
    random.Random(seed).shuffle(candidates)
    products: list[str] = []
    for smi in candidates:
        if len(products) == n:
            break
        if tautomer_key(smi) not in banned:
            products.append(smi)
    return products


def disubstituted_rings(n: int, seed: int = 0, exclude: Iterable[str] = ()) -> list[str]:
    """``n`` random ring molecules with two substituents on two ring atoms of one core.

    Two groups on one ring (ortho, meta, para and their heteroaromatic kin) are where the held-out
    drug-like molecules sit and single substitution cannot reach; drawn at random from
    :data:`RING_CORES` x :data:`SUBSTITUENTS` squared, new against ``exclude``, no tautomer of a
    :data:`HELD_OUT` molecule.
    """
    banned = {tautomer_key(s) for s in HELD_OUT.values()}
    known = {canonical(s) for s in exclude}
    rng = random.Random(seed)
    products: list[str] = []
    for _ in range(200 * n):
        if len(products) == n:
            break
        core = rng.choice(RING_CORES)
        sites = _hydrogen_ring_atoms(core)
        if len(sites) < 2:
            continue
        positions = rng.sample(sites, 2)
        smi = _attach_many(core, positions, [rng.choice(SUBSTITUENTS) for _ in positions])
        if smi is None or smi in known:
            continue
        known.add(smi)
        if tautomer_key(smi) not in banned:
            products.append(smi)
    return products


def _hydrogen_ring_atoms(core: str) -> list[int]:
    """Every ring atom of ``core`` that carries a hydrogen (a place for a substituent)."""
    mol = _chem().MolFromSmiles(core)
    return [a.GetIdx() for a in mol.GetAtoms() if a.IsInRing() and a.GetTotalNumHs() > 0]


def _attach_many(core: str, positions: list[int], groups: list[str]) -> str | None:
    """Canonical SMILES of ``core`` with ``groups[k]`` bonded to its atom ``positions[k]``."""
    chem = _chem()
    mol = chem.RWMol(chem.MolFromSmiles(core))
    for position, group in zip(positions, groups):
        start = mol.GetNumAtoms()
        mol = chem.RWMol(chem.CombineMols(mol, chem.MolFromSmiles(group)))
        mol.AddBond(position, start, chem.BondType.SINGLE)
        mol.GetAtomWithIdx(position).SetNumExplicitHs(0)
    try:
        chem.SanitizeMol(mol)
    except Exception:  # noqa: BLE001 (RDKit raises several types for bad valences)
        return None
    return canonical(chem.MolToSmiles(mol))


def describe(smiles: str) -> dict[str, object]:
    """Functional groups (names from :data:`GROUPS`) and ring system of one molecule."""
    chem = _chem()
    mol = chem.MolFromSmiles(smiles)
    groups = [
        g for g, smarts in GROUPS.items() if mol.HasSubstructMatch(chem.MolFromSmarts(smarts))
    ]
    info = mol.GetRingInfo()
    rings = info.AtomRings()
    aromatic = [r for r in rings if all(mol.GetAtomWithIdx(i).GetIsAromatic() for i in r)]
    hetero = [r for r in aromatic if any(mol.GetAtomWithIdx(i).GetSymbol() != "C" for i in r)]
    fused = any(len(set(a) & set(b)) >= 2 for k, a in enumerate(rings) for b in rings[k + 1 :])
    if not rings:
        system = "acyclic"
    elif fused:
        system = "fused"
    elif hetero:
        system = f"heteroaromatic-{len(hetero[0])}"
    elif aromatic:
        system = "benzenoid"
    else:
        system = "aliphatic-ring"
    return {"groups": groups, "ring_system": system}


def build_library(n_recombined: int = 200, seed: int = 0) -> list[dict[str, object]]:
    """Every training molecule once: name, canonical SMILES, category, groups, ring system."""
    held_out = {tautomer_key(s) for s in HELD_OUT.values()}
    entries: dict[str, dict[str, object]] = {}

    def add(name: str, smiles: str, category: str) -> None:
        smi = canonical(smiles)
        if smi is None or smi in entries or tautomer_key(smi) in held_out:
            return
        entries[smi] = {"name": name, "smiles": smi, "category": category, **describe(smi)}

    for category, items in CURATED.items():
        for k, smi in enumerate(items):
            add(f"{category}_{k:03d}", smi, category)
    for name, smi in amino_acids().items():
        add(name, smi, "amino_acid")
    for name, smi in capped_peptides(seed=seed).items():
        add(name, smi, "capped_peptide")
    recombined = brics_recombinations(list(entries), n_recombined, seed, HELD_OUT.values())
    for k, smi in enumerate(recombined):
        add(f"brics_{k:03d}", smi, "brics_recombination")
    return list(entries.values())


def summarize(library: list[dict[str, object]]) -> dict[str, object]:
    """Counts of molecules by category, functional group and ring system."""
    return {
        "molecules": len(library),
        "held_out": sorted(HELD_OUT),
        "by_category": dict(Counter(e["category"] for e in library).most_common()),
        "by_group": dict(Counter(g for e in library for g in e["groups"]).most_common()),
        "by_ring_system": dict(Counter(e["ring_system"] for e in library).most_common()),
    }


def conformers(smiles: str, n: int = 3, seed: int = 0) -> list[Atoms]:
    """Up to ``n`` distinct ETKDG conformers (MMFF-relaxed) of a molecule, as ASE atoms."""
    chem = _chem()
    from rdkit.Chem import AllChem

    mol = chem.AddHs(chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n, params=params))
    if not ids:
        raise ValueError(f"RDKit could not embed {smiles!r} in 3D.")
    AllChem.MMFFOptimizeMoleculeConfs(mol)
    numbers = [a.GetAtomicNum() for a in mol.GetAtoms()]
    return [Atoms(numbers=numbers, positions=mol.GetConformer(i).GetPositions()) for i in ids]


def build_extension(
    base: list[dict[str, object]], used: int, n_substituted: int, seed: int = 0
) -> list[dict[str, object]]:
    """A third-generation library from ``base`` (the library of the earlier generations).

    It holds the entries past the first ``used`` (no generation has labelled them; no held-out
    tautomer) and ``n_substituted`` new :func:`substituted_rings` molecules.
    """
    leaks = held_out_tautomers(base)
    entries = [e for e in base[used:] if e["name"] not in leaks]
    exclude = [str(e["smiles"]) for e in base]
    for k, smi in enumerate(substituted_rings(n_substituted, seed, exclude)):
        entry = {"name": f"ring_{k:03d}", "smiles": smi, "category": "substituted_ring"}
        entries.append({**entry, **describe(smi)})
    return entries


def build_fourth_generation(
    bases: list[list[dict[str, object]]], counts: dict[str, int], seed: int = 4
) -> list[dict[str, object]]:
    """New molecules past every earlier library in ``bases``, names prefixed ``x4``.

    ``counts`` gives how many ``rings`` (:func:`substituted_rings`), ``pairs``
    (:func:`disubstituted_rings`) and ``recombined`` (:func:`brics_recombinations` of the
    earlier libraries' molecules) to draw. Why: the held-out energy error is a per-molecule
    offset, so the students need more distinct molecules; and molecules no student has seen
    give a validation split that measures those offsets (``train.validation_molecule_pattern``).
    Held-out tautomers of the bases are neither fragments nor products.
    """
    earlier = [e for base in bases for e in base]
    leaks = held_out_tautomers(earlier)
    sources = [str(e["smiles"]) for e in earlier if e["name"] not in leaks]
    exclude = [str(e["smiles"]) for e in earlier] + list(HELD_OUT.values())
    banned = {tautomer_key(s) for s in HELD_OUT.values()}
    drawn = {
        "substituted_ring": substituted_rings(counts.get("rings", 0), seed, exclude),
        "disubstituted_ring": disubstituted_rings(counts.get("pairs", 0), seed, exclude),
        "brics_recombination": [
            smi
            for smi in brics_recombinations(sources, counts.get("recombined", 0), seed, exclude)
            if tautomer_key(smi) not in banned
        ],
    }
    prefixes = {"substituted_ring": "x4ring", "disubstituted_ring": "x4pair"}
    entries: dict[str, dict[str, object]] = {}
    for category, molecules in drawn.items():
        for k, smi in enumerate(m for m in molecules if m not in entries):
            name = f"{prefixes.get(category, 'x4brics')}_{k:03d}"
            entries[smi] = {"name": name, "smiles": smi, "category": category, **describe(smi)}
    return list(entries.values())


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Write ``OUT/library.json`` and ``OUT/summary.json``; print the summary.

    ``python -m training.chemistry OUT`` builds the library; ``python -m training.chemistry OUT
    BASE/library.json USED N`` builds the extension of :func:`build_extension`;
    ``python -m training.chemistry OUT --fourth BASE.json... RINGS PAIRS RECOMBINED`` builds
    :func:`build_fourth_generation`.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[1] == "--fourth":
        *paths, rings, pairs, recombined = args[2:]
        bases = [json.loads(Path(p).read_text()) for p in paths]
        counts = {"rings": int(rings), "pairs": int(pairs), "recombined": int(recombined)}
        library = build_fourth_generation(bases, counts)
    elif len(args) == 4:
        base = json.loads(Path(args[1]).read_text())
        library = build_extension(base, int(args[2]), int(args[3]))
    elif len(args) == 1:
        library = build_library()
    else:
        raise ValueError(
            "usage: python -m training.chemistry OUT [BASE/library.json USED N | --fourth "
            "BASE.json... RINGS PAIRS RECOMBINED]"
        )
    summary = summarize(library)
    folder = Path(args[0])
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "library.json", library)
    atomic_write_json(folder / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
