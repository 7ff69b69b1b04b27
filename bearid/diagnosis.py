"""Name which of the lesson's four training failures the recorded curves show.

The rules read the per-epoch history (train_loss, valid_loss, error_rate) of
the run, in this order:

    lr_too_high      valid loss is not finite, or ends far above its best
    lr_too_low       error rate barely moved from a level worth improving, and train
                     loss stays above valid loss
    too_many_epochs  error rate got worse after its best by more than a tolerance
                     (and more than two standard errors of the valid set's error rate)
    too_few_epochs   train loss ends well above valid loss: still underfitting
    ok               none of the above
"""

from __future__ import annotations

import math
from dataclasses import asdict

from .params import DiagnoseParams as Thresholds

ADVICE = {
    "lr_too_high": "lower train.lr (try 10x smaller, or the LR finder's suggestion)",
    "lr_too_low": "raise train.lr (try 10x larger) or train for more epochs",
    "too_many_epochs": "train for fewer epochs (about where error_rate was best)",
    "too_few_epochs": "train for more epochs (raise train.epochs)",
    "ok": "nothing to change",
}


def diagnose(history: list[dict], t: Thresholds = Thresholds(), n_valid: int | None = None) -> dict:
    """A verdict, the evidence behind it, and the fix the lesson suggests."""
    if not history:
        raise ValueError("diagnose: empty history")
    train = [h["train_loss"] for h in history]
    valid = [h["valid_loss"] for h in history]
    err = [h["error_rate"] for h in history]
    finite = all(math.isfinite(v) for v in train + valid)
    best_valid = min(valid) if finite else math.nan
    best_err = min(err)
    best_at = err.index(best_err)
    # a rise smaller than sampling noise on n_valid images is not evidence of overfitting
    noise = 2 * math.sqrt(best_err * (1 - best_err) / n_valid) if n_valid else 0.0
    evidence = {
        "epochs": len(history),
        "final_train_loss": train[-1],
        "final_valid_loss": valid[-1],
        "best_valid_loss": best_valid,
        "first_error_rate": err[0],
        "best_error_rate": best_err,
        "best_epoch": best_at,
        "final_error_rate": err[-1],
        "error_rate_noise": noise,
    }
    if not finite or valid[-1] > t.explode_ratio * best_valid:
        verdict = "lr_too_high"
    elif (best_err > t.worsen_tolerance and (err[0] - best_err) < t.min_improvement * err[0]
          and train[-1] > valid[-1]):
        verdict = "lr_too_low"
    elif err[-1] - best_err > max(t.worsen_tolerance, noise):
        verdict = "too_many_epochs"
    elif train[-1] > t.underfit_ratio * valid[-1]:
        verdict = "too_few_epochs"
    else:
        verdict = "ok"
    return {"verdict": verdict, "advice": ADVICE[verdict], "evidence": evidence,
            "thresholds": asdict(t)}
