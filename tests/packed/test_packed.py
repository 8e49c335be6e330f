"""Packed runs (normlab.packed, issue 17): K runs trained as one wide model are the same
experiments as the K trained alone by loop.fit. Float32, CPU, synthetic MNIST-sized data.

What "the same" can be checked to, and so the tolerances:

- Random draws do not depend on the weights, so they are compared bitwise over two epochs of
  40 steps (150 in the slow variant): each run's every batch (shuffle, rotation) and every
  dropout mask are the ones it draws alone.
- Arithmetic: the wide model sums in other orders than the solo one (a grouped conv vs a conv,
  a cross-entropy over N×classes×K vs N×classes), so each op differs by float32 rounding
  (~1e-7 relative; 2e-7 measured on a first step's logits). Training this net amplifies such
  differences by jumps, not smoothly: ReLU sits before the norm, so a pre-activation that
  rounds to one side of 0 instead of the other routes a whole gradient through a (nearly
  dead) channel, BatchNorm's 1/sqrt(var + eps) magnifying it. A solo run whose initial weights
  move by one ulp (2^-24) ends 300 steps later 2e-2 to 6e-1 away from the unmoved run (seeds
  0-2, batch 16); packed or not (even K = 1) the runs part by such jumps within 8-25 steps
  (bn, at lr 0.1 as at 0.01), ln and gn within 10-100. So no tolerance over hundreds of steps
  can tell rounding from a mistake, and the arithmetic is compared over 2 epochs of 2 steps
  (reseeding, the schedule, momentum and running statistics across an epoch boundary):
  weights and buffers within REL = 1e-4 of each tensor's largest |value| (measured ≤ 6e-6 in
  28 runs) + FLOOR = 1e-5 (a tensor still near 0, such as a BatchNorm shift of ~4e-3 after 4
  steps, keeps the absolute rounding error of its gradient, a sum over N·H·W terms: 9e-7
  measured), history values within 1e-5 relative (measured ≤ 2e-7). A packing mistake moves
  them by far more within those steps: another mask, batch or shuffle by ~1e-1; a run's
  l1 = 5e-3 or l2 = 3e-2 acting on another run by ≥ 2e-3 of a tensor's largest |value|.
"""

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import parse, write_dataset
from normlab.config import Params
from normlab.errors import DivergedError, NormlabError
from normlab.nets import blocks
from normlab.nets.build import build
from normlab.packed import fit as packed
from normlab.packed import merge as packing
from normlab.packed import wide as packed_layers
from normlab.train import loop
from normlab.train.checkpoint import Checkpoint
from normlab.train.evaluation import evaluate
from normlab.train.prepare import prepare

REL, FLOOR = 1e-4, 1e-5  # |Δ| ≤ REL · a tensor's largest |value| + FLOOR: module docstring
HISTORY = 1e-5  # relative, each per-epoch history value
SMALL = 3e-4  # weights/small_frac: 2 of the net's ~8.6k weights may cross |w| = 1e-3
SEEDS3 = [{"norm": "bn", "seed": s} for s in range(3)]
# Two GN runs share one wide GroupNorm(8, 2C); ln and none make every norm layer and, through
# none's conv biases, every conv a Mixed one; each penalty acts on its own run only.
MIXED = [
    {"norm": "gn", "groups": 4, "seed": 0, "l1": 5e-3},
    {"norm": "gn", "groups": 4, "seed": 1, "l2": 3e-2},
    {"norm": "ln", "seed": 2},
    {"norm": "none", "seed": 3},
]


@pytest.fixture(autouse=True)
def one_thread():
    """The runs set engine.threads: 1 (run_params): the bounds above hold for one reduction
    order per op; with two threads torch splits a grouped conv's sums differently from a plain
    conv's, and this chaotic net magnifies that past them within 4 steps. Restored after."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A synthetic MNIST in <raw>/mnist, as the download stage would leave it."""
    root = tmp_path_factory.mktemp("packed") / "raw"
    write_dataset(root / "mnist", n_train=1200, n_test=200)
    return root


