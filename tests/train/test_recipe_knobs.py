"""The recipe knobs the seeds need (issue 14): each penalty form and scope against a hand
computation, the step schedule against 001's learning rates, plain vs Nesterov momentum, the
two augmentations, layouts as `model`, and one line for each bad value. Tiny models only."""

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from conftest import parse, recipe_with
from normlab.data.augment import Batcher, Jitter, make_augment
from normlab.data.readers import Split
from normlab.errors import NormlabError
from normlab.nets import layout
from normlab.nets.blocks import LayoutNet
from normlab.nets.build import build as build_net
from normlab.nets.build import count_params
from normlab.nets.resnet import ResNet
from normlab.recipe import Recipe
from normlab.train import loop, optim, prepare
from normlab.train.checkpoint import Checkpoint
from normlab.train.device import make_autocast
from normlab.train.evaluation import Evaluation
from normlab.train.features import last_norm

# Scope → the parameters it names, listed by hand for `tiny()` (not by optim.penalized).
SCOPES = {
    "weights": ["0.weight", "3.weight"],
    "weights+norm-scales": ["0.weight", "1.weight", "3.weight"],
    "all": ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"],
}


def tiny() -> nn.Module:
    """Conv (with bias) → BatchNorm → flatten → linear, every parameter nonzero and distinct."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, bias=True), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3)
    )
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.5, 1.5)
    return model


def named(model: nn.Module, scope: str) -> dict[str, nn.Parameter]:
    params = dict(model.named_parameters())
    return {name: params[name] for name in SCOPES[scope]}


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("form", ["sum", "mean"])
def test_l1_term_is_the_hand_computed_sum_over_its_scope(form, scope):
    model, l1 = tiny(), 3e-3
    chosen = named(model, scope)
    size = {"sum": lambda p: 1, "mean": lambda p: p.numel()}[form]
    want = l1 * sum(p.detach().abs().sum().item() / size(p) for p in chosen.values())
    term = optim.l1_term(model, l1, form, scope)
    assert term.item() == pytest.approx(want, rel=1e-6)
    term.backward()
    for name, p in model.named_parameters():
        if name in chosen:  # d/dp of l1·|p| (/ numel for the mean form)
            torch.testing.assert_close(p.grad, l1 * p.detach().sign() / size(p))
        else:
            assert p.grad is None, name


@pytest.mark.parametrize("scope", SCOPES)
def test_l2_weight_decay_reaches_exactly_its_scope(scope):
    """One SGD step with a zero data gradient: the scope's parameters shrink by lr·l2, the rest
    do not move."""
    model, lr, l2 = tiny(), 0.1, 0.01
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = optim.make_optimizer(model, lr, 0.0, l2, scope=scope)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        factor = 1 - lr * l2 if name in SCOPES[scope] else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)


def test_logged_terms_follow_the_form_and_scopes():
    model, l1, l2 = tiny(), 2e-3, 4e-3
    recipe = recipe_with(l1_form="mean", l1_scope="all", l2_scope="weights+norm-scales")
    ev = Evaluation(0.5, 90.0, torch.zeros(1), torch.zeros(1))
    record = loop.epoch_record(
        model, epoch=1, l1=l1, l2=l2, recipe=recipe, train_stats={}, test=ev, lr=0.1
    )
    l1_params, l2_params = (
        named(model, "all").values(),
        named(model, "weights+norm-scales").values(),
    )
    assert record["reg/l1"] == pytest.approx(l1 * sum(p.abs().mean().item() for p in l1_params))
    assert record["reg/l2"] == pytest.approx(
        l2 / 2 * sum(p.square().sum().item() for p in l2_params)
    )
    assert record["weights/abs_sum"] == pytest.approx(sum(p.abs().sum().item() for p in l1_params))


def lrs_per_epoch(recipe: Recipe, epoch_steps: int) -> list[list[float]]:
    """The learning rate each step of each epoch runs at."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    sched = optim.recipe_scheduler(opt, recipe, epoch_steps)
    epochs = []
    for _ in range(recipe.epochs):
        epochs.append([])
        for _ in range(epoch_steps):
            epochs[-1].append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return epochs


