"""Probes for exercises that are ``nn.Module`` classes: judged by behaviour, with the same weights.

A block is right when it computes labkit's function for *any* weights. So the probe gives
both modules the same weights and compares their outputs; but it never copies weights from
one module into the other, because ``labkit grade`` runs the student's module in a process
where labkit's class does not exist:

1. the student's side (``run``) builds the student's module, reads its **layout** (which
   layers run, in what order, of which shapes), fills every weight with values drawn from
   the run's seed by a rule of (layer role, parameter name, shape) alone, and reports the
   layout and the output on a seeded input;
2. labkit's side (``expect``) builds labkit's module, checks its layout against the reported
   one (the message names the layer that differs), fills it by the same rule, and returns
   its output on the same input.

Equal layouts give equal weights, so equal outputs mean the same function. The rule, not the
student's ``__init__``, chooses the weights (all-zero weights would make almost any
``forward`` look right). Three ways to say which layer is which (``layout=``):

* ``"conv_bn"``: each convolution by (kind, kernel size, how many of that kind ran before);
  each batch norm as "after" the convolution that ran last before it; attribute names and
  ``nn.Sequential`` or ``forward`` do not matter (labs 02-03);
* ``"fc"``: the fully connected layers (``nn.Linear`` or a 1x1 convolution) in the order
  they run (the gates of labs 06-07);
* ``"state_dict"``: the state-dict keys, for a class whose ``__init__`` is given (lab 06's
  PASPP).
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from labkit.checks.compare import CheckFailed, describe
from labkit.checks.probes import Probe, report, run_seed

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, *_TRANSPOSED)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_MAX_ENTRIES = 500  # a reported layout longer than this is not a course block


# ---------------------------------------------------------------------------- weights
def seeded_values(seed: int, role: str, param: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The values the rule gives parameter ``param`` of layer ``role`` (float32, ``shape``).

    Drawn flat and reshaped, so ``(out, in)`` and ``(out, in, 1, 1)`` get the same numbers
    (a 1x1 convolution written for a fully connected layer). Scales as PyTorch's own
    initialisation: weights uniform in +-1/sqrt(fan_in); batch norms near the identity
    (weight 0.8-1.2, running variance 0.5-1.5), biases and means in +-0.2.
    """
    # a pure function of its arguments (not of the run seed at the time of the call)
    mixed = np.random.SeedSequence([seed, zlib.crc32(f"{role} {param}".encode())])
    g = torch.Generator().manual_seed(int(mixed.generate_state(1)[0]))
    u = torch.rand(math.prod(shape), generator=g)
    if param == "running_var":
        v = 0.5 + u
    elif param == "weight" and len(shape) == 1:  # a norm's scale
        v = 0.8 + 0.4 * u
    elif param in ("bias", "running_mean") or len(shape) <= 1:
        v = 0.4 * u - 0.2
    else:
        v = (2 * u - 1) / math.sqrt(max(1, math.prod(shape[1:])))
    return v.reshape(shape)


@torch.no_grad()
def _fill(layers: dict[str, nn.Module], seed: int) -> None:
    for role, layer in layers.items():
        for param in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(layer, param, None)
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                t.copy_(seeded_values(seed, role, param, tuple(t.shape)))


def _run_order(module: nn.Module, x: torch.Tensor, kinds: Callable[[nn.Module], bool]) -> list:
    """The submodules for which ``kinds`` is true, in the order they first run on ``x``."""
    order: list[nn.Module] = []

    def record(mod: nn.Module, _inputs: Any) -> None:
        if not any(mod is m for m in order):
            order.append(mod)

    hooks = [m.register_forward_pre_hook(record) for m in module.modules() if kinds(m)]
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return order


