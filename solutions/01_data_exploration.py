# %% [markdown]
# # Lab 01: exploring COVID-QU-Ex
#
# **Reports 001 and 002.** Before training anything we look hard at the data: how it is
# stored, how many images of each class there are, what the masks look like, and how
# images are prepared for a network.
#
# **Objectives.** After this lab you can
# 1. find your way around the dataset's folders and count its images yourself;
# 2. show images with their lung and infection masks, and explain why the infection masks
#    of Non-COVID and Normal images are empty (and what that means for metrics);
# 3. describe how much of the lung is infected, and how grey levels differ between classes;
# 4. write the preprocessing the reports use: min-max scaling, ImageNet normalisation of a
#    grey image, one-hot masks, and flips as augmentation.
#
# **Background.** COVID-QU-Ex (Tahir et al., 2021) has two subsets. The *Infection
# Segmentation Data* subset, used throughout this course, holds 5,826 chest X-rays
# (2,913 COVID-19, 1,457 Non-COVID, 1,456 Normal), each with a **lung mask** and an
# **infection mask**. A mask is an image of the same size whose pixels are 1 ("this pixel
# is lung" / "this pixel is infected") or 0. The images are 256 x 256 grey-level (8-bit)
# PNGs. Only COVID-19 images have infection drawn in; the infection masks of the other two
# classes are all zero.
#
# Each exercise defines a function; the cell after it checks your function and prints
# `[PASS]`, or what it expected and what it got. Until your function passes, labkit's own
# version is used so the rest of the notebook still runs.

# %% tags=["parameters"]
PROFILE = None  # "smoke" (quick, CPU), "full" (all data) or None ($LABKIT_PROFILE, else smoke)
DATA = None  # dataset folder, "phantom", "kaggle" or None (LABKIT_DATA, kagglehub cache, phantom)

# %%
# ruff: noqa: E402  (a notebook imports in its set-up cell, not at the top of a file)
import matplotlib.pyplot as plt
import numpy as np
import torch

import labkit as lk
from labkit.data import CLASSES, SPLITS

S = lk.setup(lab="01", profile=PROFILE, data=DATA)
P = S.profile
SIZE = P.size(256)  # image side in pixels: 256 as in the dataset (smoke profile: smaller)
LIMIT = P.images()  # images per split (None = all of them)

# %% [markdown]
# ## 1. How the data is laid out on disk
#
# After unzipping, each subset's folder name appears twice, then come the split, the class
# and the kind of file:
#
# `Infection Segmentation Data/Infection Segmentation Data/<Split>/<Class>/<kind>/<file>.png`
#
# with `<Split>` in `Train`, `Val`, `Test`; `<Class>` in `COVID-19`, `Non-COVID`, `Normal`;
# `<kind>` in `images`, `infection masks`, `lung masks`. An image and its two masks share
# the file name. Let us print one class folder of one split.

# %%
base = lk.data.find_subset_dir(S.data, "infection")  # the folder that holds Train/Val/Test
print("subset folder:", base)


def show_tree(folder, max_files=3):
    """Print a class folder: its sub-folders, how many files each holds, the first names."""
    print(f"{folder.relative_to(S.data)}/")
    subs = sorted(p for p in folder.iterdir() if p.is_dir())
    for i, sub in enumerate(subs):
        files = sorted(p.name for p in sub.iterdir())
        branch = "└──" if i == len(subs) - 1 else "├──"
        print(f"{branch} {sub.name}/  ({len(files)} files: {', '.join(files[:max_files])}, ...)")


folder = base / "Train" / "COVID-19"
show_tree(folder)
names = {kind: {p.name for p in (folder / kind).iterdir()} for kind in ("images", "lung masks")}
print("every image has a lung mask of the same name:", names["images"] == names["lung masks"])

# %% [markdown]
# ## 2. Exercise 1: count the images per split and class
#
# Report 001 gives the split in its Table I. Tables in reports can be wrong, and a
# download can be incomplete, so we **count the files ourselves**. Write
# `count_images(base)`: for every split in `SPLITS` and every class in `CLASSES`, count the
# files ending in `.png` in `base/<split>/<class>/images`. Other files (`Thumbs.db`, notes)
# do not count, and a missing folder counts 0. Return a dict of dicts:
# `{"Train": {"COVID-19": 1864, "Non-COVID": 932, ...}, "Val": {...}, "Test": {...}}`.


