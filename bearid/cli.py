"""`bearid <command> ...`: the tools beside the pipeline, one module each.

Each command's module has `main(argv) -> int` and parses its own arguments, so
importing the CLI stays cheap and a command loads only what it needs.
"""

from __future__ import annotations

import importlib
import sys

from .errors import USER_ERRORS

COMMANDS = {
    "sgd-demo": ("bearid.sgd", "fit a line with gradient descent, the lesson's look under the hood"),
    "predict": ("bearid.predict_cli", "classify image files with an exported model"),
    "serve": ("bearid.serve", "serve an exported model with the Starlette web app"),
    "review": ("bearid.review", "review cleaning candidates in the browser; decisions go to the decisions file"),
    "params-doc": ("bearid.params_doc", "write docs/parameters.md from the declarations in bearid/params.py"),
    "preset": ("bearid.presets", "switch params.yaml to a preset: real-photos (pretrained body, 128 px)"),
}


def usage() -> str:
    lines = ["usage: bearid <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(usage(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    try:
        return module.main(argv[1:])
    except USER_ERRORS as e:  # bad params or input: one line naming it, as the stages say it
        print(f"bearid {argv[0]}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