# ---------------------------------------------------------------------------- conv_bn
def conv_bn_layers(module: nn.Module, x: torch.Tensor) -> dict[str, nn.Module]:
    """The convolutions and batch norms of ``module`` by role, found by running it on ``x``.

    Roles: ``"Conv2d 3x3 #0"`` (kind, kernel, how many of that kind ran before it),
    ``"bn after Conv2d 3x3 #0"``. Modules are taken in the order they first run.
    """
    layers: dict[str, nn.Module] = {}
    seen: Counter = Counter()
    last = ""
    for m in _run_order(module, x, lambda m: isinstance(m, (*_CONVS, *_NORMS))):
        if isinstance(m, _CONVS):
            kind = f"{type(m).__name__} {'x'.join(map(str, m.kernel_size))}"
            last = f"{kind} #{seen[kind]}"
            seen[kind] += 1
            layers[last] = m
        else:
            layers[f"bn after {last}" if last else "bn"] = m
    return layers


def _padding(m: nn.Module) -> list[int]:
    if isinstance(m.padding, str):  # "same" / "valid"
        if m.padding == "valid":
            return [0] * len(m.kernel_size)
        return [d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size)]
    return list(m.padding)


def _conv_bn_entry(m: nn.Module) -> dict:
    if isinstance(m, _CONVS):
        return {
            "weight": list(m.weight.shape),
            "bias": m.bias is not None,
            "stride": list(m.stride),
            "padding": _padding(m),
            "dilation": list(m.dilation),
        }
    complete = all(getattr(m, k, None) is not None for k in ("weight", "running_mean"))
    return {"features": int(m.num_features), "complete": complete}


def role_name(role: str) -> str:
    """``"Conv2d 3x3 #0"`` -> ``"3x3 convolution no. 1"``, in a student's words."""
    role = str(role)[:200]
    if role.startswith("bn after "):
        return f"the batch norm after the {role_name(role[9:])}"
    if role == "bn":
        return "a batch norm"
    m = re.fullmatch(r"(\w+) ([\dx]+) #(\d+)", role)
    if not m:
        return role
    what = "transposed convolution" if "Transpose" in m[1] else f"{m[2]} convolution"
    return f"{what} no. {int(m[3]) + 1}"


def _inventory(roles: list[str]) -> str:
    kinds = Counter(
        "batch norm" if r.startswith("bn") else role_name(r).split(" no. ")[0] for r in roles
    )
    return ", ".join(f"{n} x {k}" for k, n in sorted(kinds.items())) or "none"


def _expect_conv_bn(ref: nn.Module, x: torch.Tensor, layout: Any, hint: str) -> dict:
    """labkit's layers by role, checked against the student's ``layout`` (untrusted data)."""
    layers = conv_bn_layers(ref, x)
    if not isinstance(layout, dict) or len(layout) > _MAX_ENTRIES:
        raise CheckFailed("the layers of your module could not be read")
    if set(layers) != set(layout):
        raise CheckFailed(
            f"expected these layers to run: {_inventory(list(layers))}; yours runs: "
            f"{_inventory([str(k) for k in layout])}",
            hint or "each 3x3 convolution is followed by a batch norm and a ReLU",
        )
    for role, a in layers.items():
        got, want, name = layout[role], _conv_bn_entry(a), role_name(role)
        if not isinstance(got, dict):
            raise CheckFailed(f"{name}: could not be read")
        if isinstance(a, _CONVS):
            if got.get("weight") != want["weight"]:
                raise CheckFailed(
                    f"{name}: expected weights of shape {tuple(want['weight'])} (out, in, "
                    f"kernel), got {describe(got.get('weight'))}",
                    "check the in/out channels and padding of each convolution",
                )
            for key in ("stride", "padding", "dilation"):
                if got.get(key) != want[key]:
                    raise CheckFailed(
                        f"{name}: expected {key} {tuple(want[key])}, got {describe(got.get(key))}",
                        "a 3x3 convolution needs padding=1 to keep the image size",
                    )
            if want["bias"] and got.get("bias") is not True:
                raise CheckFailed(f"{name}: expected a bias (bias=True), yours has none")
            if got.get("bias") is True and a.bias is None:  # allowed: the same function
                a.bias = nn.Parameter(torch.zeros(a.out_channels))
        else:
            if got.get("features") != want["features"]:
                raise CheckFailed(
                    f"{name}: expected a batch norm of {want['features']} features, got "
                    f"{describe(got.get('features'))}"
                )
            if got.get("complete") is not True:
                raise CheckFailed(f"{name}: expected affine=True and running statistics")
    return layers


