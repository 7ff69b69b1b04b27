"""interpret: confusion matrix, most-confused pairs, top losses and ranked cleaning candidates."""

from pathlib import Path

from bearid import params, stage
from bearid.interpret import interpret
from bearid.progress import log


def main() -> None:
    p = params.load("interpret")
    result = interpret(Path("data/train"), Path("data/manifest.csv"), Path("data/interpret"),
                       top_k=p.top_k, min_confused=p.min_confused, batch_size=p.batch_size)
    for pair in result["most_confused"][:5]:
        log("interpret", f"most confused: {pair['actual']} taken for {pair['predicted']} x{pair['count']}")


if __name__ == "__main__":
    stage.run("interpret", main)
