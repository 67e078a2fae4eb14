"""The chaos runner's results JSON as the Markdown table of docs/guarantees.md:
`python -m tests.chaos.markdown .run/chaos/results.json`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def render(document: dict[str, Any]) -> str:
    load = ", ".join(f"{figure:.1f}" for figure in document["load_average"])
    lines = [
        f"{document['runs']} run(s) x {document['records_per_layer_per_run']:,} records per layer, "
        f"{document['elapsed_s'] / 60:.0f} min, load average at the end {load}.",
        "",
        "| run | fault | stage | acknowledged | landed | missing | duplicated "
        "| seconds to recover | fault took (s) | load (1 min) |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for result in document["results"]:
        for stage in result["stages"]:
            recover = stage["recover_s"]
            lines.append(
                f"| {result['run']} | {result['fault']} | {stage['stage']} "
                f"| {stage['acknowledged']:,} | {stage['landed']:,} | {stage['missing']:,} "
                f"| {stage['duplicated']:,} | {'-' if recover is None else f'{recover:.1f}'} "
                f"| {result.get('took_s', 0):.0f} | {result.get('load_average', [0])[0]:.1f} |"
            )
    failures = document["failures"]
    lines += ["", "Failures: " + ("none" if not failures else "; ".join(failures))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = argv if argv is not None else sys.argv[1:]
    if len(paths) != 1:
        print("usage: python -m tests.chaos.markdown RESULTS.json", file=sys.stderr)
        return 2
    print(render(json.loads(Path(paths[0]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
