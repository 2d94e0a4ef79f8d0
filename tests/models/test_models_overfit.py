"""Every architecture can overfit one small batch: the classic "can it learn at all" check.

A model that cannot drive the loss on 4 fixed images well below its start has a wiring
bug (a detached branch, a skip connection to the wrong level, a head that ignores the
decoder). The batch is a tiny synthetic chest X-ray: two dark lungs with bright blobs of
"infection" inside them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labkit.models import MODELS, build_model


def phantom_batch(n: int = 4, size: int = 64, seed: int = 0):
    """Images (n, 1, size, size) in [0, 1], lung and infection masks {0., 1.} of the same shape."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    lung = torch.zeros(n, 1, size, size)
    infection = torch.zeros(n, 1, size, size)
    for i in range(n):
        for side in (-1, 1):  # two elliptic lungs
            cx = side * (0.45 + 0.05 * torch.rand(1, generator=g))
            lung[i, 0] += (((xx - cx) / 0.3) ** 2 + (yy / 0.7) ** 2 <= 1).float()
        for _ in range(2):  # two round lesions inside the lungs
            cx = (0.45 * torch.sign(torch.rand(1, generator=g) - 0.5)).item()
            cy = (0.8 * torch.rand(1, generator=g) - 0.4).item()
            r = (0.1 + 0.1 * torch.rand(1, generator=g)).item()
            infection[i, 0] += (((xx - cx) ** 2 + (yy - cy) ** 2) <= r**2).float()
    lung, infection = lung.clamp(max=1), (infection.clamp(max=1) * lung.clamp(max=1))
    noise = 0.05 * torch.randn(n, 1, size, size, generator=g)
    image = (0.7 - 0.4 * lung + 0.3 * infection + noise).clamp(0, 1)
    return image, lung, infection


def bce(out, target):
    """BCE from logits; deep supervision: 0.5 x final + 0.5 spread over the other heads."""
    if isinstance(out, list):
        rest = [F.binary_cross_entropy_with_logits(o, target) for o in out[1:]]
        final = F.binary_cross_entropy_with_logits(out[0], target)
        return 0.5 * final + 0.5 * sum(rest) / len(rest) if rest else final
    return F.binary_cross_entropy_with_logits(out, target)


# name -> (build kwargs, Adam learning rate, steps). Pretrained encoders start from random
# weights here (offline) but are large: 10 steps suffice (loss ~0.2 x start).
SETUPS = {
    "unet": ({"in_channels": 1, "base_width": 8}, 1e-2, 30),
    "resunet": ({"in_channels": 1, "base_width": 8}, 1e-2, 30),
    "fvpaspp": ({"in_channels": 1, "base_width": 8}, 1e-2, 30),
    "unet-resnet34": ({"in_channels": 3}, 3e-3, 10),
    "unet-efficientnet-b0": ({"in_channels": 3}, 3e-3, 10),
    "unet-efficientnet-b3": ({"in_channels": 3}, 3e-3, 10),
    "cascade": (
        {"in_channels": 1, "lung_kwargs": {"base_width": 4}, "infection_kwargs": {"base_width": 4}},
        1e-2,
        30,
    ),
}


def test_every_model_is_covered():
    # lab 07's 3-D model overfits a batch of volumes in test_models_3d.py
    assert set(SETUPS) == set(MODELS) - {"fvpaspp3d"}


def train(model, loss_fn, lr: float, steps: int) -> tuple[float, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    first = None
    for _ in range(steps):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    with torch.no_grad():
        last = loss_fn().item()
    return first, last


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SETUPS if n != "cascade"])
def test_overfits_one_batch(name):
    kwargs, lr, steps = SETUPS[name]
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    image, _, infection = phantom_batch()
    x = image.repeat(1, kwargs["in_channels"], 1, 1)
    first, last = train(model, lambda: bce(model(x), infection), lr, steps)
    assert last < 0.5 * first, f"{name}: loss {first:.3f} -> {last:.3f} in {steps} steps"


@pytest.mark.slow
def test_cascade_stages_overfit_one_batch():
    kwargs, lr, steps = SETUPS["cascade"]
    torch.manual_seed(0)
    model = build_model("cascade", **kwargs)
    image, lung, infection = phantom_batch()

    def lung_loss():
        return bce(model.lung(image), lung)

    def infection_loss():  # stage 2 trained on the true lung masks, as report 003 did
        return bce(model.infection(model.infection_input(image, lung)), infection)

    for stage, loss_fn in (("lung", lung_loss), ("infection", infection_loss)):
        first, last = train(model, loss_fn, lr, steps)
        assert last < 0.5 * first, f"{stage}: loss {first:.3f} -> {last:.3f}"
    # Once stage 1 has learnt the lungs, the full cascade finds them itself.
    with torch.no_grad():
        stages = model.train().forward_stages(image)
    agreement = (stages.lung_mask == lung).float().mean()
    assert agreement > 0.9