# %% tags=["exercise"] exercise="01.count_images"
def count_images(base):
    """PNG images per split and class under ``base``: ``{split: {class: n}}``."""
    ### BEGIN SOLUTION
    counts = {}
    for split in SPLITS:
        counts[split] = {}
        for cls in CLASSES:
            folder = base / split / cls / "images"
            if folder.is_dir():
                counts[split][cls] = sum(1 for p in folder.iterdir() if p.suffix == ".png")
            else:
                counts[split][cls] = 0
    return counts
    ### END SOLUTION


# %%
count_images = lk.checks.check("01.count_images", count_images)

# %% [markdown]
# Now the counts of *your* copy of the data, beside report 001's Table I.

# %%
counts = count_images(base)
print(lk.data.counts_table(counts, title="images on disk (infection subset)"))

REPORT_001_TABLE_I = {  # report 001, Table I (COVID-19 / Non-COVID / Normal)
    "Train": {"COVID-19": 1864, "Non-COVID": 932, "Normal": 932},
    "Val": {"COVID-19": 466, "Non-COVID": 233, "Normal": 233},
    "Test": {"COVID-19": 583, "Non-COVID": 292, "Normal": 291},
}
print(f"\n{'split':<6} {'class':<10} {'on disk':>8} {'report 001':>10} {'difference':>10}")
for split in SPLITS:
    for cls in CLASSES:
        ours, theirs = counts[split][cls], REPORT_001_TABLE_I[split][cls]
        print(f"{split:<6} {cls:<10} {ours:>8} {theirs:>10} {ours - theirs:>+10}")
if S.phantom:
    print("\nPhantom data: a small synthetic stand-in, so the counts differ from Table I.")

# %% [markdown]
# Two things to notice in the real table: the split is about 64 / 16 / 20 % in every
# class, and COVID-19 images are half of each split (the other half is Non-COVID and Normal).
#
# ## 3. Loading a split
#
# `lk.data.load_split` decodes the PNGs once into `uint8` tensors of shape `(N, 1, H, W)`
# and caches them. In the smoke profile it keeps only a few dozen images per split
# (classes in proportion) and shrinks them, so everything below runs in seconds.

# %%
train = lk.data.load_split(S.data, "Train", size=SIZE, limit=LIMIT)
print(train)
print(
    "images:",
    tuple(train.images.shape),
    train.images.dtype,
    "| lung:",
    tuple(train.lung.shape),
    "| infection:",
    tuple(train.infection.shape),
)
print("mask values:", torch.unique(train.lung).tolist(), torch.unique(train.infection).tolist())

# %% [markdown]
# ## 4. Images with their masks
#
# The lung mask is drawn as a cyan outline and the infection mask in red.

# %%
fig = lk.data.show_grid(train, n=8, cols=4, seed=0)
plt.show()

# %% [markdown]
# ## 5. Non-COVID and Normal infection masks are empty
#
# Look at the numbers, not just the pictures: for each class, how many images have at least
# one infected pixel?

# %%
for cls in CLASSES:
    sub = train.filter(cls)
    pixels = sub.infection.flatten(1).sum(1)  # infected pixels per image, shape (N,)
    print(
        f"{cls:<10} images {len(sub):>5} | with any infection {int((pixels > 0).sum()):>5} | "
        f"infected pixels in total {int(pixels.sum()):>8} | largest mask value "
        f"{int(sub.infection.max())}"
    )