def test_step_schedule_gives_001s_learning_rate_in_every_epoch():
    """0.04104 through epoch 14, then × 0.09 after epochs 14, 16, 18, 20, 22 and 24."""
    recipe = recipe_with(
        lr=0.04104, epochs=25, schedule="step", gamma=0.09, milestones=[14, 16, 18, 20, 22, 24]
    )
    powers = [0] * 14 + [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    got = lrs_per_epoch(recipe, epoch_steps=3)
    assert all(len(set(steps)) == 1 for steps in got)  # lr changes at epoch boundaries only
    assert [steps[0] for steps in got] == pytest.approx(
        [0.04104 * 0.09**k for k in powers], rel=1e-12
    )


def test_fit_steps_the_schedule_at_epoch_ends_and_logs_the_next_epochs_rate(tmp_path):
    recipe = recipe_with(
        epochs=3, batch_size=16, schedule="step", milestones=[1, 2], gamma=0.5, lr=0.1
    )
    used = []  # the lr of every optimizer step fit takes (64 images: 4 steps an epoch)
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: used.append(opt.param_groups[0]["lr"])
    )
    try:
        fitted = tiny_fit(recipe, tmp_path)
    finally:
        hook.remove()
    assert used == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 4)
    assert [r["lr"] for r in fitted.history] == pytest.approx([0.05, 0.025, 0.025])


def tiny_fit(recipe: Recipe, tmp_path) -> loop.Fitted:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    split = Split(images, torch.randint(0, 10, (64,)))
    model = build_net(
        "C4 GAP h", norm="bn", groups=1, dropout=0.0, in_channels=1, classes=10, size=28
    )
    return loop.fit(
        model,
        train=split,
        test=split,
        batcher=Batcher.from_images(images),
        recipe=recipe,
        l1=0.0,
        l2=0.0,
        seed=0,
        eval_batch_size=64,
        autocast=make_autocast(torch.device("cpu"), "float32"),
        checkpoint=Checkpoint(tmp_path / "ck.pt", "x"),
    )


def test_nesterov_by_default_whenever_there_is_momentum_as_before():
    model = tiny()
    assert Recipe.model_fields["nesterov"].default is True
    assert recipe_with().nesterov is True  # params.yaml writes today's value
    assert optim.make_optimizer(model, 0.1, 0.9, 0.0).defaults["nesterov"] is True
    assert optim.make_optimizer(model, 0.1, 0.0, 0.0).defaults["nesterov"] is False
    assert optim.make_optimizer(model, 0.1, 0.9, 0.0, nesterov=False).defaults["nesterov"] is False


def test_a_recipe_without_the_new_keys_is_todays_recipe():
    """The identity-key rule: every new key's default is what runs computed before it."""
    new = [
        "nesterov",
        "milestones",
        "gamma",
        "l1_form",
        "l1_scope",
        "l2_scope",
        "order",
        "bias",
        "jitter",
        "randaugment",
    ]
    today = recipe_with()
    old = {k: v for k, v in today.model_dump().items() if k not in new}
    assert Recipe.model_validate(old) == today


def batch(channels: int = 1, n: int = 64) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(0, 256, (n, channels, 28, 28), dtype=torch.uint8)


@pytest.mark.parametrize("knob", [{"jitter": 0.1}, {"randaugment": 0.25}])
@pytest.mark.parametrize("channels", [1, 3])
def test_augmentations_change_only_training_batches_and_repeat_under_a_seed(knob, channels):
    images = batch(channels)
    plain = Batcher.from_images(images)
    augmented = Batcher.from_images(images, augment=make_augment(0, 0, False, 0, 28, **knob))
    assert torch.equal(augmented(images, train=False), plain(images, train=False))
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        runs.append(augmented(images, train=True))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    changed = (runs[0] != plain(images, train=False)).flatten(1).any(1)
    if "randaugment" in knob:  # a share of the images, the others untouched
        assert 0 < changed.sum() < len(images)
    else:
        assert changed.all()


def test_jitter_scales_a_flat_image_by_a_brightness_within_its_strength():
    """A flat image has no contrast to change: only brightness, × U[0.9, 1.1], moves it."""
    flat = torch.full((256, 1, 4, 4), 0.5)
    torch.manual_seed(0)
    out = Jitter(0.1)(flat)
    factor = out[:, 0, 0, 0] / 0.5
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out))
    assert factor.min() >= 0.9 and factor.max() <= 1.1 and factor.std() > 0.03


def test_a_layout_is_a_model_and_builds_for_its_dataset():
    params = parse(
        {
            "dataset": "cifar10-proxy",
            "train.model": layout.SEED_004,
            "train.order": "conv-norm-relu",
            "train.bias": True,
        }
    )
    net = prepare.model_for(params)
    assert count_params(net) == 40_394
    assert last_norm(net) is net.features[-1][2]  # after the last residual sum, not inside it


