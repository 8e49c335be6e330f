"""The explainer's numbers against a hand computation over each norm's stated axes (numpy)."""

import numpy as np
import pytest
import torch

from normlab import explain

EPS = 1e-5
# Axes each norm pools over, after viewing N×C×H×W as N×G×(C/G)×H×W (G = groups; ln: 1; in: C).
AXES = {"bn": (0, 2, 3, 4), "gn": (2, 3, 4), "ln": (2, 3, 4), "in": (2, 3, 4)}


def by_hand(norm: str, x: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalized x, and the mean and std broadcast back to every element."""
    n, c, h, w = x.shape
    g = {"bn": c, "gn": groups, "ln": 1, "in": c}[norm]
    v = x.astype(np.float64).reshape(n, g, c // g, h, w)
    mean = v.mean(axis=AXES[norm], keepdims=True)
    std = np.sqrt(v.var(axis=AXES[norm], keepdims=True) + EPS)  # biased variance, as the layers use
    shape = (n, g, c // g, h, w)
    return (
        ((v - mean) / std).reshape(x.shape),
        np.broadcast_to(mean, shape).reshape(x.shape),
        np.broadcast_to(std, shape).reshape(x.shape),
    )


def per_element(r: explain.Explained, field: str) -> np.ndarray:
    """A group statistic spread back onto the N×C×H×W elements it belongs to."""
    stat = np.array([getattr(g, field) for g in r.groups])
    return np.broadcast_to(stat[r.group_of][:, :, None, None], r.x.shape)


@pytest.mark.parametrize(
    "x, groups",
    [
        (explain.SAMPLE, 2),  # the explainer's own batch: here gn (2 groups of 1 channel) equals in
        (torch.randn(3, 4, 3, 2, generator=torch.Generator().manual_seed(0)) * 3 + 1, 2),  # gn ≠ in
    ],
    ids=["sample", "random-4-channels"],
)
@pytest.mark.parametrize("norm", explain.NORMS)
def test_matches_hand_computation(norm, x, groups):
    r = explain.explain(norm, x, groups)
    y, mean, std = by_hand(norm, x.numpy(), groups)
    np.testing.assert_allclose(r.y, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(per_element(r, "mean"), mean, rtol=1e-5)
    np.testing.assert_allclose(per_element(r, "std"), std, rtol=1e-5)
    # Each group's listed inputs and normalized values are its own elements, in N, C, H, W order.
    for k, g in enumerate(r.groups):
        members = r.group_of == k
        np.testing.assert_array_equal(g.inputs, r.x[members].ravel())
        np.testing.assert_allclose(g.normalized, y[members].ravel(), rtol=1e-5, atol=1e-5)


def test_group_counts_follow_the_axes():
    n, c = explain.SAMPLE.shape[:2]
    counts = {r.norm: len(r.groups) for r in explain.explain_all()}
    assert counts == {"bn": c, "gn": n * explain.GROUPS, "ln": n, "in": n * c}


def by_hand_rows(norm: str, x: np.ndarray, groups: int) -> list[str]:
    """The table's rows for `norm`, from by_hand and the axes alone: group k's members are the
    (image, channel) planes of the k-th slice of the N×G×(C/G) view (bn: channel k of every
    image), their inputs in N, C, H, W order, then mean, std and normalized values."""
    n, c = x.shape[:2]
    y, mean, std = by_hand(norm, x, groups)
    if norm == "bn":
        planes = [[(i, k) for i in range(n)] for k in range(c)]
    else:
        g = {"gn": groups, "ln": 1, "in": c}[norm]
        planes = [
            [(i, j) for j in range(k * c // g, (k + 1) * c // g)]
            for i in range(n)
            for k in range(g)
        ]
    rows = []
    for k, members in enumerate(planes):
        images, channels = (sorted({m[axis] for m in members}) for axis in (0, 1))
        first = members[0]
        inputs = " ".join(f"{v:g}" for i, j in members for v in x[i, j].ravel())
        normalized = " ".join(f"{v:+.3f}" for i, j in members for v in y[i, j].ravel())
        rows.append(
            f"| {k + 1} | {ids(images, 'image')}, {ids(channels, 'channel')} | {inputs} | "
            f"{mean[first].flat[0]:.4f} | {std[first].flat[0]:.4f} | {normalized} |"
        )
    return rows


def ids(values: list[int], word: str) -> str:
    """[2] → 'image 2'; [0, 1, 2, 3] → 'images 0–3' (every group here is a consecutive run)."""
    assert values == list(range(values[0], values[-1] + 1))
    return f"{word} {values[0]}" if len(values) == 1 else f"{word}s {values[0]}–{values[-1]}"


def test_stage_writes_figure_and_table(tmp_path, monkeypatch):
    from stages import explain as stage

    monkeypatch.chdir(tmp_path)
    stage.main()
    assert stage.PNG.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = stage.TABLE.read_text()
    x = explain.SAMPLE.numpy()
    for norm in explain.NORMS:
        section = table.split(f"## `{norm}`")[1].split("\n## ")[0]
        listed = [
            line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()
        ]
        assert listed == by_hand_rows(norm, x, explain.GROUPS), norm