# %% [markdown]
# Every Non-COVID and Normal mask is all zeros. (Non-COVID images *do* show other lung
# problems, but those are not labelled as COVID-19 infection.) Two consequences for later
# labs:
# * On an image with an empty true mask, Dice and IoU are 0/0 when nothing is predicted
#   and 0 when anything is: they measure only a false alarm there, not outlining. labkit
#   scores such an image as "not applicable" (its convention) and leaves it out of the Dice/IoU average (it says
#   how many it left out). What *can* be measured there is whether the model wrongly
#   predicts infection: the **false-positive image rate**.
# * A model can look good on a pixel-error metric by predicting "no infection" everywhere.
#   Lab 02 shows this.
#
# ## 6. Exercise 2: how much of the lung is infected?
#
# Write `infection_fraction(infection, lung)`: for each image, the fraction of its **lung**
# pixels that are infected (count infection pixels inside the lung only). Both inputs have
# shape `(N, 1, H, W)` with values 0/1 (uint8 or float); return a float32 tensor of shape
# `(N,)`. An image with an empty lung mask gets 0.


# %% tags=["exercise"] exercise="01.infection_fraction"
def infection_fraction(infection, lung):
    """Fraction of each image's lung pixels that are infected: (N, 1, H, W) x2 -> (N,)."""
    ### BEGIN SOLUTION
    inf = infection.flatten(1).float()  # (N, H*W)
    lng = lung.flatten(1).float()
    return (inf * lng).sum(1) / lng.sum(1).clamp_min(1)
    ### END SOLUTION


# %%
infection_fraction = lk.checks.check("01.infection_fraction", infection_fraction)

# %%
fraction = infection_fraction(train.infection, train.lung)  # (N,)
covid = torch.tensor([c == "COVID-19" for c in train.classes])
f = fraction[covid].numpy()
print(
    f"COVID-19: infected fraction of the lung: median {np.median(f):.3f}, "
    f"mean {f.mean():.3f}, range {f.min():.3f} to {f.max():.3f}"
)
print(f"Non-COVID and Normal: largest fraction {float(fraction[~covid].max()):.3f}")
image_fraction = train.infection.flatten(1).float().mean(1)  # of ALL pixels of the image
print(f"infected fraction of the whole image, all classes: {float(image_fraction.mean()):.4f}")
for cls, a in lk.data.infection_area(train).items():  # labkit's summary, per class
    print(
        f"{cls:<10} {a['images']:>4} images, {a['with_infection']:>4} with infection; mean "
        f"infected fraction: of the image {a['area_fraction']:.4f}, of the lung {a['lung_fraction']:.3f}"
    )

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.hist(f, bins=20, color="tab:red")
ax.set(
    xlabel="infected fraction of the lung",
    ylabel="COVID-19 images",
    title=f"infection area, {train.split} (Non-COVID / Normal: always 0)",
)
plt.show()

# %% [markdown]
# Even in COVID-19 images most pixels are not infected, and over all images the infected
# pixels are a small minority (the fractions printed above). This **class imbalance at the pixel level** is why lab 02 uses
# Dice and IoU rather than pixel accuracy.
#
# ## 7. Grey levels
#
# Normalised histograms of grey levels (0 = black, 255 = white), one line per class, over
# whole images and inside the lungs only. On an X-ray, air is dark and tissue, fluid and
# opacities are bright.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
lk.data.plot_intensity_histograms(train, region="image", ax=axes[0])
lk.data.plot_intensity_histograms(train, region="lung", ax=axes[1])
fig.tight_layout()
plt.show()

covid_train = train.filter("COVID-19")
grey = covid_train.images.float()
inside = covid_train.infection.bool()
healthy_lung = covid_train.lung.bool() & ~inside
print(
    f"COVID-19 images: mean grey level in infected pixels {float(grey[inside].mean()):.1f}, "
    f"in the rest of the lung {float(grey[healthy_lung].mean()):.1f}"
)

# %% [markdown]
# Infected regions (ground-glass opacity, consolidation) are brighter than the air-filled
# lung around them. Brightness alone is not enough, though: ribs, the heart and other
# diseases are bright too. Section 10 measures how far brightness alone gets.
#
# ## 8. Preprocessing variants (report 002)
#
# ### 8a. Exercise 3: min-max scaling
#
# Networks train best on small numbers around 0-1. The simplest choice is `pixel / 255`.
# Report 002 instead scales **each image separately** so that its darkest pixel becomes 0
# and its brightest 1: `(x - min) / (max - min)`, with min and max taken over that image.
# This also evens out differences in exposure between X-rays. The dataset's description
# says its images use the full 0-255 range; the cell after the check counts how many of
# the images loaded here really do. On an image that spans 0-255, min-max scaling gives
# the same numbers as `/255`; it matters for images that use only part of the range
# (under-exposed films, other datasets, crops of the lungs), as that cell also shows.
#
# Write `minmax_scale(x)` for a batch `x` of shape `(B, C, H, W)` (uint8, float32 or
# float64; C may be 1 or 3): return float32 of the same shape, each image scaled to [0, 1]
# with its own min and max, taken over all its channels and pixels. A constant image
# (max == min) would divide by zero: return zeros for it.


