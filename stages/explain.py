"""Stage `explain`: how bn, gn, ln and in group a tiny batch → explain/norms.png and .md.

Needs no data and no training: the numbers come from the models' own norm layers.
"""

from pathlib import Path

from normlab import explain
from normlab.errors import run_stage
from normlab.io import write_text

PNG = Path("explain/norms.png")
TABLE = Path("explain/norms.md")


def main() -> None:
    results = explain.explain_all()
    explain.figure(results, PNG)
    write_text(TABLE, explain.markdown(results))
    print(
        f"wrote {PNG} and {TABLE}: {', '.join(f'{r.norm} {len(r.groups)} groups' for r in results)}"
    )


if __name__ == "__main__":
    run_stage(main)
