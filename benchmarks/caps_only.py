"""Why the smoke profile departs from the reports: lab 02's U-Net under the caps alone.

The smoke profile's caps without its departures (``labkit.runs.profiles`` explains them):
2 epochs of 48 phantom Train images at 64 px, report 001's lr 1e-4, batch 16 and BCE, at
the width labkit assumes for report 001 (64). Scored on Val only, seeds 0-2:

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/caps_only.py

prints the share of infected pixels in the phantom's Train split, then, per seed, the Adam steps taken and the last epoch's validation Dice (images with
infection) and ``val_dice_all`` (every image; a model that predicts nothing scores the
healthy share). Recorded in benchmarks/RESULTS.md 3.1.
"""

from __future__ import annotations

import torch

import labkit as lk
from labkit.data import Augment, resolve_data
from labkit.runs import get_profile, report_settings


def main() -> None:
    torch.set_num_threads(1)
    smoke, report = get_profile("smoke"), report_settings("001.unet")
    root = resolve_data("phantom", smoke.phantom_n, progress=False)
    split = dict(size=smoke.image_size, limit=smoke.max_images, progress=False)
    train, val = (lk.data.load_split(root, name, **split) for name in ("Train", "Val"))
    # how rare infection is (why smoke adds a Dice term, labkit.runs.recipes.CLITraining)
    every = lk.data.load_split(root, "Train", size=smoke.image_size, progress=False)
    covid = every.filter(classes=["COVID-19"])
    print(
        f"infected share of the phantom's Train pixels at {smoke.image_size} px: "
        f"{(every.infection > 0).float().mean():.2%} (COVID-19 images: "
        f"{(covid.infection > 0).float().mean():.2%})"
    )
    epochs, batch = smoke.epochs(report.epochs), smoke.batch_size(report.batch_size)
    augment = {"flips": Augment.flips()}.get(report.augment)  # report 001: none, as lab 02
    for seed in (0, 1, 2):
        lk.seed_everything(seed)
        model = lk.build_model("unet", in_channels=1, base_width=report.base_width)
        history = lk.fit(
            model,
            lk.data.BatchLoader(train, batch, augment=augment, seed=seed),
            lk.data.BatchLoader(val, batch, shuffle=False),
            epochs=epochs, batch_size=batch, lr=report.lr, loss=report.loss,
            progress=False, seed=seed, device="cpu",
        )  # fmt: skip
        steps = epochs * -(-len(train) // batch)
        print(f"seed {seed}: {len(train)} Train images, {steps} Adam steps, last epoch: "
              f"val_dice {history.val_dice[-1]:.3f}, val_dice_all {history.val_dice_all[-1]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