# %% tags=["exercise"] exercise="01.minmax_scale"
def minmax_scale(x):
    """Scale each image of a (B, C, H, W) batch to [0, 1] separately; float32."""
    ### BEGIN SOLUTION
    x = x.float()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1): one minimum per image
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-8), torch.zeros_like(x))
    ### END SOLUTION


# %%
minmax_scale = lk.checks.check("01.minmax_scale", minmax_scale)

# %%
lo, hi = train.images.flatten(1).amin(1), train.images.flatten(1).amax(1)  # (N,) per image
full = int(((lo == 0) & (hi == 255)).sum())
print(
    f"{full} of {len(lo)} loaded Train images span the full 0-255 range (darkest pixel "
    f"{int(lo.min())}..{int(lo.max())}, brightest {int(hi.min())}..{int(hi.max())})"
)
batch = train.images[:4]  # (4, 1, H, W) uint8
unit = batch.float() / 255  # the simple alternative: every image divided by 255

# An under-exposed copy of image 0: its grey levels use only 60..162 of 0..255.
dim = (batch[:1].float() * 0.4 + 60).round().to(torch.uint8)
for name, x in (("original", batch[:1]), ("under-exposed", dim)):
    u, m = x.float() / 255, minmax_scale(x)
    print(
        f"{name:<13} raw {int(x.min()):>3}..{int(x.max()):>3} | /255 {float(u.min()):.2f}.."
        f"{float(u.max()):.2f} | min-max {float(m.min()):.2f}..{float(m.max()):.2f}"
    )
gap = (minmax_scale(dim) - minmax_scale(batch[:1])).abs().max()
print(f"after min-max scaling the two differ by at most {float(gap):.3f} (rounding)")

# %% [markdown]
# ### 8b. ImageNet normalisation for pretrained encoders
#
# An encoder pretrained on ImageNet (lab 04) expects **3 colour channels**, each
# normalised with ImageNet's mean and standard deviation: `(x - mean[c]) / std[c]` with
# mean = (0.485, 0.456, 0.406) and std = (0.229, 0.224, 0.225). A grey X-ray is copied into
# all three channels first. After this the values are no longer in [0, 1]; they are roughly
# centred on 0, as the pretrained weights were used to.

# %%
rgb = lk.data.imagenet_normalize(unit)  # (4, 1, H, W) in [0, 1] -> (4, 3, H, W)
print("shape:", tuple(unit.shape), "->", tuple(rgb.shape))
for c in range(3):
    print(
        f"channel {c}: mean {float(rgb[:, c].mean()):+.3f}, std {float(rgb[:, c].std()):.3f}, "
        f"range {float(rgb[:, c].min()):+.2f}..{float(rgb[:, c].max()):+.2f}"
    )

# %% [markdown]
# ### 8c. Exercise 4: one-hot masks
#
# A model with a **softmax** head (report 002, lab 04) outputs one channel per class, here
# (background, infection), and is trained against a target with the same two channels: a
# **one-hot** mask. Channel 0 is 1 where the pixel is background, channel 1 is 1 where it
# is infected; at every pixel exactly one channel is 1.
#
# Write `one_hot(mask)`: `(B, 1, H, W)` with values 0/1 (uint8, float32 or float64) ->
# float32 `(B, 2, H, W)`.


# %% tags=["exercise"] exercise="01.one_hot"
def one_hot(mask):
    """(B, 1, H, W) 0/1 mask -> (B, 2, H, W) float32: channel 0 background, 1 infection."""
    ### BEGIN SOLUTION
    m = mask.float()
    return torch.cat([1 - m, m], dim=1)
    ### END SOLUTION


