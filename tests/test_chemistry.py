"""The CHNO molecule library: coverage, held-out molecules kept out, peptides, conformers."""

import pytest

pytest.importorskip("rdkit")

from training import chemistry  # noqa: E402


@pytest.fixture(scope="module")
def library():
    return chemistry.build_library(n_recombined=120)


def test_at_least_400_distinct_acceptable_molecules(library):
    smiles = [e["smiles"] for e in library]
    assert len(smiles) == len(set(smiles)) >= 400
    assert all(chemistry.canonical(s) == s for s in smiles)  # H/C/N/O, neutral, <= 60 atoms


def test_held_out_molecules_are_in_no_list(library):
    held_out = {chemistry.canonical(s) for s in chemistry.HELD_OUT.values()}
    assert held_out.isdisjoint(e["smiles"] for e in library)


def test_recombination_never_rebuilds_an_excluded_molecule():
    products = chemistry.brics_recombinations(
        ["CC(=O)Oc1ccccc1", "OC(=O)c1ccccc1"], n=50, exclude=chemistry.HELD_OUT.values()
    )
    held_out = {chemistry.canonical(s) for s in chemistry.HELD_OUT.values()}
    assert products and held_out.isdisjoint(products)


def test_categories_the_students_missed_are_covered(library):
    summary = chemistry.summarize(library)
    counts = summary["by_category"]
    assert counts["capped_peptide"] >= 50 and counts["amino_acid"] == 18  # no Cys, Met (S)
    assert counts["nucleobase_purine_pyrimidine"] >= 15
    for group in ("amide", "urea", "carbamate", "ester", "lactone", "lactam", "nitro", "oxime"):
        assert summary["by_group"].get(group, 0) > 0, group
    assert summary["by_ring_system"]["fused"] > 0


def test_capped_peptides_have_the_right_formula():
    from rdkit import Chem
    from rdkit.Chem.rdMolDescriptors import CalcMolFormula

    def formula(smiles):
        return CalcMolFormula(Chem.MolFromSmiles(smiles))

    assert formula(chemistry.capped_peptide(["ala"])) == "C6H12N2O2"  # alanine dipeptide
    assert formula(chemistry.capped_peptide(["pro", "pro"])) == "C13H21N3O3"
    assert formula(chemistry.capped_peptide(["gly", "trp"])) == "C16H20N4O3"


def test_describe_and_conformers():
    assert chemistry.describe("Cn1cnc2c1c(=O)n(C)c(=O)n2C")["ring_system"] == "fused"
    assert chemistry.describe("CCO") == {"groups": ["alcohol"], "ring_system": "acyclic"}
    confs = chemistry.conformers("CC(=O)NC(C)C(=O)NC", n=3)
    assert 1 <= len(confs) <= 3 and len(confs[0]) == 22


def test_sulfur_and_ions_are_rejected():
    assert chemistry.canonical("CSC") is None
    assert chemistry.canonical("C[NH3+]") is None
    assert chemistry.canonical("not a smiles") is None
