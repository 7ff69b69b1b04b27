"""diagnosis.py: each of the lesson's failure modes, from a synthetic per-epoch history."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bearid.diagnosis import ADVICE, diagnose
from bearid.params import DiagnoseParams

T = DiagnoseParams(explode_ratio=3.0, min_improvement=0.1, worsen_tolerance=0.02, underfit_ratio=1.3)


def history(train: list[float], valid: list[float], err: list[float]) -> list[dict]:
    assert len(train) == len(valid) == len(err)
    return [{"phase": "unfrozen", "epoch": i, "train_loss": t, "valid_loss": v, "error_rate": e}
            for i, (t, v, e) in enumerate(zip(train, valid, err))]


CASES = {
    "nan_valid_loss": (history([2.0, 5.0, math.nan], [1.5, 9.0, math.nan], [0.5, 0.6, 0.67]), "lr_too_high"),
    "inf_train_loss": (history([2.0, math.inf], [1.5, 1.4], [0.5, 0.5]), "lr_too_high"),
    "exploding_valid_loss": (history([1.0, 0.6, 0.9], [0.8, 0.5, 2.0], [0.4, 0.2, 0.5]), "lr_too_high"),
    "lr_too_low": (history([1.20, 1.15, 1.10], [1.00, 0.98, 0.97], [0.60, 0.59, 0.58]), "lr_too_low"),
    "too_many_epochs": (history([0.9, 0.4, 0.2, 0.1], [0.8, 0.5, 0.3, 0.45], [0.5, 0.2, 0.1, 0.15]),
                        "too_many_epochs"),
    "too_few_epochs": (history([2.0, 1.5, 1.2], [1.5, 1.0, 0.8], [0.6, 0.4, 0.3]), "too_few_epochs"),
    "ok": (history([1.0, 0.5, 0.3], [0.8, 0.5, 0.35], [0.5, 0.2, 0.1]), "ok"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_verdicts(case):
    hist, expected = CASES[case]
    result = diagnose(hist, T)
    assert result["verdict"] == expected
    assert result["advice"] == ADVICE[expected]


def test_evidence_and_thresholds_are_reported():
    result = diagnose(CASES["too_many_epochs"][0], T)
    ev = result["evidence"]
    assert ev["epochs"] == 4 and ev["best_epoch"] == 2
    assert (ev["first_error_rate"], ev["best_error_rate"], ev["final_error_rate"]) == (0.5, 0.1, 0.15)
    assert (ev["final_train_loss"], ev["final_valid_loss"], ev["best_valid_loss"]) == (0.1, 0.45, 0.3)
    assert result["thresholds"] == {"explode_ratio": 3.0, "min_improvement": 0.1,
                                    "worsen_tolerance": 0.02, "underfit_ratio": 1.3}


def test_small_worsening_within_tolerance_is_ok():
    hist = history([1.0, 0.5, 0.3], [0.8, 0.5, 0.35], [0.5, 0.10, 0.11])
    assert diagnose(hist, T)["verdict"] == "ok"
    assert diagnose(hist, replace(T, worsen_tolerance=0.005))["verdict"] == "too_many_epochs"


def test_already_perfect_run_is_not_lr_too_low():
    """Pretrained on easy classes (the lesson's bears), error can be 0 from the first epoch while
    fastai's train loss (dropout, augmentation) stays above the valid loss: nothing to fix."""
    hist = history([0.40, 0.20, 0.12], [0.05, 0.03, 0.02], [0.0, 0.0, 0.0])
    assert diagnose(hist, T)["verdict"] != "lr_too_low"


def test_empty_history_is_an_error():
    with pytest.raises(ValueError, match="empty history"):
        diagnose([], T)


def test_valid_loss_far_above_chance_is_lr_too_high():
    """lr=10 can leave a finite, flat valid loss of ~20 on two classes: confidently wrong,
    far worse than guessing (ln 2), though never far above its own best."""
    hist = history([2500.0, 2600.0], [22.0, 24.0], [0.5, 0.45])
    assert diagnose(hist, T)["verdict"] != "lr_too_high"
    result = diagnose(hist, T, n_classes=2)
    assert result["verdict"] == "lr_too_high"
    assert result["evidence"]["chance_loss"] == pytest.approx(math.log(2))


def test_error_change_within_sampling_noise_is_lr_too_low():
    """0.5 -> 0.4 on 40 valid images is within two standard errors (0.16): no real progress."""
    hist = history([1.2, 1.15, 1.10], [0.78, 0.77, 0.76], [0.5, 0.45, 0.4])
    assert diagnose(hist, T)["verdict"] != "lr_too_low"
    assert diagnose(hist, T, n_valid=40)["verdict"] == "lr_too_low"
    assert diagnose(hist, T, n_valid=4000)["verdict"] != "lr_too_low"


def test_a_few_errors_on_a_small_valid_set_are_not_worth_improving():
    """Fine-tuning a good body: 2 then 1 errors in 40 cannot show a slow learning rate."""
    hist = history([0.30, 0.16], [0.10, 0.095], [0.05, 0.025])
    assert diagnose(hist, T, n_valid=40)["verdict"] == "too_few_epochs"


def test_recorded_one_epoch_fine_tune():
    """tests/test_training.py's one-epoch fine-tune as recorded on 2026-12-01 on a 2-core x86-64 machine
    (frozen epoch, then one unfrozen): ok. The machine that first wrote that test got too_few_epochs from the
    same run: the final train loss sits near the underfit rule's 1.3x valid loss on one CPU and far below it on
    another. So the real-run test accepts either verdict, and the rule is pinned here on recorded curves."""
    recorded = history([0.4966, 0.0352], [0.1406, 0.1312], [0.075, 0.075])
    assert diagnose(recorded, T, n_valid=40, n_classes=2)["verdict"] == "ok"
    underfit = history([0.4966, 1.31 * 0.1312], [0.1406, 0.1312], [0.075, 0.075])  # the other side of the rule
    assert diagnose(underfit, T, n_valid=40, n_classes=2)["verdict"] == "too_few_epochs"