# %%
one_hot = lk.checks.check("01.one_hot", one_hot)

# %%
target = one_hot(train.infection[:4])
print("mask", tuple(train.infection[:4].shape), "-> one-hot", tuple(target.shape), target.dtype)
print("channels sum to 1 at every pixel:", bool((target.sum(1) == 1).all()))
print("infected pixels per image (channel 1):", target[:, 1].flatten(1).sum(1).tolist())

# %% [markdown]
# ### 8d. Augmentation: flips, and what "reflective fill" means
#
# Augmentation shows the network a randomly changed copy of each training image every
# epoch, so it cannot simply memorise the images. The mask must change **in exactly the
# same way** as the image, or the labels no longer match the pixels.
#
# The syllabus summarises report 002's augmentation as "flips with reflective fill" (its
# wording, not necessarily the report's). A flip moves every
# pixel to another place inside the image, so nothing needs filling. Shifting or rotating,
# however, uncovers corners with no pixels; **reflective fill** fills them by mirroring the
# image at its border instead of leaving black corners, which would be an artefact the
# network could learn. So the syllabus's phrase does not fit a flip alone: either it also
# shifted or rotated, or the summary is loose; the syllabus does not say which. labkit's
# `lk.data.Augment.flips()` uses random horizontal and vertical flips (labkit's choice; the
# syllabus does not say which flips). A vertical flip gives an upside-down chest that no real
# X-ray looks like; it is still used because infection texture looks the same either way,
# but horizontal flips are the safer choice.

# %%
g = torch.Generator().manual_seed(0)
i = int(torch.nonzero(train.infection.flatten(1).sum(1)).flatten()[0])  # an image with infection
image = train.images[i : i + 1].float() / 255  # (1, 1, H, W)
mask = train.infection[i : i + 1]
variants = {
    "original": (image, mask),
    "horizontal flip": (image.flip(-1), mask.flip(-1)),
    "vertical flip": (image.flip(-2), mask.flip(-2)),
}
rotate = lk.data.Augment(hflip=0, p_affine=1.0, shift=0.15, rotate=25, p_color=0, p_noise=0)
variants["shift + rotate, reflective fill"] = rotate(image, mask, generator=g)
flips = lk.data.Augment.flips()
variants["Augment.flips() (random)"] = flips(image, mask, generator=g)