def run_params(axes: dict, *, limit: int, epochs: int, batch: int, **train) -> Params:
    """The committed params in float32 on the CPU, small, with one run's study axes."""
    sets = {f"train.{k}": v for k, v in train.items()}
    overrides = {"dataset": "mnist", "device": "cpu", "engine.amp": "off", "data.limit": limit}
    overrides["engine.threads"] = 1  # see one_thread
    # Packing takes rotation only: the MNIST recipe's shifts (crop 2, augment.RandomCrop) draw
    # from torch's global generator, so these runs turn them off (a test below sets them back).
    overrides["train.crop"] = 0
    overrides |= {"train.epochs": epochs, "train.batch_size": batch, **sets, **axes}
    return parse(overrides)


def train_alone(params: Params, raw: Path, tmp: Path):
    """loop.fit as the train stage runs it (prepare, then fit): the model and the Fitted.

    Not run.train: that adds the feature probe's keys to every epoch, which packed runs leave
    out, and the key-by-key comparison below would then test the probe, not the packing."""
    prep = prepare(params, raw)
    fitted = loop.fit(
        prep.model,
        train=prep.train,
        test=prep.test,
        batcher=prep.batcher,
        recipe=params.recipe,
        l1=params.l1,
        l2=params.l2,
        seed=params.seed,
        eval_batch_size=params.engine.eval_batch_size,
        autocast=prep.autocast,
        checkpoint=Checkpoint(tmp / f"alone-{params.variant}-{params.seed}.pt", "alone"),
    )
    return prep, fitted


def train_packed(runs: list[Params], raw: Path, checkpoint: Checkpoint | None = None, log=None):
    """fit_packed over prepare_packed: the prepared pack and each run's result."""
    pack = packing.prepare_packed(runs, raw)
    results = packed.fit_packed(
        pack.models,
        train=pack.prep.train,
        test=pack.prep.test,
        batcher=pack.prep.batcher,
        recipe=runs[0].recipe,
        l1=[p.l1 for p in runs],
        l2=[p.l2 for p in runs],
        seeds=[p.seed for p in runs],
        eval_batch_size=runs[0].engine.eval_batch_size,
        autocast=pack.prep.autocast,
        checkpoint=checkpoint,
        log=log,
    )
    return pack, results


def assert_states_close(
    alone: torch.nn.Module, mine: torch.nn.Module, rel: float, floor: float = 0.0
) -> None:
    """Every parameter and buffer (BatchNorm's running statistics included): per tensor, no
    element farther than `rel` × the tensor's largest |value| + `floor` (0, 0: bitwise equal).
    Scaled per tensor, as rounding errors are: a weight near 0 gets its neighbours' error."""
    want, got = alone.state_dict(), mine.state_dict()
    assert want.keys() == got.keys()
    for name, w in want.items():
        bound = rel * w.abs().max().item() + floor if w.is_floating_point() else 0.0
        torch.testing.assert_close(
            got[name], w, rtol=0, atol=bound, msg=lambda m, name=name: f"{name}: {m}"
        )


@pytest.mark.parametrize("axes", [SEEDS3, MIXED], ids=["3-bn-seeds", "gn-gn-ln-none"])
def test_packed_runs_train_as_they_do_alone(axes, raw, tmp_path):
    """2 epochs of 2 steps, rotation and dropout on: weights, running statistics, every
    history value and the eval-mode predictions of each run match its training alone."""
    runs = [run_params(a, limit=32, epochs=2, batch=16) for a in axes]
    pack, results = train_packed(runs, raw)
    for params, model, result in zip(runs, pack.models, results, strict=True):
        prep, alone = train_alone(params, raw, tmp_path)
        assert_states_close(prep.model, model, REL, FLOOR)
        assert [h.keys() for h in result.history] == [h.keys() for h in alone.history]
        for mine, want in zip(result.history, alone.history, strict=True):
            for key, value in want.items():
                near = {"abs": SMALL} if key == "weights/small_frac" else {"rel": HISTORY}
                assert mine[key] == pytest.approx(value, **near), key
        ev = [
            evaluate(m, prep.test, prep.batcher, 2000, prep.autocast) for m in (prep.model, model)
        ]
        assert torch.equal(ev[0].predictions, ev[1].predictions)


