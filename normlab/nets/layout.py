"""The layout language: a network typed as one line, e.g. `C8 C16 P T8 C16 C16 C24p GAP H`.

Why: the seeds' course writes its nets as such strings, and the seeds' MNIST nets differ from
normlab's only in widths, padding, where dropout sits and whether a 1×1 has a norm (004 adds
residuals). One small grammar lets a user rerun any of them, or try their own, with
`-S train.model="…"` and no new class. Tokens are separated by spaces and read from the input
image to the head:

    C<w>    3×3 block to w channels: Conv → ReLU → Norm → Dropout (a blocks.Block)
    T<w>    1×1 block to w channels, the same layers: a transition with its norm and ReLU
    c<w>    bare 3×3 conv to w channels: no ReLU, no norm, no dropout
    t<w>    bare 1×1 conv: a transition without norm and ReLU (seeds 002 and 004)
    P       2×2 max-pool; an odd side is floored (7 → 3)
    [ … ]   residual: the C/T/c/t layers inside, added to their input (through a bare 1×1
            conv where the width changes), then Norm → ReLU → Dropout on the sum (seed 004)
    GAP     global average pooling to 1×1; only the head may follow it
    H, h    the head, last: a 1×1 conv to the classes, with (H) or without (h) a bias

Suffixes on C, T, c, t and `]`: `p` pads a 3×3 conv by 1 so the map keeps its side (unpadded,
each 3×3 trims 2: 28 → 26); `-` leaves out the dropout after a block or a residual sum (seed
002 has it after some blocks only). `C24p-` is a padded 3×3 block without dropout. DVC's `-S`
reads a bare `[` as a list: quote a residual layout twice there,
`-S 'train.model="C16p [C16p c16p] GAP H"'`.

Two knobs of `build` apply to every layer: `order` is conv-relu-norm (normlab's and the MNIST
seeds') or conv-norm-relu (004: Conv → Norm → ReLU → Dropout); `bias=True` gives every conv a
bias (004). Otherwise only norm=none does: a norm's shift makes a bias redundant, and the
MNIST seeds have none. `parse` checks what the layout alone decides; normlab.nets.build checks
what needs the input too (`groups` dividing each norm's width, maps shrinking below 1×1). Each
problem is one NormlabError line naming the token and why.

This module is the language only and imports no torch: params validation parses a layout
without loading it.
"""

import re
from dataclasses import dataclass, replace
from typing import Literal

from normlab.errors import InputError

# normlab's own MNIST net, `model: cnn`: the write-ups' style of CNN, 8,690 parameters with any
# norm (8,602 with norm=none). Channels 8, 16, 8 (1×1 squeeze), 16, 16, 24, then global average
# pooling and a 1×1 head; valid 3×3 convs but the last (the seed pads its last conv), 28×28 →
# 26 → 24 → pool 12 → 12 → 10 → 8 → 8, receptive field 18.
CNN = "C8 C16 P T8 C16 C16 C24p GAP H"
# `model: cnn-pad` (Fashion-MNIST's): the same weights, every 3×3 conv padded and a second pool,
# 28 → 28 → 28 → pool 14 → 14 → 14 → 14 → pool 7 → 7, receptive field 24. Each weight sees 1.5×
# the positions: that helps on Fashion-MNIST, where the net underfits, not on MNIST
# (measurements: docs/fashion-mnist.md).
CNN_PAD = "C8p C16p P T8 C16p C16p P C24p GAP H"
# The models a recipe names rather than types: cnn and cnn-pad name the layouts above; resnet
# is a net of its own (normlab.nets.resnet), which the grammar cannot write.
NAMED = {"cnn": CNN, "cnn-pad": CNN_PAD}
RESNET = "resnet"
MODELS = (*NAMED, RESNET)
# The seeds' nets, as ../shared/seeds/README.md reads their code (bn, gn and ln alike):
# 001 (rajy4683 EVA6 S6): 3×3 pad 1, dropout after every block, GN 4 groups; 7,288 parameters.
SEED_001 = "C8p C8p P C8p C16p P C16p C16p P GAP h"
# 002: the write-up's printed summary; no dropout after its 2nd and 5th blocks, GN 2 groups; 7,614.
SEED_002 = "C10 C20- t10 P C20 C12- C12 GAP h"
# 003 (anilbhatt1 EVA6 S6): 3×3 pad 0, dropout after every block, GN C/4 = 4 groups; 9,680.
SEED_003 = "C16 C16 P C16 C16 C16 GAP h"
# 004 (Madhur-1 ERA S8, CIFAR-10): build with order="conv-norm-relu", bias=True, GN 4 groups;
# 40,394, as its notebook's torchsummary (the 1×1s carry a bias and no norm).
SEED_004 = "C16p C32p t16 P [C16p C32p c32p] t16 P [C16p C32p c32p] GAP H"