fig, axes = plt.subplots(1, len(variants), figsize=(3 * len(variants), 3.2))
for ax, (title, (img, m)) in zip(axes, variants.items()):
    ax.imshow(img[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
    overlay = np.zeros((*m.shape[-2:], 4))
    overlay[..., 0], overlay[..., 3] = 1.0, 0.45 * m[0, 0].float().numpy()
    ax.imshow(overlay)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()
_, m = variants["shift + rotate, reflective fill"]
print("augmented mask values stay 0/1:", torch.unique(m).tolist())

# %% [markdown]
# ## 9. Browse the split
#
# Move the sliders to look at more images; the class menu shows one class at a time. (The
# viewer needs a live notebook; in an exported page it shows nothing.)

# %%
lk.widgets.viewer(train)

# %% [markdown]
# ## 10. Experiment: how far does brightness alone get?
#
# Before training networks, a floor to beat: predict "infected" wherever a pixel inside the
# lung is brighter than a threshold (on the min-max scaled image). The threshold is chosen
# on **Train**, and the rule is then scored on **Val**, never on the images used to choose
# it. Scores are per-image means over COVID-19 images (labkit's empty-mask policy); on
# Non-COVID/Normal images we report how often any infection is predicted.
#
# <details><summary><b>The four scores</b> (lab 02 defines them fully; click to
# open)</summary>
#
# With P the predicted pixels and T the truly infected ones of an image: **Dice** =
# 2 |P and T| / (|P| + |T|); **IoU** = |P and T| / |P or T|; **sensitivity** = |P and T| / |T|,
# the share of the infection found; **precision** = |P and T| / |P|, the share of the
# predicted pixels that are infected. An image with infection where nothing is predicted
# gets precision 0 (labkit's rule, like its Dice), so every mean is over the same images;
# the printout says how many.
#
# </details>

# %%
val = lk.data.load_split(S.data, "Val", size=SIZE, limit=LIMIT)


def bright_in_lung(data, threshold):
    """Predicted infection: min-max scaled pixel >= threshold, inside the lung. (N, 1, H, W)."""
    return ((minmax_scale(data.images) >= threshold) & data.lung.bool()).float()


def scores(data, threshold):
    acc = lk.metrics.MetricAccumulator()
    acc.update(
        bright_in_lung(data, threshold), data.infection, classes=data.classes, from_logits=False
    )
    return acc.compute()


candidates = [round(t, 2) for t in np.arange(0.30, 0.96, 0.05)]
train_dice = [scores(covid_train, t)["dice"] for t in candidates]
best = candidates[int(np.nanargmax(train_dice))]
print(f"threshold chosen on Train: {best} (Train COVID-19 Dice {np.nanmax(train_dice):.3f})")

val_scores = scores(val, best)
covid_scores = val_scores["per_class"]["COVID-19"]
fp_rate = {c: val_scores["per_class"][c]["fp_image_rate"] for c in CLASSES[1:]}
print(
    f"Val, COVID-19 images: Dice {covid_scores['dice']:.3f}, IoU {covid_scores['iou']:.3f}, "
    f"sensitivity {covid_scores['sensitivity']:.3f}, precision {covid_scores['precision']:.3f} "
    f"(means over {covid_scores['n_scored']} images with infection)"
)
print("Val, false-positive image rate:", {c: round(r, 3) for c, r in fp_rate.items()})

row = S.record_result(
    model="bright pixels in the lung (no learning)",
    loss="none",
    metrics=covid_scores,
    train_seconds=0.0,
    report={"source": "no report figure (reports 001/002 train no model at this step)"},
    notes=f"threshold {best} chosen on Train, scored on Val",
)

# %% [markdown]
# ## 11. Results
#
# For this step the syllabus gives only report 001's split counts, its Table I (compared in
# section 2). The row
# below is our brightness rule, a rough floor for the networks of the next labs. It is a
# **Val** figure: the networks are scored on **Test**, and against another floor there
# (calling every lung pixel infected), so compare it with them only loosely.

# %%
source = "PHANTOM data: not comparable with COVID-QU-Ex" if S.phantom else "COVID-QU-Ex"
print(f"Lab 01 results ({source}; profile {P.name}; split Val; COVID-19 images)")
print(f"{'model':<42} {'Dice':>6} {'IoU':>6} {'sens.':>6} {'prec.':>6}")
print(
    f"{row['model']:<42} {row['dice']:>6.3f} {row['iou']:>6.3f} "
    f"{row['sensitivity']:>6.3f} {row['precision']:>6.3f}"
)
print(f"{'report 001/002: no model at this step':<42} {'-':>6} {'-':>6} {'-':>6} {'-':>6}")

# %% [markdown]
# **Question 1.** Suppose your count of the Test split differed from Table I by a few
# images in one class. Name two possible causes, and say what the difference would mean
# when a later lab prints your test Dice beside a report's.
#
# ### BEGIN SOLUTION
# Causes: an incomplete download or unzip (missing files), stray or duplicate files, a
# different version of the dataset, or a typo in the report's table. Meaning: your score
# and the report's would not be computed on exactly the same images, so even with the same
# model they could differ a little; with a few images out of hundreds the effect on a mean
# is small, but it must be stated, and a large mismatch (a missing class, a different
# split) would make the comparison meaningless.
# ### END SOLUTION
#
# **Question 2.** A model predicts "no infection" for every pixel of every image. On which
# images is it perfect, and what would its Dice be on COVID-19 images?
#
# ### BEGIN SOLUTION
# It is perfect on every Non-COVID and Normal image (their masks are empty, and it predicts
# no false positives). On a COVID-19 image it finds no infected pixel, so Dice and IoU are
# 0, even though almost all of its pixels are right.
# ### END SOLUTION

# %%
_ = lk.checks.summary()
