"""bench/cifar10_study.py: run names and the guard against resuming a run with
other settings (the training itself is exercised by the study, not here)."""

import argparse
import json

import pytest

import bench_scripts


@pytest.fixture(scope="module")
def study():
    return bench_scripts.load("cifar10_study")


def test_the_default_budget_keeps_the_short_name(study):
    assert study.run_name("admm_pattern", 1, 0) == "admm_pattern_g1_s0"
    assert study.run_name("magnitude", 16, 2, study.DEFAULT_EPOCHS) == "magnitude_g16_s2"
    assert study.run_name("admm_pattern", 1, 0, (4, 16)) == "admm_pattern_g1_s0_e4+16"
    assert study.run_name("admm_pattern", 1, 0, (4, 16)) != study.run_name(
        "admm_pattern", 1, 0, (8, 12))


def _args(study, **changes):
    args = study.parse_args(["train", "--data", "x.tar.gz", "--method", "admm_pattern",
                             "--weight-decay", "0.005"])
    return argparse.Namespace(**{**vars(args), **changes})


def test_a_run_resumes_only_with_its_own_settings(study, tmp_path):
    settings = study.recipe(_args(study))
    study.claim_workdir(str(tmp_path), settings)
    with open(tmp_path / "settings.json") as f:
        assert json.load(f) == settings
    study.claim_workdir(str(tmp_path), settings)  # the same run: resumes
    other = study.recipe(_args(study, rho=30.0))
    with pytest.raises(SystemExit, match=r"rho=30.0 \(the run has 15.0\)"):
        study.claim_workdir(str(tmp_path), other)
    with open(tmp_path / "settings.json") as f:  # the run's own settings stay
        assert json.load(f) == settings
