"""Feature-distribution probe: right layer, right percentiles, no side effects on training."""

import numpy as np
import pytest
import torch

from conftest import cnn, recipe_with
from normlab.nets.resnet import ResNet
from normlab.train.features import PERCENTILES, feature_probe, last_norm


def model_and_images(norm: str):
    torch.manual_seed(0)
    model = cnn(norm, groups=4, dropout=0.1)
    return model, torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "in", "none"])
def test_percentiles_of_last_block_before_and_after_norm(norm):
    model, images = model_and_images(norm)
    model.train()
    record = feature_probe(images)(model)
    # By hand: the network up to the last block in eval mode, then its conv and ReLU, then its norm.
    model.eval()
    with torch.no_grad():
        *body, last = model.features
        x = torch.nn.Sequential(*body)(images)
        pre = last[1](last[0](x))
        post = last[2](pre)
    for name, values in (("pre_norm", pre), ("post_norm", post)):
        expected = np.percentile(values.numpy().ravel(), PERCENTILES)
        got = [record[f"features/{name}/p{p:02d}"] for p in PERCENTILES]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert len(record) == 2 * len(PERCENTILES)
    assert min(record[f"features/pre_norm/p{p:02d}"] for p in PERCENTILES) >= 0  # ReLU output


def test_probe_restores_mode_removes_hooks_and_uses_no_rng():
    model, images = model_and_images("bn")
    probe = feature_probe(images)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    for training in (True, False):
        model.train(training)
        torch.manual_seed(123)
        first = probe(model)
        after = torch.rand(1)
        torch.manual_seed(123)
        assert torch.rand(1) == after  # the probe drew nothing from the RNG
        assert model.training is training
        assert probe(model) == first  # eval mode: dropout off, BatchNorm uses running stats
    assert not last_norm(model)._forward_hooks
    assert all(
        torch.equal(v, buffers[k]) for k, v in model.state_dict().items()
    )  # running stats untouched


@pytest.mark.parametrize("norm", ["bn", "gn", "none"])
def test_probe_reads_the_cifar_nets_last_sepconv_norm(norm):
    """ResNet blocks are Conv → Norm → ReLU: "before the norm" is the pointwise conv's output."""
    model = ResNet(norm, 4, 0.0, in_channels=3, classes=10).eval()
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    record = feature_probe(images)(model)
    block = model.stages[-1].res[-1]
    with torch.no_grad():
        x = model.stages[-1].down(model.stages[:-1](model.stem(images)))
        pre = block[1](block[0](model.stages[-1].res[0](x)))
        post = block[2](pre)
    for name, values in (("pre_norm", pre), ("post_norm", post)):
        expected = np.percentile(values.numpy().ravel(), PERCENTILES)
        got = [record[f"features/{name}/p{p:02d}"] for p in PERCENTILES]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def tiny_fit(tmp_path, probe_images: torch.Tensor | None) -> list[dict]:
    """Two epochs on 64 synthetic images, with or without the probe; returns the epoch records."""
    import contextlib

    from normlab.data.augment import Batcher
    from normlab.data.readers import Split
    from normlab.train.checkpoint import Checkpoint
    from normlab.train.device import seed_everything
    from normlab.train.loop import fit

    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    train = Split(
        torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (64,), generator=g),
    )
    test = Split(train.images[:32].clone(), train.labels[:32].clone())
    model = cnn("bn", groups=4, dropout=0.1)
    batcher = Batcher.from_images(train.images)
    recipe = recipe_with(epochs=2, batch_size=16, lr=0.05, momentum=0.9, schedule="onecycle")
    records: list[dict] = []
    checkpoint = Checkpoint(tmp_path / f"ckpt-{probe_images is not None}.pt", "x")
    probe = None if probe_images is None else feature_probe(batcher(probe_images, train=False))
    fit(
        model,
        train=train,
        test=test,
        batcher=batcher,
        recipe=recipe,
        l1=0.0,
        l2=0.0,
        seed=0,
        eval_batch_size=32,
        autocast=contextlib.nullcontext,
        checkpoint=checkpoint,
        log=records.append,
        probe=probe,
    )
    return records


def test_fit_merges_probe_into_every_epoch_without_changing_training(tmp_path):
    plain = tiny_fit(tmp_path, None)
    probed = tiny_fit(
        tmp_path,
        torch.randint(
            0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
        ),
    )
    keys = {
        f"features/{where}/p{p:02d}" for where in ("pre_norm", "post_norm") for p in PERCENTILES
    }
    assert len(probed) == 2 and all(keys <= set(r) for r in probed)
    assert not any(keys & set(r) for r in plain)
    # Same seed: the probe must not change a single trained number (no RNG, no BatchNorm update).
    assert [{k: v for k, v in r.items() if k not in keys} for r in probed] == plain