class Draws:
    """Each run's draws as training sees them: its batches (model inputs after augmentation,
    in training and evaluation) and its dropout masks, in order."""

    def __init__(self, monkeypatch):
        self.batches: dict[int, list[torch.Tensor]] = {}
        self.masks: dict[int, list[torch.Tensor]] = {}
        self.run = 0  # the solo run now training
        self.generators: list[int] = []  # id of each packed run's generator, in run order
        original, packed_side_by_side = blocks.dropped, packing.side_by_side

        def dropped(n: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
            out = original(n, p, generator)
            self.masks.setdefault(self.owner(generator), []).append(out.clone())
            return out

        def side_by_side(batches, channels_last: bool) -> torch.Tensor:
            for k, batch in enumerate(batches):
                self.batches.setdefault(k, []).append(batch.clone())
            return packed_side_by_side(batches, channels_last)

        monkeypatch.setattr(blocks, "dropped", dropped)
        monkeypatch.setattr(packed_layers, "dropped", dropped)
        monkeypatch.setattr(packed, "side_by_side", side_by_side)
        monkeypatch.setattr(packing, "side_by_side", side_by_side)

    def owner(self, generator: torch.Generator | None) -> int:
        if generator is None:
            return self.run
        if id(generator) not in self.generators:
            self.generators.append(id(generator))
        return self.generators.index(id(generator))

    def watch(self, model: torch.nn.Module, run: int) -> None:
        """Record a solo model's inputs as run `run`'s batches."""
        self.run = run
        model.register_forward_pre_hook(
            lambda _, args: self.batches.setdefault(run, []).append(args[0].clone())
        )


@pytest.mark.parametrize(
    "steps",
    [40, pytest.param(150, marks=pytest.mark.slow)],
    ids=["2x40-steps", "2x150-steps"],
)
def test_each_packed_run_draws_exactly_what_it_draws_alone(steps, raw, tmp_path, monkeypatch):
    """Two epochs of batch 8: every batch (shuffle, rotation) and every dropout mask of each
    of 3 bn runs equals its solo draws bitwise; fails if two runs shared a generator."""
    runs = [run_params(a, limit=8 * steps, epochs=2, batch=8) for a in SEEDS3]
    alone = Draws(monkeypatch)
    for k, params in enumerate(runs):
        prep = prepare(params, raw)
        alone.watch(prep.model, k)
        loop.fit(
            prep.model, train=prep.train, test=prep.test, batcher=prep.batcher,
            recipe=params.recipe, l1=0.0, l2=0.0, seed=params.seed, eval_batch_size=2000,
            autocast=prep.autocast, checkpoint=Checkpoint(tmp_path / f"{k}.pt", "alone"),
        )  # fmt: skip
    monkeypatch.undo()
    mine = Draws(monkeypatch)
    pack, results = train_packed(runs, raw)
    for k in range(len(runs)):
        assert len(mine.batches[k]) == len(alone.batches[k]) > 2 * steps
        assert all(map(torch.equal, mine.batches[k], alone.batches[k])), f"run {k}: batches"
        assert len(mine.masks[k]) == len(alone.masks[k]) == 2 * steps * 6  # 6 Dropouts
        assert all(map(torch.equal, mine.masks[k], alone.masks[k])), f"run {k}: masks"
        assert len(results[k].history) == 2
    # After training, scoring the pack and scoring each unpacked model alone agree.
    together = packing.evaluate_packed(
        packing.pack(pack.models, [torch.Generator() for _ in runs], channels_last=True),
        pack.prep.test,
        pack.prep.batcher,
        2000,
        pack.prep.autocast,
    )
    for model, ev in zip(pack.models, together, strict=True):
        solo = evaluate(model, pack.prep.test, pack.prep.batcher, 2000, pack.prep.autocast)
        assert torch.equal(ev.predictions, solo.predictions)
        assert ev.loss == pytest.approx(solo.loss, rel=1e-5)


def solo_models(net: str, norms: list[dict], channels_last: bool) -> list[torch.nn.Module]:
    """Models as prepare builds them (seeded, then built), for a named net or a layout."""
    out = []
    for k, axes in enumerate(norms):
        torch.manual_seed(k)
        if net in ("cnn", "cnn-pad", "resnet"):
            channels = 3 if net == "resnet" else 1
            model = build(
                net, norm=axes["norm"], groups=axes.get("groups", 4), dropout=0.1,
                in_channels=channels, classes=10, size=32 if net == "resnet" else 28,
            )  # fmt: skip
        else:
            model = build(
                net, norm=axes["norm"], groups=axes.get("groups", 4), dropout=0.1,
                in_channels=1, classes=10, size=28, order="conv-norm-relu", bias=True,
            )  # fmt: skip
        out.append(model.to(memory_format=torch.channels_last) if channels_last else model)
    return out


def packed_grads(pack: packing.Packed) -> dict[tuple[int, str], torch.Tensor]:
    """(run, solo parameter name) → its gradient, cut out of the wide model's."""
    grads = {}
    for path, layer, (first, n) in pack.layers:
        for name, p in layer.named_parameters(recurse=False):
            for k, piece in enumerate(p.grad.chunk(n)):
                grads[first + k, f"{path}.{name}"] = piece
    return grads


NETS = [
    ("cnn", [{"norm": "bn"}, {"norm": "gn"}, {"norm": "ln"}, {"norm": "in"}, {"norm": "none"}]),
    ("cnn-pad", [{"norm": "bn"}] * 3),
    ("resnet", [{"norm": "gn", "groups": 8}, {"norm": "gn", "groups": 8}, {"norm": "bn"}]),
    ("C8p [C8p c8p] T8 P C16 GAP H", [{"norm": "ln"}, {"norm": "bn"}]),
]


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels-last", "contiguous"])
@pytest.mark.parametrize("net,norms", NETS, ids=[n for n, _ in NETS])
def test_one_training_step_of_the_pack_is_each_run_alone(net, norms, channels_last):
    """Forward in training mode (dropout masks from each run's generator, seeded as its global
    RNG alone), loss, gradients, running statistics, then evaluation mode."""
    runs = len(norms)
    alone = solo_models(net, norms, channels_last)
    generators = [torch.Generator() for _ in range(runs)]
    pack = packing.pack(alone, generators, channels_last=channels_last)
    size = 32 if net == "resnet" else 28
    xs = [torch.randn(6, 3 if net == "resnet" else 1, size, size) for _ in range(runs)]
    ys = [torch.randint(0, 10, (6,)) for _ in range(runs)]
    for k, g in enumerate(generators):
        g.manual_seed(100 + k)
    x = packing.side_by_side(xs, channels_last)
    logits = packing.per_run_logits(pack.net(x), runs)
    F.cross_entropy(logits.transpose(1, 2), torch.stack(ys, 1), reduction="none").mean(
        0
    ).sum().backward()
    grads = packed_grads(pack)
    mine = copy.deepcopy(alone)
    packing.unpack(pack, mine)  # running statistics after one training forward
    for k, model in enumerate(alone):
        torch.manual_seed(100 + k)
        out = model(packing.side_by_side([xs[k]], channels_last))
        torch.testing.assert_close(logits[:, k], out, rtol=1e-5, atol=1e-5)
        F.cross_entropy(out, ys[k]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(grads[k, name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
        assert_states_close(model, mine[k], 1e-5)
    pack.net.eval()
    logits = packing.per_run_logits(pack.net(x), runs)
    for k, model in enumerate(alone):
        out = model.eval()(packing.side_by_side([xs[k]], channels_last))
        torch.testing.assert_close(logits[:, k], out, rtol=1e-5, atol=1e-5)


def test_unpack_gives_back_every_tensor_exactly():
    norms = [{"norm": "bn"}, {"norm": "gn"}, {"norm": "none"}]
    alone = solo_models("cnn", norms, True)
    with torch.no_grad():  # running statistics unlike their initial values
        for model in alone:
            for name, buffer in model.named_buffers():
                if "running" in name:
                    buffer.uniform_(0.5, 2.0)
    pack = packing.pack(alone, [torch.Generator() for _ in alone], channels_last=True)
    back = packing.unpack(pack, solo_models("cnn", norms, True))
    for want, got in zip(alone, back, strict=True):
        assert_states_close(want, got, 0)


def test_a_nan_in_one_run_never_reaches_another():
    """A diverged run's NaNs stay in its own channels: the other runs compute as before."""
    alone = solo_models("cnn", [{"norm": "bn"}] * 3, True)
    pack = packing.pack(alone, [torch.Generator() for _ in alone], channels_last=True)
    sick = copy.deepcopy(alone)
    with torch.no_grad():
        for p in sick[1].parameters():
            p.fill_(math.nan)
    sick_pack = packing.pack(sick, [torch.Generator() for _ in alone], channels_last=True)
    x = packing.side_by_side([torch.randn(4, 1, 28, 28) for _ in alone], True)
    clean, ill = (packing.per_run_logits(p.net.eval()(x), 3) for p in (pack, sick_pack))
    assert ill[:, 1].isnan().all()
    assert torch.equal(clean[:, [0, 2]], ill[:, [0, 2]])


def test_a_diverging_run_fails_alone_and_the_others_train_on(raw, tmp_path):
    """l1 = 1e38 overflows run 1's loss at its first step: it gets loop.fit's error, run 0
    trains on as it does alone."""
    runs = [run_params({"seed": 0}, limit=32, epochs=1, batch=16)]
    runs.append(run_params({"seed": 1, "l1": 1e38}, limit=32, epochs=1, batch=16))
    pack, results = train_packed(runs, raw)
    assert isinstance(results[1], DivergedError)
    assert str(results[1]).startswith("diverged at epoch 1, step 1 (loss=inf)")
    prep, alone = train_alone(runs[0], raw, tmp_path)
    assert_states_close(prep.model, pack.models[0], REL, FLOOR)
    assert results[0].history[0]["test/loss"] == pytest.approx(
        alone.history[0]["test/loss"], rel=HISTORY
    )


class Killed(Exception):
    """Stands for a kill: the pack stops where it is."""


def test_a_killed_pack_resumes_to_the_uninterrupted_result(raw, tmp_path):
    runs = [run_params(a, limit=32, epochs=2, batch=16) for a in MIXED[:3]]
    whole, want = train_packed(runs, raw, Checkpoint(tmp_path / "whole.pt", "pack"))

    def kill(run: int, record: dict) -> None:
        if record["epoch"] == 2:
            raise Killed  # after epoch 1's checkpoint, before epoch 2's

    saved = Checkpoint(tmp_path / "cut.pt", "pack")
    with pytest.raises(Killed):
        train_packed(runs, raw, saved, log=kill)
    logged: list[tuple[int, int]] = []
    resumed, got = train_packed(runs, raw, saved, log=lambda k, r: logged.append((k, r["epoch"])))
    assert sorted(logged) == [(k, e) for k in range(3) for e in (1, 2)]
    for a, b, fa, fb in zip(whole.models, resumed.models, want, got, strict=True):
        assert_states_close(a, b, 0)
        assert fa.history == fb.history


def test_prepare_packed_builds_each_model_as_prepare_does(raw):
    runs = [run_params(a, limit=32, epochs=1, batch=16) for a in MIXED]
    pack = packing.prepare_packed(runs, raw)
    for params, model in zip(runs, pack.models, strict=True):
        assert_states_close(prepare(params, raw).model, model, 0)


CANNOT_PACK = {
    "another-recipe": (
        [{}, {"batch": 8}],
        "packed runs: they must differ only in norm, groups, l1, l2, seed (2 kinds given)",
    ),
    "kornia-augmentation": (
        [{"flip": True}, {"flip": True}],
        "packed runs: the augmentation RandomHorizontalFlip draws from torch's global generator",
    ),
    "the-mnist-recipes-shifts": (
        [{"crop": 2}, {"crop": 2}],
        "packed runs: the augmentation RandomCrop draws from torch's global generator",
    ),
}


@pytest.mark.parametrize("recipes,error", CANNOT_PACK.values(), ids=CANNOT_PACK.keys())
def test_runs_that_cannot_pack_say_why_in_one_line(recipes, error, raw):
    runs = [
        run_params({"seed": s}, limit=32, epochs=1, **({"batch": 16} | r))
        for s, r in enumerate(recipes)
    ]
    with pytest.raises(NormlabError) as err:
        train_packed(runs, raw)
    assert str(err.value).startswith(error)
    assert "\n" not in str(err.value)


def test_packed_runs_refuse_a_validation_split(tmp_path):
    """Packed fit scores the test set only: a pack with data.val > 0 would pick its best epoch
    on the test set, so it is one line, before any data is read."""
    runs = [parse({"data.val": 100, "seed": seed}) for seed in (0, 1)]
    with pytest.raises(NormlabError, match=r"data.val = 100: no validation split when packed"):
        packing.prepare_packed(runs, tmp_path)