ALLOWED = (
    "C<w> (3×3 block), T<w> (1×1 block), c<w> / t<w> (bare 3×3 / 1×1 conv), "
    "suffix p (padded) or - (no dropout), P (max-pool), [ … ] (residual), GAP, "
    "H / h (head with / without bias)"
)
WORD = re.compile(r"\[|\][^\s\[\]]*|[^\s\[\]]+")  # "[C16p" is two tokens, "]-" one
LAYER = re.compile(r"([CTct])([0-9]+)(.*)")  # ASCII digits: \d would take "８"
MAX_WIDTH = 4096  # channels; far above these small nets, far below a typo that fills memory
Kind = Literal["block", "conv", "pool", "gap", "head", "open", "close", "residual"]


@dataclass(frozen=True)
class Token:
    """One layer of a layout; `text` and `at` (1-based position) name it in error messages."""

    text: str
    at: int
    kind: Kind
    width: int = 0  # output channels of a block or conv
    kernel: int = 3
    pad: int = 0
    dropout: bool = True  # a block's or residual's dropout; False for the `-` suffix
    bias: bool = False  # the head's bias (H)
    body: tuple["Token", ...] = ()  # a residual's layers


def _fail(text: str, at: int, why: str) -> InputError:
    return InputError("model", f"token {at} '{text}': {why}")


def error(token: Token, why: str) -> InputError:
    """The one-line error for a bad `token`: its text, its position and why."""
    return _fail(token.text, token.at, why)


def _layer_token(found: re.Match[str], at: int) -> Token:
    """A C/T/c/t token: its width and its suffixes."""
    text = found.group(0)
    letter, digits, suffix = found.groups()
    token = Token(
        text,
        at,
        "block" if letter in "CT" else "conv",
        width=int(digits),
        kernel=3 if letter in "Cc" else 1,
        pad=int("p" in suffix),
        dropout="-" not in suffix,
    )
    if not 1 <= token.width <= MAX_WIDTH:
        raise error(token, f"a width must be 1 to {MAX_WIDTH} channels")
    if set(suffix) - {"p", "-"} or len(set(suffix)) < len(suffix):
        raise error(token, f"suffix '{suffix}' is not p (padded), - (no dropout) or p-")
    if token.pad and token.kernel == 1:
        raise error(token, "a 1×1 conv has nothing to pad (p is for C and c)")
    if not token.dropout and token.kind == "conv":
        raise error(token, "a bare conv has no dropout to leave out (- is for C, T and ])")
    return token


def _token(text: str, at: int) -> Token:
    """One word of the layout as a token; '[' and ']' are grouped into residuals later."""
    simple = {"P": "pool", "GAP": "gap", "H": "head", "h": "head", "[": "open"}
    if text in simple:
        return Token(text, at, simple[text], bias=text == "H")
    if text.startswith("]"):
        token = Token(text, at, "close", dropout=text != "]-")
        if text not in ("]", "]-"):
            raise error(token, "only - (no dropout after the sum) may follow ]")
        return token
    found = LAYER.fullmatch(text)
    if found:
        return _layer_token(found, at)
    raise _fail(text, at, f"unknown token (allowed: {ALLOWED})")


def _nest(flat: list[Token]) -> list[Token]:
    """Group each '[' … ']' into one residual token holding its layers."""
    tokens: list[Token] = []
    opened: Token | None = None
    body: list[Token] = []
    for token in flat:
        if token.kind == "open":
            if opened:
                raise error(token, f"a residual inside the residual at token {opened.at}")
            opened, body = token, []
        elif token.kind == "close":
            if not opened:
                raise error(token, "closes no '['")
            if not body:
                raise error(opened, "an empty residual")
            text = f"[{' '.join(b.text for b in body)}{token.text}"
            tokens.append(
                replace(opened, text=text, kind="residual", dropout=token.dropout, body=tuple(body))
            )
            opened = None
        elif opened:
            if token.kind not in ("block", "conv"):
                raise error(token, f"only C, T, c and t may sit inside the [ at token {opened.at}")
            body.append(token)
        else:
            tokens.append(token)
    if opened:
        raise error(opened, "is never closed by ']'")
    return tokens


def _check_ends(tokens: list[Token]) -> None:
    """The layout ends `GAP H` (or `GAP h`), and has a norm somewhere to study."""
    *layers, last = tokens
    if last.kind != "head":
        raise error(last, "the layout must end with the head: … GAP H (or GAP h, no bias)")
    for token in layers[:-1]:
        if token.kind == "head":
            raise error(token, "the head must be the last token")
        if token.kind == "gap":
            raise error(token, "only the head may follow GAP")
    if not layers or layers[-1].kind != "gap":
        raise error(last, "missing GAP before the head (the head acts on a 1×1 map)")
    if not any(token.kind in ("block", "residual") for token in layers):
        raise InputError("model", "no C, T or [ ] in the layout: the norm would act nowhere")


def parse(layout: str) -> list[Token]:
    """The layout's tokens, residuals grouped; NormlabError naming the first bad token."""
    words = WORD.findall(layout)
    if not words:
        raise InputError("model", f"{layout!r} is an empty layout (allowed tokens: {ALLOWED})")
    tokens = _nest([_token(text, at) for at, text in enumerate(words, start=1)])
    _check_ends(tokens)
    return tokens
