"""Library-driven generation (issue 11): SMILES seeds, conformers, family trees, complexes."""

import json
from pathlib import Path

import numpy as np
import pytest

from training.config import (
    ComplexConfig,
    GenerateConfig,
    MDConfig,
    RattleConfig,
    RelaxConfig,
    TreeConfig,
)
from training.generate import generate, load_seeds, plan_tasks, read_dataset

pytest.importorskip("rdkit", reason="optional extra ase-distill[smiles]")

LIBRARY = [
    {"name": "ethanol", "smiles": "CCO", "category": "alcohol", "groups": ["alcohol"],
     "ring_system": "acyclic"},
    {"name": "acetamide", "smiles": "CC(N)=O", "category": "amide", "groups": ["amide"],
     "ring_system": "acyclic"},
]  # fmt: skip


def _config(tmp_path, **kw) -> GenerateConfig:
    library = tmp_path / "library.json"
    library.write_text(json.dumps(LIBRARY))
    return GenerateConfig(
        teacher="emt",  # EMT has (toy) H, C, N, O parameters: cheap enough for a test
        seeds=[],
        library=str(library),
        conformers=2,
        holdout_molecules=["methyl_carbamate"],
        output=str(tmp_path / "out"),
        prerelax_steps=5,
        md=MDConfig(temperatures=[300.0, 600.0], steps=8, interval=4),
        rattle=RattleConfig(sigmas=[0.05], count=2),
        relax=RelaxConfig(enabled=False),
        tree=TreeConfig(children=3, max_relax_steps=3),
        complexes=ComplexConfig(count=1, separations=[2.0, 3.0]),
        **kw,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lib")
    config = _config(tmp)
    return config, generate(config, progress=False), read_dataset(tmp / "out" / "dataset.xyz")


def test_every_library_entry_is_a_seed_and_md_runs_cycle_conformers(tmp_path):
    config = _config(tmp_path)
    seeds = load_seeds(config)
    assert list(seeds) == ["ethanol", "acetamide", "methyl_carbamate"]
    assert seeds["ethanol"].info["smiles"] == "CCO"
    md = [t for t in plan_tasks(config, list(seeds)) if t.kind == "md"]
    assert [t.variant for t in md if t.seed_name == "ethanol"] == [0, 1]
    kinds = {t.kind for t in plan_tasks(config, list(seeds))}
    assert kinds == {"md", "rattle", "tree", "complex"}
    config.library_size = 1  # the first entry only
    assert list(load_seeds(config)) == ["ethanol", "methyl_carbamate"]


def test_trees_and_complexes_are_labelled(generated):
    _, summary, frames = generated
    kinds = {f.info["kind"] for f in frames}
    assert {"tree", "complex", "md", "rattle"} <= kinds
    complexes = [f for f in frames if f.info["kind"] == "complex"]
    # a complex holds the seed and a partner: more atoms than the seed alone
    assert all(len(f) > 9 for f in complexes if f.info["seed"] == "ethanol")
    assert all(np.isfinite(f.arrays["REF_forces"]).all() for f in frames)


def test_held_out_molecule_is_only_a_test_molecule(generated):
    _, summary, frames = generated
    held = [f for f in frames if f.info["seed"] == "methyl_carbamate"]
    assert held and {f.info["split"] for f in held} == {"test_molecule"}
    assert summary["holdout_molecules"] == ["methyl_carbamate"]


def test_summary_counts_molecules_and_frames_by_category(generated):
    _, summary, frames = generated
    by_category = summary["by_library"]["by_category"]
    assert set(by_category) == {"alcohol", "amide"}
    assert sum(v["frames"] for v in by_category.values()) == sum(
        f.info["seed"] != "methyl_carbamate" for f in frames
    )
    assert summary["by_library"]["by_ring_system"]["acyclic"]["molecules"] == 2


def test_a_held_out_molecule_in_the_library_is_refused(tmp_path):
    config = _config(tmp_path)
    entry = {**LIBRARY[0], "name": "methyl_carbamate", "smiles": "COC(N)=O"}
    Path(config.library).write_text(json.dumps(LIBRARY + [entry]))
    with pytest.raises(ValueError, match="also a training seed"):
        load_seeds(config)


def test_missing_library_says_how_to_build_one(tmp_path):
    config = _config(tmp_path)
    config.library = str(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="training.chemistry"):
        load_seeds(config)


def test_heldout_report_per_molecule(generated, tmp_path):
    from training.heldout import main

    config, _, _ = generated
    out = tmp_path / "heldout.json"
    assert main([str(Path(config.output) / "dataset.xyz"), str(out), "ultra-tiny"]) == 0
    result = json.loads(out.read_text())
    assert result["molecules"] == ["methyl_carbamate"]
    row = result["summary"]["ultra-tiny"]
    assert row["worst_molecule_force_r2"] == pytest.approx(row["force_r2"])  # one molecule
    assert out.with_suffix(".png").is_file()
    assert "`ultra-tiny`" in out.with_suffix(".md").read_text()


def test_the_unseen_report_measures_the_validation_molecules_a_run_holds_out(generated, tmp_path):
    from training.heldout import main, unseen_md

    config, _, frames = generated
    chosen = unseen_md(frames, 1, "eth*")
    assert chosen and {f.info["seed"] for f in chosen} == {"ethanol"}
    assert {f.info["kind"] for f in chosen} == {"md"}  # the held-out goals' kind of frame
    out = tmp_path / "unseen.json"
    dataset = str(Path(config.output) / "dataset.xyz")
    assert main(["--unseen", "1", "eth*", dataset, str(out), "ultra-tiny"]) == 0
    result = json.loads(out.read_text())
    assert result["molecules"] == ["ethanol"] and result["split"].startswith("unseen_1_eth*")
    assert out.with_suffix(".png").is_file()
    with pytest.raises(ValueError, match="a count and a name pattern"):
        main(["--unseen", "x4*", dataset, str(out), "ultra-tiny"])


def test_combine_keeps_splits_and_refuses_other_teachers(generated, tmp_path):
    from training.combine import combine

    config, summary, frames = generated
    both = combine(tmp_path / "both", [config.output, config.output])
    assert both["frames"] == 2 * len(frames)
    assert both["splits"]["test_molecule"] == 2 * summary["splits"]["test_molecule"]
    again = combine(tmp_path / "again", [tmp_path / "both", config.output])  # a combination
    assert again["frames"] == 3 * len(frames)
    assert str(config.output) in again["parts"][str(tmp_path / "both")]["config"]  # its parts
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.xyz").write_bytes((Path(config.output) / "dataset.xyz").read_bytes())
    (other / "summary.json").write_text(json.dumps({**summary, "teacher": {"name": "x"}}))
    with pytest.raises(ValueError, match="different teachers"):
        combine(tmp_path / "bad", [config.output, other])


def test_combine_drops_a_seed_and_refuses_an_unknown_one(generated, tmp_path):
    from training.combine import combine

    config, summary, frames = generated
    seed = frames[0].info["seed"]
    kept = combine(tmp_path / "kept", [config.output], drop_seeds=(seed,))
    assert kept["frames"] == sum(f.info["seed"] != seed for f in frames)
    assert seed not in kept["molecules"] and kept["dropped_seeds"] == [seed]
    # the counts by category come from the parts' libraries, without the dropped seed
    same = combine(tmp_path / "same", [config.output])
    assert same["by_library"] == summary["by_library"]

    def molecules(s):
        return sum(v["molecules"] for v in s["by_library"]["by_category"].values())

    assert molecules(kept) == molecules(summary) - 1
    with pytest.raises(ValueError, match="no part holds"):
        combine(tmp_path / "bad", [config.output], drop_seeds=("not-a-seed",))


def test_a_run_recorded_before_new_config_keys_still_resumes(tmp_path):
    config = _config(tmp_path)
    config.tree, config.complexes = TreeConfig(), ComplexConfig()  # their defaults
    generate(config, progress=False, max_tasks=1)
    record_path = Path(config.output) / "generate.json"
    record = json.loads(record_path.read_text())
    for key in ("tree", "complexes", "library", "conformers"):
        record["config"].pop(key)  # as written before these keys existed
    record_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"different config \(conformers, library\)"):
        generate(config, progress=False, max_tasks=1)  # library and conformers are not default
    record["config"].update(library=config.library, conformers=config.conformers)
    record_path.write_text(json.dumps(record))
    assert not generate(config, progress=False, max_tasks=1)["complete"]  # resumed
