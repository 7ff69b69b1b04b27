"""interpret: confusion matrix, most-confused pairs, per-class scores, top losses and ranked cleaning candidates."""

from pathlib import Path

from bearid import params, runner
from bearid.interpret import interpret
from bearid.noise import CHI2_95
from bearid.progress import log


def main() -> None:
    p = params.load("interpret")
    result = interpret(Path("data/train"), Path("data/manifest.csv"), Path("data/crossval/probs.csv"),
                       Path("data/interpret"), p)
    for pair in result["most_confused"][:5]:
        log("interpret", f"most confused: {pair['actual']} taken for {pair['predicted']} x{pair['count']}")
    log("interpret", f"{p.method} on {p.probabilities} probabilities: of {result['n_ranked']} images, "
                     + ", ".join(f"{n} {reason}" for reason, n in result["flagged"].items()))
    noise = result["noise"]
    why = f"; 0 because {noise.why_no_faults()}" if noise.why_no_faults() else ""
    log("interpret", f"calibrated to the labels: temperature {noise.temperature:.2f}, label noise "
                     f"{noise.noise_rate:.1%} (likelihood ratio {noise.noise_evidence:.1f}, shown above {CHI2_95:g})")
    log("interpret", f"fold models agree with {noise.agreement:.0%} of the labels; p(label) <= {noise.threshold:g} "
                     f"for {noise.below} images where data without faults would show {noise.expected:.1f}: "
                     f"{noise.faults} evident faults (the policy's cap{why})")


if __name__ == "__main__":
    runner.run("interpret", main)
