"""Training a 3-D network on patches (lab 07): report 004's loss and optimiser, a validation
Dice per epoch over whole validation volumes, and the best epoch's weights kept.

``labkit.train.fit`` works on 2-D batches; this loop is the 3-D one, short on purpose.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from labkit.ct.dataset import CTVolume
from labkit.ct.patches import PatchLoader
from labkit.ct.scores import evaluate_ct, mean_scores
from labkit.losses import BCEDiceLoss, DeepSupervisionLoss
from labkit.progress import end_bar
from labkit.train.limits import SafetyLimit


class CTHistory(list):
    """``train_ct``'s epochs (one dict each), and how the run ended, as ``fit``'s ``History``:
    ``stopped_reason`` ``"completed"`` or ``"time_budget"`` (a safety limit cut it:
    ``stopped_by`` says which), ``epochs_planned``, ``best_epoch``."""

    stopped_reason: str = "completed"
    stopped_by: str = ""
    epochs_planned: int | None = None
    best_epoch: int | None = None


def volume_loss() -> Callable[[Tensor | list[Tensor], Tensor], Tensor]:
    """Report 004's loss for 3-D logits: 0.5 BCE + Dice, with deep supervision (0.5 on the
    final output, 0.5 spread over the auxiliary heads; a plain tensor gets the base loss).

    labkit's losses take ``(B, 1, H, W)`` and sum Dice per image. A batch of patches
    ``(B, 1, X, Y, Z)`` is viewed as ONE image ``(1, 1, B * X * Y, Z)``: BCE (a mean over
    voxels) is unchanged, and Dice is counted over the whole batch ("batch Dice", as
    nnU-Net does for 3-D patches). The rationale (not measured here): per patch, a patch
    without infection (34-41 % of them at the share of 0.5, RESULTS.md 3.4) has soft Dice
    loss P / (P + 1) for P predicted voxels, near 1 for any sizeable false alarm, which
    pulls the network towards predicting nothing; a batch Dice averages that out.
    """
    base = BCEDiceLoss()

    def flat(logits: Tensor, target: Tensor) -> Tensor:
        z = logits.shape[-1]
        return base(logits.reshape(1, 1, -1, z), target.reshape(1, 1, -1, z))

    return DeepSupervisionLoss(flat)


def train_ct(
    model: nn.Module,
    loader: PatchLoader,
    val: list[CTVolume],
    epochs: int,
    lr: float = 1e-4,
    val_overlap: float = 0.25,
    progress: bool = True,
    time_budget_min: float | None = None,
) -> CTHistory:
    """Adam on ``volume_loss``; after each epoch, mean per-subject Dice on ``val`` (sliding
    window). The model ends with the best validation epoch's weights.

    Args:
        model: a 3-D model returning logits (a list in training with deep supervision).
        loader: training patches (its ``lung_only`` also decides the validation input).
        val: validation subjects.
        epochs: passes over the loader.
        lr: Adam's learning rate (report 004: 1e-4).
        val_overlap: sliding-window overlap for validation (testing uses 0.5).
        progress: a progress bar over epochs (after the first: how long the run will take
            on this machine, measured); off, one plain line per epoch instead.
        time_budget_min: a safety limit in minutes (``None``: none): the run stops between
            epochs when the next one would end past it, or past ``$LABKIT_DEADLINE``
            (``labkit.train.limits``), with ``stopped_reason = "time_budget"``.

    Returns:
        A ``CTHistory``: one dict per epoch (``epoch``, ``loss`` (mean over batches),
        ``val_dice``) and how the run ended.

    Raises:
        FloatingPointError: the loss became NaN or infinite (epoch and step named).
    """
    from tqdm.auto import tqdm

    device = loader.device
    model.to(device)
    loss_fn = volume_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = CTHistory()
    history.epochs_planned = epochs
    limit = SafetyLimit(time_budget_min)
    best, best_state = -math.inf, None
    bar = tqdm(total=epochs, desc="epochs", unit="epoch", disable=not progress)
    for epoch in range(1, epochs + 1):
        started = limit.elapsed
        model.train()
        loader.set_epoch(epoch - 1)
        total = 0.0
        for step, (x, y) in enumerate(loader, start=1):
            loss = loss_fn(model(x), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        rows, _ = evaluate_ct(
            model, val, loader.patch, loader.lung_only, overlap=val_overlap, progress=False
        )
        val_dice = mean_scores(rows)["dice"]
        history.append({"epoch": epoch, "loss": total / len(loader), "val_dice": val_dice})
        if val_dice > best:  # NaN never wins
            best, best_state = val_dice, copy.deepcopy(model.state_dict())
            history.best_epoch = epoch
        bar.update(1)
        bar.set_postfix_str(f"loss {total / len(loader):.3f}, val Dice {val_dice:.3f}")
        if not progress:  # no bar: one plain line per epoch still shows how far it is
            seconds = limit.elapsed - started
            print(f"epoch {epoch}/{epochs}  loss {total / len(loader):.4f}  val Dice "
                  f"{val_dice:.4f}  {seconds:.1f}s", flush=True)  # fmt: skip
        if epoch == 1 and epochs > 1:  # measured here, not guessed
            (bar.write if progress else print)(limit.estimate(1, epochs))
        if epoch < epochs and limit.stop_now(limit.elapsed - started):
            history.stopped_reason, history.stopped_by = "time_budget", limit.reason
            break
    if history.stopped_reason == "time_budget":
        end_bar(bar, f"epochs: CUT after {epoch} of {epochs} by {limit.reason}", success=False)
    else:
        end_bar(bar, f"epochs: all {epochs} done", success=True)
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
