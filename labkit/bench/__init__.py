"""``labkit bench``: is training limited by the GPU, or by Python and PNG decoding? Measure it.

One process, one run, four sections (``run_bench`` returns them as one JSON-ready dict;
``labkit.commands.bench.format_report`` prints them as a table):

1. Data path at 256 px with report 003's augmentation, in images/s: (a) the reports' naive
   pipeline (a per-item ``Dataset`` that opens PNGs with PIL and augments each sample,
   through a ``DataLoader`` with one worker per core), (b) labkit's cached, batched
   ``BatchLoader`` on the CPU, (c) the same resident on the GPU; ratios b/a and c/a.
2. Training step throughput of ``unet`` and ``unet-resnet34`` for fp32, AMP, AMP +
   channels_last and AMP + channels_last + ``torch.compile``, each on synthetic batches
   already on the device (the model-only bound) and fed by labkit's real pipeline
   (end to end), through the very step ``labkit.train.fit`` runs.
3. Inference images/s and peak memory per model.
4. FLOPs per image (``torch.utils.flop_counter``), the achieved fraction of the device's
   peak where it is known, and an epoch-time estimate for an H100 and a T4.

The pieces: ``common`` (settings, timer, rates, machine facts), ``data`` (section 1),
``model`` (sections 2-3), ``flops`` (FLOPs, peaks, epoch estimate) and ``run`` (the run);
``labkit/commands/bench.py`` prints the table.
"""

from labkit.bench.common import MODELS, BenchSettings
from labkit.bench.measure import run_bench

__all__ = ["MODELS", "BenchSettings", "run_bench"]
