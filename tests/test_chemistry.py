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


def test_held_out_molecules_are_in_no_list_in_any_tautomer(library):
    assert chemistry.held_out_tautomers(library) == {}


def test_the_tautomer_check_finds_the_hypoxanthine_of_the_committed_library():
    # the first library held hypoxanthine's 1,7-H tautomer; the third generation drops it
    found = chemistry.held_out_tautomers([{"name": "x", "smiles": "O=c1nc[nH]c2nc[nH]c12"}])
    assert found == {"x": "hypoxanthine"}
    assert chemistry.held_out_tautomers([{"name": "y", "smiles": "c1ncc2[nH]cnc2n1"}]) == {}


def test_substituted_rings_are_new_acceptable_and_no_held_out_tautomer():
    exclude = ["Cc1ccccc1"]
    products = chemistry.substituted_rings(60, seed=1, exclude=exclude)
    assert len(products) == len(set(products)) == 60
    assert all(chemistry.canonical(s) == s for s in products)
    assert "Cc1ccccc1" not in products
    entries = [{"name": s, "smiles": s} for s in products]
    assert chemistry.held_out_tautomers(entries) == {}
    # the full enumeration reaches two held-out molecules; neither may come out
    everything = chemistry.substituted_rings(10_000)
    assert {"Nc1ncc2[nH]cnc2n1", "NC(=O)c1cccnc1"}.isdisjoint(everything)


def test_disubstituted_rings_carry_two_groups_and_no_held_out_tautomer():
    products = chemistry.disubstituted_rings(40, seed=2, exclude=["Cc1ccccc1C"])
    assert len(products) == len(set(products)) == 40 and "Cc1ccccc1C" not in products
    assert all(chemistry.canonical(s) == s for s in products)
    assert chemistry.held_out_tautomers([{"name": s, "smiles": s} for s in products]) == {}
    assert chemistry._attach_many("c1ccccc1", [0, 2], ["C", "O"]) == "Cc1cccc(O)c1"


def test_the_fourth_generation_is_new_prefixed_and_leak_free():
    base = [
        {"name": "a", "smiles": "CC(=O)Nc1ccccc1"},
        {"name": "leak", "smiles": "O=c1nc[nH]c2nc[nH]c12"},  # a hypoxanthine tautomer
        {"name": "b", "smiles": "OCCc1ccncc1"},
    ]
    library = chemistry.build_fourth_generation([base], {"rings": 5, "pairs": 5, "recombined": 3})
    names = [e["name"] for e in library]
    assert all(n.startswith("x4") for n in names) and len(set(names)) == len(names)
    assert {e["category"] for e in library} >= {"substituted_ring", "disubstituted_ring"}
    assert {e["smiles"] for e in library}.isdisjoint(e["smiles"] for e in base)
    assert chemistry.held_out_tautomers(library) == {}


def test_ring_positions_are_one_per_symmetry_class():
    assert len(chemistry.ring_positions("c1ccccc1")) == 1
    assert len(chemistry.ring_positions("c1ccncc1")) == 3
    assert len(chemistry.ring_positions("c1c[nH]cn1")) == 4  # the NH is a position too


def test_the_extension_skips_labelled_entries_and_leaks():
    base = [
        {"name": "a", "smiles": "CCO"},
        {"name": "leak", "smiles": "O=c1nc[nH]c2nc[nH]c12"},
        {"name": "b", "smiles": "CCN"},
    ]
    extension = chemistry.build_extension(base, used=1, n_substituted=5)
    names = [e["name"] for e in extension]
    assert names[:1] == ["b"] and len(names) == 6
    assert {e["category"] for e in extension[1:]} == {"substituted_ring"}


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
