"""Lab 07: report 004 on its own data, 3-D CT volumes (the Kaggle "COVID-19 CT scans" set).

Modules, one job each:

* ``volume``: read a NIfTI file safely; the two intensity conventions to one scale.
* ``layout``: the tree (metadata.csv, ct_scans/, three mask folders), pairing, 14/2/4 split.
* ``phantom``: synthetic volumes in the same layout (both conventions, mixed sizes).
* ``locate``: which tree to use (path, ``LABKIT_CT_DATA``, kagglehub, phantom), download.
* ``check``: ``labkit data check`` for a CT tree: a table per volume and named defects.
* ``dataset``: subjects in memory (uint8 lung window, lung and infection masks).
* ``patches``: the patch sampler with a stated positive share, and the patch loader.
* ``infer``: sliding-window inference with overlap and Gaussian blending.
* ``scores``: per-subject Dice, IoU, sensitivity, precision (Table 4).
* ``train``: the 3-D training loop (0.5 BCE + Dice, deep supervision, Adam).
* ``settings``: lab 07's settings per profile, with the departures from the report.

Import the modules themselves (``from labkit.ct.patches import PatchLoader``): this file
imports nothing, so ``import labkit.ct`` stays light.
"""
