"""Write .dvc/plots_template.html: DVC's `dvc plots show` page with vega inlined (draws offline).

Why: DVC's page loads vega, vega-lite and vega-embed from a CDN (dvc#5679), so on a machine
without internet every chart is blank. `make install` runs `npm ci` (package.json pins the
versions DVC's page loads) and then this script, which inlines the three minified builds from
node_modules/ into a template that `.dvc/config.local` names (`plots.html_template`). The template
has no `{scripts}` placeholder, so DVC's CDN <script> tags are left out of the page.

If node_modules/ is missing (no npm, or no registry), the template written is DVC's own page
(CDN scripts): `dvc plots show` keeps working and draws when online. A missing template file
would not be a fallback: DVC would then fail with "HTML template has to contain '{plot_divs}'".
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / ".dvc" / "plots_template.html"
# The builds DVC's page loads (dvc_render/vega.py), in load order: vega-embed needs the other two.
LIBRARIES = (
    "vega/build/vega.min.js",
    "vega-lite/build/vega-lite.min.js",
    "vega-embed/build/vega-embed.min.js",
)
# Marks an inlined template, so tests can tell it from the CDN fallback.
OFFLINE_MARK = "<!-- normlab: vega, vega-lite and vega-embed inlined for offline viewing -->"

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    {head}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def inline_script(path: Path) -> str:
    """One <script> element holding a minified library, without its source-map comment."""
    code = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", path.read_text(encoding="utf8"))
    if "</script" in code or re.search(r"\{(scripts|plot_divs|refresh_tag)\}", code):
        raise ValueError(f"{path}: cannot be inlined (holds '</script' or a DVC placeholder)")
    return f"<script>/* {path.parent.parent.name} */\n{code}</script>"


def render(modules: Path) -> tuple[str, bool]:
    """The template text, and whether the libraries are inlined (False: DVC's CDN page)."""
    paths = [modules / lib for lib in LIBRARIES]
    if all(p.is_file() for p in paths):
        return PAGE.format(head="\n".join([OFFLINE_MARK, *map(inline_script, paths)])), True
    return PAGE.format(head="{scripts}"), False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modules", type=Path, default=ROOT / "node_modules", help="npm's node_modules folder"
    )
    parser.add_argument("--out", type=Path, default=TEMPLATE, help="template to write")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from normlab.io import write_text

    text, offline = render(args.modules)
    write_text(args.out, text)
    if offline:
        print(
            f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}: "
            f"vega, vega-lite, vega-embed inlined ({len(text) / 1e6:.1f} MB); "
            "`dvc plots show` draws offline"
        )
    else:
        print(
            f"warning: {args.modules} lacks {', '.join(LIBRARIES)} (npm missing or offline?): "
            f"wrote {args.out} with DVC's CDN scripts; `dvc plots show` draws only when online. "
            "Fix: `npm ci`, then rerun this.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