# ---------------------------------------------------------------------------- fc
def fc_layers(module: nn.Module, x: torch.Tensor) -> dict[str, nn.Module]:
    """The fully connected layers (``nn.Linear``, or a 1x1(x1) convolution) in run order."""

    def is_fc(m: nn.Module) -> bool:
        return isinstance(m, nn.Linear) or (isinstance(m, _CONVS) and set(m.kernel_size) == {1})

    return {f"fc #{i}": m for i, m in enumerate(_run_order(module, x, is_fc))}


def _fc_text(entries: list) -> str:
    return ", ".join(f"FC {e[1]} -> {e[0]}" for e in entries) or "none"


def _fc_entry(m: nn.Module) -> list[int]:
    """(out, in, has bias) of a Linear or a 1x1 convolution."""
    return [int(m.weight.shape[0]), int(m.weight.shape[1]), int(m.bias is not None)]


def _expect_fc(ref: nn.Module, x: torch.Tensor, layout: Any, hint: str) -> dict:
    layers = fc_layers(ref, x)
    want = [_fc_entry(m) for m in layers.values()]
    if not isinstance(layout, dict) or len(layout) > _MAX_ENTRIES:
        raise CheckFailed("the layers of your module could not be read")
    got = [layout.get(f"fc #{i}") for i in range(len(layout))]
    if [g[:2] if isinstance(g, list) else g for g in got] != [w[:2] for w in want]:
        raise CheckFailed(
            f"expected these fully connected layers, in this order: {_fc_text(want)}; "
            f"yours runs: {_fc_text([g for g in got if isinstance(g, list) and len(g) == 3])}",
            hint,
        )
    if any(g[2] != 1 for g in got):
        raise CheckFailed("expected the fully connected layers to have a bias", hint)
    return layers


# ---------------------------------------------------------------------------- state_dict
def _state_fill(module: nn.Module, seed: int) -> None:
    with torch.no_grad():
        for key, t in module.state_dict(keep_vars=True).items():
            if t.is_floating_point():
                param = key.rsplit(".", 1)[-1]
                t.copy_(seeded_values(seed, key, param, tuple(t.shape)))


def _expect_state(ref: nn.Module, layout: Any, hint: str) -> None:
    theirs = {k: list(v.shape) for k, v in ref.state_dict().items()}
    if not isinstance(layout, dict) or len(layout) > _MAX_ENTRIES:
        raise CheckFailed("the layers of your module could not be read")
    yours = {str(k): v for k, v in layout.items()}
    missing, extra = sorted(set(theirs) - set(yours)), sorted(set(yours) - set(theirs))
    wrong = sorted(k for k in set(theirs) & set(yours) if theirs[k] != yours[k])
    if missing or extra or wrong:
        parts = [
            f"missing {', '.join(missing[:4])}" if missing else "",
            f"not expected {', '.join(extra[:4])}" if extra else "",
            f"other shapes for {', '.join(wrong[:4])}" if wrong else "",
        ]
        raise CheckFailed(
            f"expected the layers given in __init__; yours differ: "
            f"{'; '.join(p for p in parts if p)}",
            hint or "keep __init__ as given and write forward only",
        )


# ---------------------------------------------------------------------------- probes
def build(cls: Any, *args: Any, what: str, **kwargs: Any) -> nn.Module:
    """``cls(*args, **kwargs)``, with a student-readable failure if it is not a module."""
    obj = cls(*args, **kwargs)  # NotImplementedError from a stub propagates: "not implemented"
    if not isinstance(obj, nn.Module):
        raise CheckFailed(f"{what} should be an nn.Module, got {describe(obj)}")
    return obj


