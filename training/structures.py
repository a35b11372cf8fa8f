"""Seed structures by ASE molecule name, common drug name, SMILES or file."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.collections import g2

#: Drug-like and larger CHNO molecules by common name (SMILES built in 3D with RDKit).
NAMED_SMILES: dict[str, str] = {
    "aspirin": "CC(=O)OC1=CC=CC=C1C(=O)O",
    "paracetamol": "CC(=O)NC1=CC=C(O)C=C1",
    "caffeine": "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "ibuprofen": "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O",
    "nicotine": "CN1CCCC1C2=CN=CC=C2",
    "phenol": "OC1=CC=CC=C1",
    "uracil": "O=C1NC=CC(=O)N1",
    "salicylic_acid": "OC(=O)C1=CC=CC=C1O",
    "naphthalene": "C1=CC=C2C=CC=CC2=C1",
    "toluene": "CC1=CC=CC=C1",
    "malonaldehyde": "O=CCC=O",
    "glycine": "NCC(=O)O",
    "alanine_dipeptide": "CC(=O)NC(C)C(=O)NC",
    "benzamide": "NC(=O)C1=CC=CC=C1",
    "pyridine": "C1=CC=NC=C1",
    "acetanilide": "CC(=O)NC1=CC=CC=C1",
    "methyl_benzoate": "COC(=O)C1=CC=CC=C1",
    "indole": "C1=CC=C2C(=C1)C=CN2",
    "serine": "NC(CO)C(=O)O",
    "urea": "NC(=O)N",
    "benzaldehyde": "O=CC1=CC=CC=C1",
    "aniline": "NC1=CC=CC=C1",
    "morpholine": "C1COCCN1",
    "theophylline": "CN1C2=C(C(=O)N(C1=O)C)NC=N2",
    "lidocaine": "CCN(CC)CC(=O)NC1=C(C)C=CC=C1C",
    "metformin": "CN(C)C(=N)NC(=N)N",
    "procaine": "CCN(CC)CCOC(=O)C1=CC=C(N)C=C1",
    "phenacetin": "CCOC1=CC=C(NC(C)=O)C=C1",
    "vanillin": "COC1=C(O)C=CC(C=O)=C1",
    "glucose": "OCC1OC(O)C(O)C(O)C1O",
    "histamine": "NCCC1=CN=CN1",
    "dopamine": "NCCC1=CC(O)=C(O)C=C1",
    "benzoic_acid": "OC(=O)C1=CC=CC=C1",
    "cyclohexanone": "O=C1CCCCC1",
    "ethyl_acetate": "CCOC(C)=O",
    "piperidine": "C1CCNCC1",
    "acetylacetone": "CC(=O)CC(C)=O",
    "pyrrole": "C1=CC=CN1",
    "imidazole": "C1=CN=CN1",
    "proline": "OC(=O)C1CCCN1",
    "octanol": "CCCCCCCCO",
    "hexanoic_acid": "CCCCCC(=O)O",
    "triethylamine": "CCN(CC)CC",
    "nitrobenzene": "O=[N+]([O-])C1=CC=CC=C1",
    "benzonitrile": "N#CC1=CC=CC=C1",
    "furfural": "O=CC1=CC=CO1",
    "diphenyl_ether": "C1=CC=C(C=C1)OC1=CC=CC=C1",
    "acetophenone": "CC(=O)C1=CC=CC=C1",
    "dimethylformamide": "CN(C)C=O",
    "tetrahydrofuran": "C1CCOC1",
    "methyl_acrylate": "COC(=O)C=C",
    "succinimide": "O=C1CCC(=O)N1",
    "cytosine": "NC1=NC(=O)NC=C1",
    "thymine": "CC1=CNC(=O)NC1=O",
    "adenine": "NC1=NC=NC2=C1N=CN2",
    "glycerol": "OCC(O)CO",
    "mandelic_acid": "OC(C(=O)O)C1=CC=CC=C1",
    "ephedrine": "CNC(C)C(O)C1=CC=CC=C1",
    "menthol": "CC(C)C1CCC(C)CC1O",
    "coumarin": "O=C1OC2=CC=CC=C2C=C1",
    "tryptamine": "NCCC1=CNC2=CC=CC=C12",
    "benzocaine": "CCOC(=O)C1=CC=C(N)C=C1",
    "pentanal": "CCCCC=O",
    "acrylamide": "NC(=O)C=C",
    "hydroxyurea": "NC(=O)NO",
    "azobenzene": "C1=CC=C(C=C1)N=NC1=CC=CC=C1",
}


def from_smiles(smiles: str, seed: int = 0) -> Atoms:
    """3D structure from SMILES (RDKit ETKDG + MMFF), hydrogens added.

    Raises:
        ValueError: RDKit missing, or the SMILES cannot be parsed / embedded.
    """
    try:
        from rdkit import Chem
        from rdkit.Chem import AllChem
    except ImportError as exc:
        raise ValueError("SMILES input needs RDKit: `pip install ase-distill[smiles]`.") from exc
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"Could not parse SMILES {smiles!r}.")
    mol = Chem.AddHs(mol)
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise ValueError(f"RDKit could not embed SMILES {smiles!r} in 3D.")
    AllChem.MMFFOptimizeMolecule(mol)
    positions = mol.GetConformer().GetPositions()
    return Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()], positions=positions)


def load_structure(spec: str) -> tuple[str, Atoms]:
    """Resolve a structure spec to ``(name, atoms)``.

    Accepted: an ASE g2 molecule name (``CH3CH2OH``), a name in :data:`NAMED_SMILES`
    (``aspirin``), ``smiles:<SMILES>``, or a file ``ase.io.read`` understands (first frame).

    Raises:
        ValueError: the spec is none of these, or the file cannot be read.
    """
    spec = spec.strip()
    if spec.startswith("smiles:"):
        smiles = spec[len("smiles:") :]
        return smiles, from_smiles(smiles)
    if spec.lower() in NAMED_SMILES:
        return spec.lower(), from_smiles(NAMED_SMILES[spec.lower()])
    from training.chemistry import HELD_OUT  # the evaluation molecules, by name

    if spec.lower() in HELD_OUT:
        return spec.lower(), from_smiles(HELD_OUT[spec.lower()])
    if spec in g2.names:
        return spec, g2[spec]
    path = Path(spec)
    if path.exists():
        from ase.io import read

        try:
            atoms = read(path, index=0)
        except Exception as exc:
            raise ValueError(f"Could not read structure file {path}: {exc}") from exc
        return path.stem, atoms
    raise ValueError(
        f"Unknown structure {spec!r}: not a file, not an ASE g2 molecule name (e.g. CH3CH2OH, "
        f"C6H6), not a known name ({', '.join(sorted(NAMED_SMILES)[:6])}, ...); give SMILES as "
        "'smiles:CCO'."
    )
