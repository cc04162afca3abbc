"""The benchmark scripts' own logic, on made-up inputs: a benchmark that crashes after minutes of training is a bug."""

from __future__ import annotations

import importlib.util

from helpers.docs import ROOT


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_chain_reads_the_pseudo_labelled_stage_as_agreement():
    stages = [{"stage": "gans-dev", "best_val_accuracy": 0.5},
              {"stage": "gans-test", "best_val_pseudo_agreement": 0.9, "val_labels": "pseudo:self"}]
    assert load("demo_chain").best_scores(stages) == {"best_val_accuracy": {"gans-dev": 0.5},
                                                      "best_val_pseudo_agreement": {"gans-test": 0.9}}