def call_text(name: str, args: tuple, kwargs: dict) -> str:
    """``DoubleConv(3, 8)``, ``UNet3(in_channels=1, ...)``: how the module is built."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))  # 2x3x12x12


def output_probe(
    name: str,
    x_shape: tuple[int, ...],
    *args: Any,
    tag: str,
    layout: str = "conv_bn",
    ref_kwargs: dict | None = None,
    scale: float = 1.0,
    hint: str = "",
    **kwargs: Any,
) -> Probe:
    """The output of ``cls(*args, **kwargs)`` on a seeded input, with weights from the rule.

    Args:
        name: the student's class name, for messages.
        x_shape: the input's shape.
        tag: names this probe's seeds (unique within the exercise).
        layout: ``"conv_bn"``, ``"fc"`` or ``"state_dict"`` (module docstring).
        ref_kwargs: keyword arguments for labkit's class when they differ from the student's
            (labkit's ``UNet`` needs ``depth=3`` to be the lab's ``UNet3``).
        scale: the input's standard deviation.
        hint: said when the output differs.
    """
    if layout not in ("conv_bn", "fc", "state_dict"):
        raise ValueError(f"layout must be 'conv_bn', 'fc' or 'state_dict', got {layout!r}")
    ref_kwargs = {**kwargs, **(ref_kwargs or {})}
    what = call_text(name, args, kwargs)
    # seeds drawn now: the grader judges later, perhaps after another lab changed the run seed
    seed, x_seed, init_seed = (run_seed(f"{tag} {p}") for p in ("weights", "x", "init"))

    def x() -> torch.Tensor:
        return scale * torch.randn(*x_shape, generator=torch.Generator().manual_seed(x_seed))

    def layers_of(module: nn.Module) -> dict[str, nn.Module]:
        return conv_bn_layers(module, x()) if layout == "conv_bn" else fc_layers(module, x())

    def run(cls: Any) -> dict:
        torch.manual_seed(init_seed)
        module = build(cls, *args, what=what, **kwargs)
        if layout == "state_dict":
            seen = {k: list(v.shape) for k, v in module.state_dict().items()}
            _state_fill(module, seed)
        else:
            layers = layers_of(module)
            entry = _conv_bn_entry if layout == "conv_bn" else _fc_entry
            seen = {role: entry(m) for role, m in layers.items()}
            _fill(layers, seed)
        with torch.no_grad():
            return report(seen, module.eval()(x()))

    def expect(reference: Any, seen: Any) -> torch.Tensor:
        torch.manual_seed(0)
        module = reference(*args, **ref_kwargs)
        if layout == "state_dict":
            _expect_state(module, seen, hint)  # messages: the probe's label names the module
            _state_fill(module, seed)
        else:
            check = _expect_conv_bn if layout == "conv_bn" else _expect_fc
            _fill(check(module, x(), seen, hint), seed)
        with torch.no_grad():
            return module.eval()(x())

    return Probe(
        f"the output of {what} on a {shape_text(x_shape)} input, the same weights in yours "
        "and labkit's",
        run,
        atol=1e-4,
        rtol=1e-3,
        expect=expect,
        hint=hint,
    )


def shape_probe(
    name: str,
    x_shape: tuple[int, ...],
    *args: Any,
    tag: str,
    train: bool = False,
    hint: str = "",
    **kwargs: Any,
) -> Probe:
    """The output shape of ``cls(*args, **kwargs)`` on a ``x_shape`` input.

    Args:
        train: in training mode (batch statistics), else in eval mode.
    """
    what = call_text(name, args, kwargs)
    x_seed, init_seed = run_seed(f"{tag} x"), run_seed(f"{tag} init")

    def run(cls: Any) -> tuple[int, ...]:
        x = torch.randn(*x_shape, generator=torch.Generator().manual_seed(x_seed))
        torch.manual_seed(init_seed)
        module = build(cls, *args, what=what, **kwargs)
        with torch.set_grad_enabled(train):
            out = module.train(train)(x)
        if not isinstance(out, torch.Tensor):
            raise CheckFailed(f"{what} should return a tensor, got {describe(out)}", hint)
        return tuple(out.shape)

    mode = "in training mode" if train else "in eval mode"
    return Probe(
        f"the output shape of {what} {mode} on a {shape_text(x_shape)} input", run, hint=hint
    )
