"""Name which of the lesson's four training failures the recorded curves show.

The rules read the per-epoch history (train_loss, valid_loss, error_rate) of
the run, in this order:

    lr_too_high      a loss is not finite, or valid loss ends far above its best or far
                     above the loss of guessing uniformly (ln of the number of classes)
    lr_too_low       error rate barely moved (by less than a fraction of where it started
                     and less than the valid set's sampling noise) from a level worth
                     improving (above the tolerance and distinguishable from zero),
                     and train loss stays above valid loss
    too_many_epochs  error rate got worse after its best by more than a tolerance
                     (and more than two standard errors of the valid set's error rate)
    too_few_epochs   train loss ends well above valid loss: still underfitting
    ok               none of the above
"""

from __future__ import annotations

import math
from dataclasses import asdict

from .params import DiagnoseParams

ADVICE = {
    "lr_too_high": "lower train.lr (try 10x smaller, or the LR finder's suggestion)",
    "lr_too_low": "raise train.lr (try 10x larger) or train for more epochs",
    "too_many_epochs": "train for fewer epochs (about where error_rate was best)",
    "too_few_epochs": "train for more epochs (raise train.epochs)",
    "ok": "nothing to change",
}


def diagnose(history: list[dict], t: DiagnoseParams, n_valid: int | None = None,
             n_classes: int | None = None) -> dict:
    """A verdict, the evidence behind it, and the fix the lesson suggests.

    `n_valid` turns error-rate changes into evidence only when they exceed sampling
    noise; `n_classes` gives the chance-level loss that a sane model never exceeds by far.
    """
    if not history:
        raise ValueError("diagnose: empty history")
    train = [h["train_loss"] for h in history]
    valid = [h["valid_loss"] for h in history]
    err = [h["error_rate"] for h in history]
    finite = all(math.isfinite(v) for v in train + valid)
    best_valid = min(valid) if finite else math.nan
    best_err = min(err)
    best_at = err.index(best_err)
    def noise(rate: float) -> float:  # two standard errors of an error rate on n_valid images
        return 2 * math.sqrt(rate * (1 - rate) / n_valid) if n_valid else 0.0

    chance = math.log(n_classes) if n_classes and n_classes > 1 else math.inf
    evidence = {
        "epochs": len(history),
        "final_train_loss": train[-1],
        "final_valid_loss": valid[-1],
        "best_valid_loss": best_valid,
        "first_error_rate": err[0],
        "best_error_rate": best_err,
        "best_epoch": best_at,
        "final_error_rate": err[-1],
        "error_rate_noise": noise(best_err),
        "chance_loss": chance if math.isfinite(chance) else None,
    }
    if not finite or valid[-1] > t.explode_ratio * min(best_valid, chance):
        verdict = "lr_too_high"
    elif (best_err > max(t.worsen_tolerance, noise(best_err))  # an error rate worth improving
          and err[0] - best_err < max(t.min_improvement * err[0], noise(err[0]))
          and train[-1] > valid[-1]):
        verdict = "lr_too_low"
    elif err[-1] - best_err > max(t.worsen_tolerance, noise(best_err)):
        verdict = "too_many_epochs"
    elif train[-1] > t.underfit_ratio * valid[-1]:
        verdict = "too_few_epochs"
    else:
        verdict = "ok"
    return {"verdict": verdict, "advice": ADVICE[verdict], "evidence": evidence,
            "thresholds": asdict(t)}