@pytest.mark.parametrize(
    "model, kind, text",
    [
        ("cnn", LayoutNet, layout.CNN),
        ("cnn-pad", LayoutNet, layout.CNN_PAD),
        ("resnet", ResNet, None),
    ],
)
def test_named_models_are_built_as_before(model, kind, text):
    """cnn and cnn-pad are their layouts (tests/nets/test_layout.py: exactly the nets they
    were), resnet its class."""
    net = prepare.model_for(parse({"train.model": model}))
    assert type(net) is kind and getattr(net, "layout", None) == text


def test_a_layout_its_input_cannot_take_is_one_line_from_validate():
    params = parse({"dataset": "mnist", "train.model": "C8 P P P P C8 GAP H"})
    with pytest.raises(NormlabError) as caught:
        prepare.validate(params)
    assert str(caught.value).startswith(
        "params.yaml: train.model = 'C8 P P P P C8 GAP H': token 6 'C8': maps shrink below 1×1"
    )


# (overrides, the start of the one line each gives)
BAD = [
    ({"train.nesterov": "sometimes"}, "params.yaml: train.nesterov = 'sometimes': Input should"),
    ({"train.schedule": "linear"}, "params.yaml: train.schedule = 'linear': Input should be"),
    (
        {"train.schedule": "step"},
        "recipes.yaml: mnist.milestones = []: schedule: step needs milestones",
    ),
    (
        {"train.schedule": "step", "train.milestones": [8, 8]},
        "params.yaml: train.milestones = [8, 8]: milestones must increase",
    ),
    (
        {"train.schedule": "step", "train.milestones": [0]},
        "params.yaml: train.milestones.0 = 0: Input should be greater than or equal to 1",
    ),
    (
        {"train.schedule": "step", "train.milestones": [True]},
        "params.yaml: train.milestones.0 = True: Input should be a valid integer",
    ),
    (
        {"train.milestones": [8]},
        "params.yaml: train.milestones = [8]: only schedule: step uses milestones",
    ),
    ({"train.gamma": 0.5}, "params.yaml: train.gamma = 0.5: only schedule: step uses gamma"),
    (
        {"train.schedule": "step", "train.milestones": [8], "train.gamma": 0},
        "params.yaml: train.gamma = 0: Input should be greater than 0",
    ),
    ({"train.l1_form": "max"}, "params.yaml: train.l1_form = 'max': Input should be 'sum' or"),
    ({"train.l1_scope": "convs"}, "params.yaml: train.l1_scope = 'convs': Input should be"),
    ({"train.l2_scope": True}, "params.yaml: train.l2_scope = True: Input should be"),
    ({"train.order": "norm-first"}, "params.yaml: train.order = 'norm-first': Input should be"),
    (
        {"train.order": "conv-norm-relu"},
        "params.yaml: train.order = 'conv-norm-relu': model cnn "
        "is a fixed net; order applies to layouts: cnn is the layout 'C8 C16 P T8 C16 C16 C24p",
    ),
    (
        {"train.model": "resnet", "train.bias": True},
        "params.yaml: train.bias = True: model resnet is a fixed net; bias applies to layouts",
    ),
    ({"train.bias": "yes please"}, "params.yaml: train.bias = 'yes please': Input should be"),
    ({"train.jitter": -0.1}, "params.yaml: train.jitter = -0.1: Input should be greater than"),
    ({"train.jitter": True}, "params.yaml: train.jitter = True: Value error, expected a number"),
    ({"train.randaugment": 1.5}, "params.yaml: train.randaugment = 1.5: Input should be less"),
    (
        {"train.model": "C8 X3 GAP H"},
        "params.yaml: train.model = 'C8 X3 GAP H': neither cnn, "
        "cnn-pad, resnet nor a layout: token 2 'X3': unknown token (allowed: C<w>",
    ),
    (
        {"recipes.mnist.model": "C8 C16"},
        "recipes.yaml: mnist.model = 'C8 C16': neither "
        "cnn, cnn-pad, resnet nor a layout: token 2 'C16': the layout must end with the head",
    ),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[str(o) for o, _ in BAD])
def test_a_bad_value_of_a_new_key_is_one_line(overrides, message):
    with pytest.raises(NormlabError) as caught:
        parse({"dataset": "mnist", **overrides})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
