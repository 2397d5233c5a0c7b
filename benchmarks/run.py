"""Benchmark: archc's generated models against hand-written references, and the compiler itself.

Run from the repository root::

    python -m benchmarks.run                 # full run (~10 minutes on 2 cores, half of it the extras)
    python -m benchmarks.run --quick         # every row at a tiny size (smoke test)
    python -m benchmarks.run --json out.json --repeats 9 --sections torch,memory
    python -m benchmarks.run --sections torchvision,keras --models resnet50,resnet50_keras --merge
                                             # add rows to benchmarks/results.json, keeping the others

Rows (all in one process unless said otherwise; generated and reference are measured alternately,
A B A B ..., after warm-up runs of both; the reported numbers are medians and the ratio is
median(generated) / median(reference); ``paired`` is the median of the per-pair ratios, which is less
sensitive to drift of the machine's speed during the run):

1. PyTorch DenseNet-169 (``generated/torch/densenet169.py`` vs ``benchmarks/reference_torch.py``, torchvision's
   structure) and GoogLeNet (``generated/torch/googlenet_torchvision.py`` vs the torchvision-layout reference):
   eval forward under ``torch.no_grad()`` at batch 8, 224x224; a training step at batch 4: gradients set to
   None, forward in train mode, cross-entropy against random labels (GoogLeNet: + 0.3 x each auxiliary head's
   cross-entropy), backward. No optimizer update (it would be identical for both).
1b. PyTorch against torchvision's own models (section ``torchvision``): ``generated/torch/{resnet50,mobilenet_v2,
   efficientnet_b0,r3d_18}.py`` vs ``torchvision.models.resnet50() / mobilenet_v2() / efficientnet_b0()`` and
   ``torchvision.models.video.r3d_18()`` (clips of 8 x 112 x 112, a quarter of the images' batches) (torchvision
   imported through ``tests/torchvision_fixture.import_torchvision``, the suite's CPU workaround; rows skipped,
   with the reason printed, without torchvision). torchvision's model is built (its own init, seed 0), given
   random BN statistics and affine parameters, and its state_dict moved into the generated model with
   ``archc.convert.from_torchvision``; before timing the two must have the same parameter count and buffer
   elements and compute the same eval logits (2x3x64x64, max rel. difference < 1e-4), else the run aborts.
   Timed as row 1 (same eval forward and training step, same sizes), with 25 timed runs per side instead of 15
   (``tv_repeats``; ``--repeats`` sets both). In training, EfficientNet's stochastic depth draws its own random
   masks on each side (the generated stages' repeated blocks share the mean of torchvision's per-block
   probabilities: the same ops, other draws).
2. Keras DenseNet-169 and MobileNet (``generated/keras/*.py``) vs ``keras.applications.DenseNet169`` /
   ``MobileNet`` (``weights=None, classifier_activation=None``: logits, as the generated models):
   ``model.predict(x, batch_size=8, verbose=0)`` on 8 images (``keras_predict_*``): what users call; it
   includes Keras' per-call data pipeline, the same for both, and on this machine its time per call jumps in
   steps of ~0.1 s from call to call (for DenseNet-169: ~0.23 s or ~0.33 s, sometimes ~0.65 s, for either
   model), so its medians are noisy (+-15 %). Hence a second row per model (``keras_call_*``): the direct call
   ``model(x, training=False)`` wrapped in a ``tf.function`` (graph mode, as ``predict`` runs it, without the
   data pipeline). Two warm-up calls each (the first traces). Keras resolves ``jit_compile="auto"`` to no XLA
   on a CPU-only machine; the tf.function has no XLA either.
   The same two rows for the generated models in keras.applications' layout, ``specs/resnet50_keras.yaml`` and
   ``specs/mobilenet_v2_keras.yaml`` (``generated/keras/<stem>.py``), vs ``keras.applications.ResNet50`` /
   ``MobileNetV2``, with ``tv_repeats`` runs; before timing, keras.applications' model gets random weights (BN
   statistics too) which are loaded into the generated one layer by layer in build order, and their logits
   on 2 random images must agree within 1e-4 relative. While a spec (or its generated file) is missing the
   rows are skipped, the reason printed under the table and kept in the JSON's ``skipped``.
3. Peak memory of one PyTorch training step, two ways:
   * ``memory_alloc``: peak of live tensor bytes through PyTorch's CPU allocator during the step, from the
     profiler's allocation/free events (``torch.profiler.profile(profile_memory=True)``, events sorted by
     time, running sum, maximum: the peak increase over what the step starts with). Deterministic and
     independent of malloc's caching; measured in this process after a warm-up step, gradients set to None
     before the profiled step (so the new gradients count, as in a real training step).
   * ``memory_rss``: a fresh subprocess per measurement (``python -m benchmarks.run --memory-worker``): model
     and input are built, a warm-up step runs, gradients are set to None, ``malloc_trim(0)``, the kernel's
     peak-RSS mark is reset (``echo 5 > /proc/self/clear_refs``), a second step runs, and the row is the peak
     RSS after it (``VmHWM``; not ``ru_maxrss``, which in a spawned child includes the parent's peak, see
     ``memory_worker``) minus the RSS just before it, median of 5 processes per side. Counts everything the
     step touches (oneDNN scratch memory, malloc slack), and varies from process to process by a few per cent
     (DenseNet-169 at batch 4: 658-699 MiB for either model in 8 processes each), so ratios within ~+-4 % of 1
     are noise; the ``memory_alloc`` rows are exact.
4. Compiler latency: ``archc build specs/densenet169.yaml --backend torch -o <tmp>`` and
   ``archc summary specs/densenet169.yaml`` as whole processes (``sys.executable -m archc``), median of 5 runs;
   interpreter start-up (``python -c pass``) for scale.
5. Scaling: synthetic specs of N conv 3x3 + BN + ReLU blocks (a block definition ``unit`` called N times:
   ``explicit``; or one ``repeat: {times: N}``) at an 8x8x8 input: ``compile_spec`` + ``analyze`` ("analysis")
   and the torch and keras emitters' ``emit``, in-process, with the time per block and the ratio of the per-block
   time at the largest N to the next smaller N (near 1 = linear; ``repeat`` emits one loop, so its
   emission time is flat in N and the per-block ratio far below 1).
6. Extras: what archc offers beyond the hand-written code, each *option* against the *plain* generated model
   (emitted from the spec at run time, same weights, alternating A B A B ...; ratio = option / plain, < 1 =
   faster or smaller; ``pays`` = ratio <= 0.95, beyond the medians' run-to-run noise, and outputs within 1e-4
   relative of the plain model's, ``max |option - plain| / max |plain|``):
   * ``-O memory_efficient`` DenseNet-169 (``get_backend("torch", memory_efficient=True)``: dense layers run
     under ``torch.utils.checkpoint`` and are recomputed in backward): the training step's time, its peak live
     tensor memory (profiler, as row 3) and peak RSS increase (fresh processes, as row 3). Before timing, with
     the same weights, loss, gradients, BN running statistics after the step and eval logits must agree
     (the run aborts otherwise).
   * ``torch.compile(model, fullgraph=True)`` (inductor, gcc): eval forward under no_grad, warmed calls only.
     The first call's compile time is reported: in an empty inductor cache (``--quick``: the user's cache)
     and again after ``torch._dynamo.reset()`` with the kernels cached on disk; the process's first compile (a
     conv-BN-ReLU) is timed apart as inductor's one-off start-up. A failure to compile is reported in the row.
   * ``channels_last``: model and input converted to ``torch.channels_last`` (the input before timing).
   * ``archc.export.fold_batchnorm``: BN folded into the preceding conv, on a copy of the model with random BN
     statistics and affine parameters; eval forward at the eval batch and at batch 1.
   * Keras: ``tf.function(model(x, training=False), jit_compile=True)`` (XLA) vs the same ``tf.function``
     without XLA (the ``keras_call_*`` rows' graph), generated DenseNet-169 and MobileNet; first-call (trace +
     compile) times reported.

Before timing, the references are checked to have the generated models' parameter counts (DenseNet-169
14,149,480, GoogLeNet with aux heads 13,004,888; keras: generated = keras.applications) and, with the
generated weights and random BN statistics loaded into them by name, to compute the same eval logits.
Every timed row also records the minor page faults per run (``*_minflt`` in the JSON): memory that glibc's
malloc got fresh from the kernel. Timings are taken with the default allocator, as users run the models; a
difference in faults between two same-op models means a difference in allocation order, not in compute.

``--merge`` writes this run's rows into the JSON file next to the earlier runs' rows it does not measure (the
file's ``runs`` lists each run's time, machine, config and rows); ``--models`` restricts the ``torchvision`` and
``keras`` sections to some spec stems.

``--quick``: 64x64 inputs at batch 1 (GoogLeNet's training rows at 224x224: the spec's aux heads, a 5x5/3
average pool and a linear layer on 128*4*4 features, fix the size of their input), 1 timed run, 1 run per
memory row, 3 per latency row, scaling at 10 and 100 blocks; extras: torch.compile of MobileNet 0.25 (160) at
64x64 in the user's inductor cache (a cold cache adds ~20 s), XLA for the Keras MobileNet only.

Threads: ``torch.set_num_threads(2)`` (interop threads left at PyTorch's default); TensorFlow intra-op and
inter-op pools both set to 2 (its default on a 2-core machine), oneDNN left on (TensorFlow's default).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "benchmarks" / "results.json"
THREADS = 2
# parameter counts (trainable, i.e. torch ``parameters()``) the references must share with the generated models
EXPECTED_TORCH_PARAMS = {"densenet169": 14_149_480, "googlenet_torchvision": 13_004_888, "unet": 31_037_698}
TORCH_MODELS = {
    "densenet169": "DenseNet-169",
    "googlenet_torchvision": "GoogLeNet (torchvision layout)",
    "unet": "U-Net (tests/references/unet.py)",
}
KERAS_MODELS = {"densenet169": ("DenseNet-169", "DenseNet169"), "mobilenet_v1": ("MobileNet 1.0", "MobileNet")}
# torchvision's own models: spec stem (generated/torch/<stem>.py) -> (label, torchvision.models builder)
TORCHVISION_MODELS = {
    "resnet50": ("ResNet-50", "resnet50"),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2"),
    "efficientnet_b0": ("EfficientNet-B0", "efficientnet_b0"),
    "r3d_18": ("R3D-18 (video, 3-D)", "r3d_18"),
    "fcn_resnet50": ("FCN-ResNet50 (segmentation)", "fcn_resnet50"),
}
# builder arguments besides weights=None (segmentation: no backbone weights, no auxiliary head)
TORCHVISION_KWARGS = {"fcn_resnet50": {"weights_backbone": None, "aux_loss": False}}
# per-pixel models (their outputs a dict {"out": N x classes x H x W}): stem -> classes; trained per pixel
DENSE_OUTPUTS = {"fcn_resnet50": 21, "unet": 2}
# models whose input is not a 224 x 224 image: stem -> (its input after the batch, its classes); quick runs: 1/4
CLIP_INPUTS = {"r3d_18": ((3, 8, 112, 112), 400)}
# generated Keras models in keras.applications' layout: spec stem (specs/<stem>.yaml, generated/keras/<stem>.py)
# -> (label, keras.applications builder); a row whose spec is missing is skipped with the reason printed
KERAS_APP_MODELS = {
    "resnet50_keras": ("ResNet-50 (keras.applications layout)", "ResNet50"),
    "mobilenet_v2_keras": ("MobileNetV2 (keras.applications layout)", "MobileNetV2"),
}
SECTIONS = ("torch", "torchvision", "memory", "keras", "latency", "scaling", "extras")


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one run."""

    quick: bool
    repeats: int  # timed runs of each side, torch and keras rows
    tv_repeats: int  # timed runs of each side, the rows against torchvision and the keras.applications-layout rows
    warmup: int  # untimed runs of each side before (keras: at least 2)
    size: int  # input height = width: DenseNet rows, GoogLeNet eval, keras rows
    eval_batch: int
    train_batch: int
    googlenet_train_size: int  # the spec's aux heads (5x5/3 pool, fc on 128*4*4) need ~224 in training mode
    keras_images: int
    memory_runs: int  # fresh subprocesses per side for the RSS rows
    latency_runs: int
    scaling_blocks: tuple[int, ...]
    scaling_repeats: int
    compile_models: tuple[str, ...]  # extras: specs/<stem>.yaml compiled with torch.compile
    compile_size: int
    compile_fresh_cache: bool  # extras: torch.compile in an empty inductor cache (else the user's)
    keras_jit_models: tuple[str, ...]  # extras: generated/keras/<stem>.py with and without XLA

    def train_size(self, name: str) -> int:
        """Input height = width of the training-step rows of model ``name``."""
        return self.googlenet_train_size if name.startswith("googlenet") else self.size

    @classmethod
    def make(cls, quick: bool, repeats: int | None, warmup: int | None) -> Config:
        if quick:
            return cls(
                quick=True,
                repeats=repeats or 1,
                tv_repeats=repeats or 1,
                warmup=1 if warmup is None else warmup,
                size=64,
                eval_batch=1,
                train_batch=1,
                googlenet_train_size=224,
                keras_images=1,
                memory_runs=1,
                latency_runs=3,
                scaling_blocks=(10, 100),
                scaling_repeats=1,
                compile_models=("mobilenet_v1_025_160",),
                compile_size=64,
                compile_fresh_cache=False,
                keras_jit_models=("mobilenet_v1",),
            )
        return cls(
            quick=False,
            repeats=repeats or 15,
            tv_repeats=repeats or 25,
            warmup=2 if warmup is None else warmup,
            size=224,
            eval_batch=8,
            train_batch=4,
            googlenet_train_size=224,
            keras_images=8,
            memory_runs=5,
            latency_runs=5,
            scaling_blocks=(10, 100, 1000, 10000),
            scaling_repeats=3,
            compile_models=("densenet169", "googlenet_torchvision"),
            compile_size=224,
            compile_fresh_cache=True,
            keras_jit_models=("densenet169", "mobilenet_v1"),
        )


# ------------------------------------------------------------------------------------------------ helpers


def median(xs) -> float:
    return float(statistics.median(xs))


def import_path(path: Path, module_name: str):
    """Import the Python file at ``path`` as ``module_name`` (no package or sys.path assumptions)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_generated(backend: str, stem: str):
    """Import ``generated/<backend>/<stem>.py`` by path."""
    return import_path(ROOT / "generated" / backend / f"{stem}.py", f"archc_bench_{backend}_{stem}")


def emit_torch_module(stem: str, directory: Path, **options):
    """Compile ``specs/<stem>.yaml``, emit it with the torch backend and these build options into ``directory``
    and import it (as ``archc build ... -O option`` would write it). Returns (IR model, module)."""
    from archc.backends import get_backend

    from archc.pipeline import compile_spec

    model_ir = compile_spec(str(ROOT / "specs" / f"{stem}.yaml"))
    path = Path(directory) / ("_".join([stem, *sorted(k for k, v in options.items() if v)]) + ".py")
    path.write_text(get_backend("torch", **options).emit(model_ir), encoding="utf-8")
    return model_ir, import_path(path, f"archc_bench_{path.stem}")


def alternate(fns: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Warm-up runs of every function, then ``repeats`` timed rounds, each running them in turn (A B A B ...).

    Returns the seconds of every timed run, and under ``"<key>_minflt"`` the minor page faults the process took
    during it (memory the allocator got fresh from the kernel: a diagnostic for allocation-pattern effects).
    """
    for _ in range(warmup):
        for f in fns.values():
            f()
    gc.collect()
    out: dict[str, list[float]] = {k: [] for k in fns} | {f"{k}_minflt": [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = time.perf_counter()
            f()
            out[k].append(time.perf_counter() - t)
            out[f"{k}_minflt"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
    return out


def faults(t: dict[str, list[float]]) -> dict:
    """The median minor page faults per run of both sides, for ``compare_row``."""
    return {"generated_minflt": median(t["generated_minflt"]), "reference_minflt": median(t["reference_minflt"])}


def compare_row(section: str, what: str, unit: str, inputs: str, gen: list[float], ref: list[float], **extra) -> dict:
    g, r = median(gen), median(ref)
    return {
        "section": section,
        "what": what,
        "unit": unit,
        "input": inputs,
        "runs": len(gen),
        "generated": g,
        "reference": r,
        "ratio": g / r,
        "paired_ratio": median([a / b for a, b in zip(gen, ref)]),
        "generated_min": min(gen),
        "reference_min": min(ref),
        "generated_runs": gen,
        "reference_runs": ref,
        **extra,
    }


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info(sections) -> dict:
    info = {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if {"torch", "torchvision", "memory", "extras"} & set(sections):
        import torch

        info |= {
            "torch": torch.__version__,
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "torch_mkldnn": torch.backends.mkldnn.is_available(),
        }
    return info


def add_keras_info(info: dict) -> None:
    import keras
    import tensorflow as tf

    info |= {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "tf_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }


# ------------------------------------------------------------------------------------------------ torch


def setup_torch():
    import torch

    torch.set_num_threads(THREADS)
    return torch


# build options of the models emitted from the spec at run time (extras): impl name -> torch backend options
EMITTED = {"plain": {}, "memory_efficient": {"memory_efficient": True}}


def build_torch(name: str, impl: str):
    """A fresh model: ``impl`` is "generated" (archc's emitted file), "reference" (benchmarks.reference_torch), or
    one of ``EMITTED`` (emitted from ``specs/<name>.yaml`` now, with those build options)."""
    if impl == "generated":
        return load_generated("torch", name).build_model()
    if impl in EMITTED:
        with tempfile.TemporaryDirectory() as tmp:
            return emit_torch_module(name, Path(tmp), **EMITTED[impl])[1].build_model()
    from benchmarks.reference_torch import REFERENCES

    return REFERENCES[name]()


def torch_params(model) -> tuple[int, int]:
    """(parameters, buffer elements) of a torch model."""
    return sum(p.numel() for p in model.parameters()), sum(b.numel() for b in model.buffers())


def make_train_step(model, x, target) -> Callable[[], object]:
    import torch.nn.functional as F

    def step():
        model.zero_grad(set_to_none=True)
        out = model(x)
        if isinstance(out, dict):  # a segmentation model's {"out": ...} (torchvision's and the generated one)
            out = out["out"]
        if isinstance(out, tuple):  # main logits, then the auxiliary heads' (GoogLeNet, train mode)
            loss = F.cross_entropy(out[0], target) + 0.3 * sum(F.cross_entropy(o, target) for o in out[1:])
        else:
            loss = F.cross_entropy(out, target)
        loss.backward()
        return loss

    return step


def make_eval(model, x) -> Callable[[], object]:
    import torch

    def run():
        with torch.no_grad():
            return model(x)

    return run


def check_torch_models(torch) -> dict:
    """Parameter counts of generated and reference models (asserted) and an equivalence check of eval outputs.

    The generated weights (with random BN statistics and affine parameters) are loaded into the reference by name
    (strict), and both compute the logits of a random 2x3x64x64 batch in eval mode.
    """
    from benchmarks.reference_torch import load_generated_state

    out = {}
    torch.manual_seed(0)
    for name in TORCH_MODELS:
        gen, ref = build_torch(name, "generated"), build_torch(name, "reference")
        (gp, gb), (rp, rb) = torch_params(gen), torch_params(ref)
        if not (gp == rp == EXPECTED_TORCH_PARAMS[name]):
            raise SystemExit(
                f"{name}: parameter counts differ: generated {gp:,}, reference {rp:,}, "
                f"expected {EXPECTED_TORCH_PARAMS[name]:,}"
            )
        if gb != rb:
            raise SystemExit(f"{name}: buffer sizes differ: generated {gb:,}, reference {rb:,}")
        randomize_bn(torch, gen)
        if name == "unet":  # written with the spec's names (no torchvision model to map to)
            ref.load_state_dict(gen.state_dict(), strict=True)
        else:
            load_generated_state(ref, name, gen.state_dict())
        gen.eval()
        ref.eval()
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            a, b = gen(x), ref(x)
        rel = float((a - b).abs().max() / b.abs().max())
        if not rel < 1e-4:
            raise SystemExit(f"{name}: generated and reference compute different logits (max rel. error {rel:.3g})")
        out[name] = {
            "generated_params": gp,
            "reference_params": rp,
            "expected_params": EXPECTED_TORCH_PARAMS[name],
            "generated_buffer_elements": gb,
            "reference_buffer_elements": rb,
            "eval_max_rel_error_same_weights": rel,
        }
    return out


def bench_torch(torch, cfg: Config) -> dict:
    rows = {}
    for name, label in TORCH_MODELS.items():
        torch.manual_seed(0)
        models = {impl: build_torch(name, impl) for impl in ("generated", "reference")}
        # eval forward
        s, b = cfg.size, cfg.eval_batch
        x = torch.randn(b, 3, s, s)
        for m in models.values():
            m.eval()
        log(f"torch eval {name} {b}x3x{s}x{s}")
        t = alternate({k: make_eval(m, x) for k, m in models.items()}, cfg.warmup, cfg.repeats)
        rows[f"torch_eval_{name}"] = compare_row(
            "torch",
            f"{label} eval forward (no_grad)",
            "s",
            f"{b}x3x{s}x{s}",
            t["generated"],
            t["reference"],
            **faults(t),
        )
        # training step
        x, target, inputs = train_inputs(torch, name, cfg)
        for m in models.values():
            m.train()
        log(f"torch train {name} {inputs}")
        t = alternate({k: make_train_step(m, x, target) for k, m in models.items()}, cfg.warmup, cfg.repeats)
        rows[f"torch_train_{name}"] = compare_row(
            "torch",
            f"{label} training step (fwd+bwd)",
            "s",
            inputs,
            t["generated"],
            t["reference"],
            **faults(t),
        )
        del models
        gc.collect()
    return rows


# ------------------------------------------------------------------------------------------------ torchvision


def import_torchvision():
    """torchvision, through the test suite's CPU workaround (``tests/torchvision_fixture.py``); None if missing."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.torchvision_fixture import import_torchvision as imp

    return imp()


def torchvision_pair(torch, tv, stem: str, builder: str) -> tuple[dict, dict]:
    """({"generated": model, "reference": torchvision's model}, checks) with the same weights, in eval mode.

    torchvision's model (default init, then random BN statistics and affine parameters, seed 0) gives its
    state_dict to the generated model through ``archc.convert.from_torchvision`` (strict load). Checked: the
    same parameter count and buffer elements, and the same eval logits on a random 2x3x64x64 batch (the run
    aborts otherwise).
    """
    from archc.convert import from_torchvision
    from archc.pipeline import compile_spec

    spec = ROOT / "specs" / f"{stem}.yaml"
    torch.manual_seed(0)
    ref = tv.models.get_model_builder(builder)(weights=None, **TORCHVISION_KWARGS.get(stem, {}))  # video's too
    gen = load_generated("torch", stem).build_model()
    (gp, gb), (rp, rb) = torch_params(gen), torch_params(ref)
    if gp != rp or gb != rb:
        raise SystemExit(
            f"{stem}: generated and torchvision.models.{builder} differ in size: parameters {gp:,} vs {rp:,}, "
            f"buffer elements {gb:,} vs {rb:,}"
        )
    randomize_bn(torch, ref)
    gen.load_state_dict(from_torchvision(compile_spec(str(spec)), ref.state_dict(), str(spec)), strict=True)
    gen.eval()
    ref.eval()
    x = torch.randn(2, *clip_shape(stem, quick=True)) if stem in CLIP_INPUTS else torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = gen(x), ref(x)
    if isinstance(a, dict):
        a, b = a["out"], b["out"]
    rel = rel_diff(a, b)
    if not rel < 1e-4:
        raise SystemExit(f"{stem}: generated and torchvision compute different logits (max rel. error {rel:.3g})")
    checks = {
        "generated_params": gp,
        "reference_params": rp,
        "generated_buffer_elements": gb,
        "reference_buffer_elements": rb,
        "eval_max_rel_error_same_weights": rel,
    }
    return {"generated": gen, "reference": ref}, checks


def bench_torchvision(torch, cfg: Config) -> tuple[dict, dict, dict]:
    """Generated models against torchvision's own (``torchvision.models.<builder>()``), as ``bench_torch``: eval
    forward under no_grad and a training step, alternating, ``cfg.tv_repeats`` timed runs per side.

    Returns (rows, parameter-count checks, skipped row -> reason)."""
    rows, params, skipped = {}, {}, {}
    tv = import_torchvision()
    if tv is None:
        reason = "torchvision is not installed (pip install --no-deps torchvision==0.28.0 pillow)"
        for stem in TORCHVISION_MODELS:
            for kind in ("eval", "train"):
                skipped[f"torchvision_{kind}_{stem}"] = reason
        log(f"torchvision rows skipped: {reason}")
        return rows, params, skipped
    for stem, (label, builder) in TORCHVISION_MODELS.items():
        log(f"torchvision {stem}: checking parameter counts and logits against torchvision.models.{builder}")
        models, params[stem] = torchvision_pair(torch, tv, stem, builder)
        s, b = cfg.size, cfg.eval_batch
        torch.manual_seed(0)
        if stem in CLIP_INPUTS:  # clips: a quarter of the batch (each is several images' work)
            b = max(1, b // 4)
            x = torch.randn(b, *clip_shape(stem, cfg.quick))
        else:
            x = torch.randn(b, 3, s, s)
        eval_inputs = "x".join(map(str, x.shape))
        log(f"torchvision eval {stem} {eval_inputs}, {cfg.tv_repeats} runs each")
        t = alternate({k: make_eval(m, x) for k, m in models.items()}, cfg.warmup, cfg.tv_repeats)
        rows[f"torchvision_eval_{stem}"] = compare_row(
            "torchvision",
            f"{label} eval forward (no_grad) vs torchvision.models.{builder}",
            "s",
            eval_inputs,
            t["generated"],
            t["reference"],
            **faults(t),
        )
        x, target, inputs = train_inputs(torch, stem, cfg)
        for m in models.values():
            m.train()
        log(f"torchvision train {stem} {inputs}, {cfg.tv_repeats} runs each")
        t = alternate({k: make_train_step(m, x, target) for k, m in models.items()}, cfg.warmup, cfg.tv_repeats)
        rows[f"torchvision_train_{stem}"] = compare_row(
            "torchvision",
            f"{label} training step (fwd+bwd) vs torchvision.models.{builder}",
            "s",
            inputs,
            t["generated"],
            t["reference"],
            **faults(t),
        )
        del models
        gc.collect()
    return rows, params, skipped


# ------------------------------------------------------------------------------------------------ memory


def alloc_peak_bytes(torch, step: Callable[[], object]) -> int:
    """Peak of live bytes allocated through PyTorch's CPU allocator while ``step`` runs (profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak


def clip_shape(stem: str, quick: bool) -> tuple[int, ...]:
    """A clip model's input after the batch: its benchmark size, or a quarter of each axis in quick runs."""
    c, *spatial = CLIP_INPUTS[stem][0]
    return (c, *(max(1, n // 4) if quick else n for n in spatial))


def train_inputs(torch, name: str, cfg: Config):
    """(input, target labels, "BxCxHxW") of model ``name``'s training-step rows, seed 0."""
    s = cfg.train_size(name)
    torch.manual_seed(0)
    if name in CLIP_INPUTS:  # clips: a quarter of the batch, the model's own classes
        b = max(1, cfg.train_batch // 4)
        x = torch.randn(b, *clip_shape(name, cfg.quick))
        return x, torch.randint(0, CLIP_INPUTS[name][1], (b,)), "x".join(map(str, x.shape))
    x = torch.randn(cfg.train_batch, 3, s, s)
    if name in DENSE_OUTPUTS:  # a class per pixel
        target = torch.randint(0, DENSE_OUTPUTS[name], (cfg.train_batch, s, s))
    else:
        target = torch.randint(0, 1000, (cfg.train_batch,))
    return x, target, f"{cfg.train_batch}x3x{s}x{s}"


def alloc_peaks(torch, models: dict, steps: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Peak live tensor MiB of one training step of every model, after a warm-up step; twice each (deterministic:
    twice to show it)."""
    for step in steps.values():  # warm-up (one-off allocations, oneDNN primitives)
        step()
    peaks: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(2):
        for k, step in steps.items():
            # free the gradients before the session: the running sum then starts at what the step starts
            # with (weights, BN buffers, input) and counts the step's new gradients
            models[k].zero_grad(set_to_none=True)
            gc.collect()
            peaks[k].append(alloc_peak_bytes(torch, step) / 2**20)
    return peaks


# the memory rows' models (the U-Net's row is speed only: its memory worker takes image-classification targets)
MEMORY_MODELS = ("densenet169", "googlenet_torchvision")


def bench_memory_alloc(torch, cfg: Config) -> dict:
    rows = {}
    for name, label in ((n, TORCH_MODELS[n]) for n in MEMORY_MODELS if n in TORCH_MODELS):
        x, target, inputs = train_inputs(torch, name, cfg)
        models = {impl: build_torch(name, impl).train() for impl in ("generated", "reference")}
        steps = {impl: make_train_step(m, x, target) for impl, m in models.items()}
        log(f"memory (allocator, profiler) {name} {inputs}")
        peaks = alloc_peaks(torch, models, steps)
        rows[f"memory_alloc_{name}"] = compare_row(
            "memory",
            f"{label} training step: peak live tensor memory (profiler)",
            "MiB",
            inputs,
            peaks["generated"],
            peaks["reference"],
        )
        del models, steps
        gc.collect()
    return rows


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (VmHWM) to the current RSS; False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    """Give memory that glibc's malloc keeps after frees back to the kernel (no-op without glibc)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def memory_worker(arg: str) -> None:
    """In a fresh process: build the model, run a warm-up step, then print the peak RSS increase of a second step.

    The warm-up step pages in the code of the kernels the step uses and creates oneDNN's primitives; then
    gradients are set to None, freed memory is trimmed back to the kernel and the peak-RSS mark is reset, so the
    measured delta is what the step itself needs (activations, gradients, workspace, allocator slack).

    The peak is read from ``VmHWM`` in /proc/self/status, not from ``getrusage().ru_maxrss``: in a child started
    by ``subprocess`` the latter is at least the *parent's* peak RSS at the time of the spawn (at exec, Linux
    keeps the pre-exec address space's high-water mark in the process' signal struct, and ``subprocess``
    spawns with vfork, sharing the parent's address space until then), so after the in-process rows it reads
    a constant ~650 MiB whatever the child does. ``ru_maxrss`` is reported
    alongside for reference. Where the mark cannot be reset, the first step is measured against ``VmHWM``
    before it (``method`` says which).
    """
    name, impl, size, batch = arg.split(":")
    torch = setup_torch()
    torch.manual_seed(0)
    model = build_torch(name, impl).train()
    x = torch.randn(int(batch), 3, int(size), int(size))
    target = torch.randint(0, 1000, (int(batch),))
    step = make_train_step(model, x, target)
    can_reset = _reset_peak_rss()
    if can_reset:
        step()
        model.zero_grad(set_to_none=True)
    gc.collect()
    _malloc_trim()
    if can_reset:
        _reset_peak_rss()
    rss_before = _status_kib("VmRSS")
    hwm_before = _status_kib("VmHWM")
    step()
    hwm_after = _status_kib("VmHWM")
    base = rss_before if can_reset else hwm_before
    print(
        json.dumps(
            {
                "method": "second step, VmHWM reset" if can_reset else "first step, VmHWM delta",
                "rss_before_kib": rss_before,
                "hwm_before_kib": hwm_before,
                "hwm_after_kib": hwm_after,
                "ru_maxrss_after_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "delta_kib": hwm_after - base,
            }
        )
    )


def rss_runs(name: str, impls: tuple[str, ...], size: int, batch: int, runs: int) -> dict[str, list[dict]]:
    """``runs`` fresh memory-worker processes per impl, alternating; the workers' JSON reports."""
    res: dict[str, list[dict]] = {impl: [] for impl in impls}
    for _ in range(runs):
        for impl in impls:
            argv = [sys.executable, "-m", "benchmarks.run", "--memory-worker", f"{name}:{impl}:{size}:{batch}"]
            p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"memory worker failed ({' '.join(argv)}):\n{p.stderr}")
            res[impl].append(json.loads(p.stdout.strip().splitlines()[-1]))
    return res


def bench_memory_rss(cfg: Config) -> dict:
    rows = {}
    for name, label in ((n, TORCH_MODELS[n]) for n in MEMORY_MODELS if n in TORCH_MODELS):
        s = cfg.train_size(name)
        inputs = f"{cfg.train_batch}x3x{s}x{s}"
        log(f"memory (RSS, fresh process per step) {name} {inputs}, {cfg.memory_runs} run(s) each")
        res = rss_runs(name, ("generated", "reference"), s, cfg.train_batch, cfg.memory_runs)
        gen = [r["delta_kib"] / 1024 for r in res["generated"]]
        ref = [r["delta_kib"] / 1024 for r in res["reference"]]
        rows[f"memory_rss_{name}"] = compare_row(
            "memory",
            f"{label} training step: peak RSS increase (fresh process)",
            "MiB",
            inputs,
            gen,
            ref,
            generated_peak_rss_mib=median([r["hwm_after_kib"] / 1024 for r in res["generated"]]),
            reference_peak_rss_mib=median([r["hwm_after_kib"] / 1024 for r in res["reference"]]),
            method=sorted({r["method"] for rs in res.values() for r in rs}),
        )
    return rows


# ------------------------------------------------------------------------------------------------ keras


def setup_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    tf.get_logger().setLevel("ERROR")  # retracing notices of predict(); not errors
    import keras

    return keras


def keras_app_reason(stem: str) -> str | None:
    """Why the keras.applications-layout rows of ``stem`` cannot run here (None: they can)."""
    for path in (ROOT / "specs" / f"{stem}.yaml", ROOT / "generated" / "keras" / f"{stem}.py"):
        if not path.exists():
            return f"{path.relative_to(ROOT)} does not exist"
    return None


def randomize_keras(model, seed: int) -> None:
    """Random weights for every layer (BN: gamma, beta, moving mean and variance too), as in
    tests/test_keras_applications.py."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):  # or the generated BatchNormalizationUnbiased
            gamma, beta, mean, var = ws
            new = [
                rng.uniform(0.75, 1.25, gamma.shape),
                rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.1, mean.shape),
                rng.uniform(0.5, 1.0, var.shape),
            ]
        else:
            new = [rng.normal(0, (2.0 / int(np.prod(w.shape[:-1]))) ** 0.5 if w.ndim > 1 else 0.1, w.shape) for w in ws]
        layer.set_weights([w.astype(np.float32) for w in new])


def keras_same_function(models: dict, size: int) -> float:
    """keras.applications' (randomized) weights into the generated model, layer by layer in build order (both
    build their layers in the network's order); the max relative difference of their logits on 2 random images."""
    import numpy as np

    gen, ref = models["generated"], models["reference"]
    randomize_keras(ref, seed=5)
    src = [layer for layer in ref.layers if layer.get_weights()]
    dst = [layer for layer in gen.layers if layer.get_weights()]
    if len(src) != len(dst):
        raise SystemExit(f"keras: {len(dst)} weighted layers in the generated model, {len(src)} in the reference")
    for a, b in zip(src, dst):
        wa, wb = a.get_weights(), b.get_weights()
        if [w.size for w in wa] != [w.size for w in wb]:
            raise SystemExit(f"keras: layer {b.name} does not take the weights of {a.name}")
        b.set_weights([w.reshape(v.shape) for w, v in zip(wa, wb)])
    x = np.random.default_rng(6).normal(size=(2, size, size, 3)).astype(np.float32)
    y_ref = np.asarray(ref(x, training=False))
    return rel_diff(np.asarray(gen(x, training=False)), y_ref)


def bench_keras(keras, cfg: Config) -> tuple[dict, dict, dict]:
    """Generated Keras models against keras.applications: returns (rows, parameter counts, skipped row -> reason).

    DenseNet-169 and MobileNet (``KERAS_MODELS``): ``cfg.repeats`` runs, parameter counts checked. The
    keras.applications-layout ResNet-50 and MobileNetV2 (``KERAS_APP_MODELS``): ``cfg.tv_repeats`` runs, parameter
    counts and (keras.applications' random weights loaded layer by layer) eval logits checked; skipped with the
    reason printed when their spec or generated file is missing."""
    import numpy as np
    import tensorflow as tf

    rows, params, skipped = {}, {}, {}
    s, n = cfg.size, cfg.keras_images
    todo = [(stem, label, app, False) for stem, (label, app) in KERAS_MODELS.items()]
    todo += [(stem, label, app, True) for stem, (label, app) in KERAS_APP_MODELS.items()]
    for stem, label, app, layout in todo:
        reason = keras_app_reason(stem) if layout else None
        if reason:
            for how in ("predict", "call"):
                skipped[f"keras_{how}_{stem}"] = reason
            log(f"keras {stem} rows skipped: {reason}")
            continue
        repeats = cfg.tv_repeats if layout else cfg.repeats
        keras.utils.set_random_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # keras.applications warns about non-ImageNet input sizes
            models = {
                "generated": load_generated("keras", stem).build_model(input_shape=(s, s, 3)),
                "reference": getattr(keras.applications, app)(
                    weights=None, input_shape=(s, s, 3), classifier_activation=None
                ),
            }
        counts = {k: m.count_params() for k, m in models.items()}
        if counts["generated"] != counts["reference"]:
            raise SystemExit(f"keras {stem}: parameter counts differ: {counts}")
        params[stem] = {"generated_params": counts["generated"], "reference_params": counts["reference"]}
        if layout:
            rel = params[stem]["eval_max_rel_error_same_weights"] = keras_same_function(models, s)
            if not rel < 1e-4:
                raise SystemExit(
                    f"keras {stem}: generated and keras.applications.{app} compute different logits ({rel:.3g})"
                )
        x = np.random.default_rng(0).random((n, s, s, 3), dtype=np.float32)
        fns = {k: (lambda m=m, x=x: m.predict(x, batch_size=8, verbose=0)) for k, m in models.items()}
        log(f"keras predict {stem} {n}x{s}x{s}x3, {repeats} runs each")
        t = alternate(fns, max(cfg.warmup, 2), repeats)
        rows[f"keras_predict_{stem}"] = compare_row(
            "keras",
            f"{label} model.predict(batch_size=8) vs keras.applications.{app}",
            "s",
            f"{n}x{s}x{s}x3",
            t["generated"],
            t["reference"],
            **faults(t),
        )
        # the model's graph alone: a direct call model(x, training=False) inside a tf.function (no XLA), without
        # predict()'s per-call data pipeline, whose run-to-run noise is larger than any difference of the models
        xt = tf.constant(x)
        graphs = {k: tf.function(lambda t, m=m: m(t, training=False)) for k, m in models.items()}
        fns = {k: (lambda g=g, xt=xt: g(xt).numpy()) for k, g in graphs.items()}
        log(f"keras call (tf.function) {stem} {n}x{s}x{s}x3, {repeats} runs each")
        t = alternate(fns, max(cfg.warmup, 2), repeats)
        rows[f"keras_call_{stem}"] = compare_row(
            "keras",
            f"{label} tf.function(model(x, training=False)) vs keras.applications.{app}",
            "s",
            f"{n}x{s}x{s}x3",
            t["generated"],
            t["reference"],
            **faults(t),
        )
        del models, fns, graphs
        keras.backend.clear_session()
        gc.collect()
    return rows, params, skipped


# ------------------------------------------------------------------------------------------------ compiler


def bench_latency(cfg: Config) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "latency_build_torch_densenet169": (
                "archc build specs/densenet169.yaml --backend torch -o <tmp>/densenet169.py",
                [sys.executable, "-m", "archc", "build", "specs/densenet169.yaml", "--backend", "torch"]
                + ["-o", str(Path(tmp) / "densenet169.py")],
            ),
            "latency_summary_densenet169": (
                "archc summary specs/densenet169.yaml",
                [sys.executable, "-m", "archc", "summary", "specs/densenet169.yaml"],
            ),
            "latency_python_startup": (
                "python -c pass (interpreter start-up, for scale)",
                [sys.executable, "-c", "pass"],
            ),
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        log(f"compiler latency, {cfg.latency_runs} runs each")
        for _ in range(cfg.latency_runs):
            for key, (_, argv) in commands.items():
                t = time.perf_counter()
                p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
                times[key].append(time.perf_counter() - t)
                if p.returncode != 0:
                    raise SystemExit(f"{' '.join(argv)} failed:\n{p.stderr}")
        for key, (what, _) in commands.items():
            rows[key] = {
                "section": "latency",
                "what": what,
                "unit": "s",
                "runs": len(times[key]),
                "median": median(times[key]),
                "min": min(times[key]),
                "all": times[key],
            }
    return rows


SCALING_HEAD = """\
name: scale_{mode}_{n}
input: {{height: 8, width: 8, channels: 8}}
blocks:
  unit:
    params: {{out: null}}
    body:
      - conv: {{name: conv, out: $out, kernel: 3, padding: 1, bias: false}}
      - bn: {{name: bn}}
      - relu: {{name: relu}}
network:
"""


def scaling_spec(mode: str, n: int) -> str:
    text = SCALING_HEAD.format(mode=mode, n=n)
    if mode == "explicit":
        return text + "  - unit: {out: 8}\n" * n
    return text + f"  - repeat: {{name: rep, times: {n}, body: [unit: {{out: 8}}]}}\n"


def bench_scaling(cfg: Config) -> tuple[dict, dict]:
    from archc.backends import get_backend

    from archc.analysis import analyze
    from archc.pipeline import compile_spec

    table: dict = {}
    rows: dict = {}
    stages = ("analysis", "emit_torch", "emit_keras")
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.yaml"  # first calls load and compile the emitters' jinja templates: untimed
        warm.write_text(scaling_spec("explicit", 2))
        for backend in ("torch", "keras"):
            get_backend(backend).emit(compile_spec(str(warm)))
        for mode in ("explicit", "repeat"):
            table[mode] = {}
            for n in cfg.scaling_blocks:
                path = Path(tmp) / f"scale_{mode}_{n}.yaml"
                path.write_text(scaling_spec(mode, n))
                log(f"scaling {mode} {n} blocks")
                runs: dict[str, list[float]] = {k: [] for k in ("compile", "analyze", *stages[1:])}
                for _ in range(cfg.scaling_repeats):
                    gc.collect()
                    t0 = time.perf_counter()
                    model = compile_spec(str(path))
                    t1 = time.perf_counter()
                    report = analyze(model)
                    t2 = time.perf_counter()
                    get_backend("torch").emit(model)
                    t3 = time.perf_counter()
                    get_backend("keras").emit(model)
                    t4 = time.perf_counter()
                    runs["compile"].append(t1 - t0)
                    runs["analyze"].append(t2 - t1)
                    runs["emit_torch"].append(t3 - t2)
                    runs["emit_keras"].append(t4 - t3)
                if report.trainable != n * (9 * 8 * 8 + 2 * 8):
                    raise SystemExit(f"scaling spec {mode} {n}: unexpected parameter count {report.trainable}")
                entry = {
                    "blocks": n,
                    "runs": cfg.scaling_repeats,
                    "compile_s": median(runs["compile"]),
                    "analyze_s": median(runs["analyze"]),
                    "analysis_s": median([a + b for a, b in zip(runs["compile"], runs["analyze"])]),
                    "emit_torch_s": median(runs["emit_torch"]),
                    "emit_keras_s": median(runs["emit_keras"]),
                }
                for st in stages:
                    entry[f"{st}_us_per_block"] = entry[f"{st}_s"] / n * 1e6
                table[mode][str(n)] = entry
            small, large = cfg.scaling_blocks[-2], cfg.scaling_blocks[-1]
            for st in stages:
                a = table[mode][str(small)][f"{st}_us_per_block"]
                b = table[mode][str(large)][f"{st}_us_per_block"]
                rows[f"scaling_{mode}_{st}"] = {
                    "section": "scaling",
                    "what": f"{mode}: {st} time per block at {large:,} vs {small:,} blocks",
                    "blocks_small": small,
                    "blocks_large": large,
                    "us_per_block_small": a,
                    "us_per_block_large": b,
                    "ratio": b / a,
                }
    return table, rows


# ------------------------------------------------------------------------------------------------ extras

# an option "pays" when its median is at least 5 % below the plain model's (time or memory): beyond the run-to-run
# noise of these medians (~+-3 %), and (time rows) with outputs that agree with the plain model's
PAYS_BELOW = 0.95
AGREE_REL = 1e-4  # max |option - plain| / max |plain| of the outputs
EXTRAS_EVAL = {"densenet169": "DenseNet-169", "googlenet_torchvision": "GoogLeNet (torchvision layout)"}
EXTRAS_FOLD = EXTRAS_EVAL | {"mobilenet_v1": "MobileNet 1.0"}
COMPILE_LABELS = EXTRAS_EVAL | {"mobilenet_v1_025_160": "MobileNet 0.25 (160)"}


def rel_diff(a, b) -> float:
    """max |a - b| / max |b| (torch tensors or numpy arrays): how far an option's output is from the plain one."""
    return float(abs(a - b).max() / abs(b).max())


def option_row(what: str, unit: str, inputs: str, opt: list[float], plain: list[float], ok: bool = True, **extra):
    """An extras row: ``ratio`` = median(option) / median(plain); ``pays`` if at most ``PAYS_BELOW`` (and ``ok``)."""
    o, p = median(opt), median(plain)
    return {
        "section": "extras",
        "what": what,
        "unit": unit,
        "input": inputs,
        "runs": len(opt),
        "option": o,
        "plain": p,
        "ratio": o / p,
        "paired_ratio": median([a / b for a, b in zip(opt, plain)]),
        "pays": bool(ok and o / p <= PAYS_BELOW),
        "option_runs": opt,
        "plain_runs": plain,
        **extra,
    }


def failed_row(what: str, inputs: str, error: BaseException) -> dict:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return {"section": "extras", "what": what, "input": inputs, "pays": False, "error": text[:600], "note": "failed"}


def pct(ratio: float) -> str:
    """A ratio as a signed percentage change: 0.8 -> "-20 %"."""
    return f"{(ratio - 1) * 100:+.0f} %"


def randomize_bn(torch, net) -> None:
    """Random BN running statistics and affine parameters (fresh ones are 0/1: folding them would be trivial)."""
    with torch.no_grad():
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.2)
            elif name.endswith("running_var"):
                b.uniform_(0.3, 2.0)
        for p in net.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.2)


class Emitted:
    """Models emitted from the specs at run time into one temporary directory, each spec compiled once."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.modules: dict = {}

    def get(self, stem: str, **options):
        key = (stem, tuple(sorted(options.items())))
        if key not in self.modules:
            self.modules[key] = emit_torch_module(stem, self.directory, **options)
        return self.modules[key]

    def model(self, torch, stem: str, **options):
        """(IR, a fresh model in eval mode with random BN statistics and affine parameters, seed 0)."""
        model_ir, module = self.get(stem, **options)
        torch.manual_seed(0)
        net = module.build_model()
        randomize_bn(torch, net)
        return model_ir, net.eval()


def extras_memory_efficient(torch, cfg: Config, emitted: Emitted) -> dict:
    """DenseNet-169 built with ``-O memory_efficient`` (checkpointed dense layers) vs the plain build: training."""
    name = "densenet169"
    _, plain_module = emitted.get(name)
    _, lean_module = emitted.get(name, memory_efficient=True)
    torch.manual_seed(0)
    models = {"option": lean_module.build_model(), "plain": plain_module.build_model()}
    models["option"].load_state_dict(models["plain"].state_dict())
    x, target, inputs = train_inputs(torch, name, cfg)
    steps = {k: make_train_step(m.train(), x, target) for k, m in models.items()}
    # sanity, same weights: the same loss, gradients, running statistics after the step (checkpointing must not
    # update them again when it recomputes a layer) and eval logits
    loss = {k: step().item() for k, step in steps.items()}
    grads = {k: dict(m.named_parameters()) for k, m in models.items()}
    checks = {
        "loss_rel_diff": abs(loss["option"] - loss["plain"]) / abs(loss["plain"]),
        "grad_max_rel_diff": max(rel_diff(p.grad, grads["plain"][n].grad) for n, p in grads["option"].items()),
        "buffer_max_rel_diff": max(
            rel_diff(b.float(), models["plain"].get_buffer(n).float()) if b.abs().max() > 0 else 0.0
            for n, b in models["option"].named_buffers()
        ),
    }
    with torch.no_grad():
        xe = x[:2]
        checks["eval_max_rel_diff"] = rel_diff(models["option"].eval()(xe), models["plain"].eval()(xe))
    for m in models.values():
        m.train()
    bad = {k: v for k, v in checks.items() if not v < AGREE_REL}
    if bad:
        raise SystemExit(f"memory-efficient DenseNet-169 computes something else than the plain build: {bad}")
    rows = {}
    log(f"extras: memory-efficient DenseNet-169 training step {inputs}")
    t = alternate(steps, cfg.warmup, cfg.repeats)
    row = rows["extras_memory_efficient_time_densenet169"] = option_row(
        "DenseNet-169 -O memory_efficient training step (fwd+bwd) time", "s", inputs, t["option"], t["plain"], **checks
    )
    row["note"] = f"recomputes every dense layer in backward: {pct(row['ratio'])} time per step"
    log(f"extras: memory-efficient DenseNet-169 peak memory (profiler) {inputs}")
    peaks = alloc_peaks(torch, models, steps)
    row = rows["extras_memory_efficient_alloc_densenet169"] = option_row(
        "DenseNet-169 -O memory_efficient training step: peak live tensor memory (profiler)",
        "MiB",
        inputs,
        peaks["option"],
        peaks["plain"],
    )
    row["note"] = f"{pct(row['ratio'])} peak ({row['plain'] - row['option']:,.0f} MiB less)"
    del models, steps, grads
    gc.collect()
    s = cfg.train_size(name)
    log(f"extras: memory-efficient DenseNet-169 peak RSS, {cfg.memory_runs} fresh process(es) each")
    res = rss_runs(name, ("memory_efficient", "plain"), s, cfg.train_batch, cfg.memory_runs)
    row = rows["extras_memory_efficient_rss_densenet169"] = option_row(
        "DenseNet-169 -O memory_efficient training step: peak RSS increase (fresh process)",
        "MiB",
        inputs,
        [r["delta_kib"] / 1024 for r in res["memory_efficient"]],
        [r["delta_kib"] / 1024 for r in res["plain"]],
    )
    row["note"] = f"{pct(row['ratio'])} peak RSS increase ({row['plain'] - row['option']:,.0f} MiB less)"
    return rows


def inductor_cache(directory: Path, fresh: bool):
    """Inductor's on-disk caches in a new directory below ``directory`` (``fresh``: the first compile of a model
    is a cold one), or, if not ``fresh``, wherever they are (the user's cache: kernels of earlier runs are reused)."""
    if not fresh:
        return contextlib.nullcontext()
    try:
        from torch._inductor.utils import fresh_cache
    except ImportError:  # older torch
        from torch._inductor.utils import fresh_inductor_cache as fresh_cache
    return fresh_cache(dir=str(directory))


def compiled_first_call(torch, model, x) -> tuple[Callable[[], object], object, float]:
    """``torch.compile(model, fullgraph=True)`` after a dynamo reset: (eval function, its first output, seconds)."""
    torch._dynamo.reset()
    run = make_eval(torch.compile(model, fullgraph=True), x)
    t0 = time.perf_counter()
    out = run()
    return run, out, time.perf_counter() - t0


def extras_torch_compile(torch, cfg: Config, emitted: Emitted) -> dict:
    """``torch.compile(model, fullgraph=True)`` (inductor) vs eager: eval forward under no_grad.

    Inductor's first compile in a process pays a one-off start-up (probing the C++ compiler and the CPU's vector
    instruction sets: ~13 s on the reference machine); a conv-BN-ReLU is compiled first to take it out of the
    models' compile times, and reported on its own.
    """
    rows = {}
    cache = "fresh" if cfg.compile_fresh_cache else "default"
    startup = None
    try:
        log(f"extras: torch.compile start-up (conv-BN-ReLU, {cache} inductor cache)")
        tiny = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
        with inductor_cache(emitted.directory, cfg.compile_fresh_cache):
            startup = compiled_first_call(torch, tiny, torch.randn(1, 3, 8, 8))[2]
    except Exception as e:  # the models' rows below report it
        log(f"extras: torch.compile start-up failed: {type(e).__name__}: {e}")
    for stem in cfg.compile_models:
        s, b = cfg.compile_size, cfg.eval_batch
        inputs = f"{b}x3x{s}x{s}"
        what = f"{COMPILE_LABELS[stem]} torch.compile(fullgraph=True) eval forward (no_grad)"
        key = f"extras_compile_{stem}"
        _, model = emitted.model(torch, stem)
        x = torch.randn(b, 3, s, s)
        eager = make_eval(model, x)
        ref = eager()
        log(f"extras: torch.compile {stem} {inputs} ({cache} inductor cache)")
        try:
            with inductor_cache(emitted.directory, cfg.compile_fresh_cache):
                first = {}
                _, out, first["first"] = compiled_first_call(torch, model, x)
                # again: dynamo traces anew, inductor finds the kernels compiled by the first call in its cache
                run, out, first["again"] = compiled_first_call(torch, model, x)
                rel = rel_diff(out, ref)
                log(f"extras: torch.compile {stem} compiled in {first['first']:.1f} s; timing")
                t = alternate({"option": run, "plain": eager}, cfg.warmup, cfg.repeats)
        except Exception as e:  # report inductor's failure on this machine, don't abort the run
            rows[key] = failed_row(what, inputs, e)
            continue
        finally:
            torch._dynamo.reset()
        row = rows[key] = option_row(
            what,
            "s",
            inputs,
            t["option"],
            t["plain"],
            ok=rel < AGREE_REL,
            inductor_cache=cache,
            inductor_startup_s=startup,
            compile_first_s=first["first"],
            compile_cached_s=first["again"],
            max_rel_diff=rel,
        )
        saved = row["plain"] - row["option"]
        calls = f"; pays back after {first['first'] / saved:,.0f} calls" if saved > 0 else ""
        start = f"; inductor start-up {startup:.1f} s once per process, not included" if startup is not None else ""
        row["note"] = (
            f"first call compiles: {first['first']:.1f} s ({cache} cache), {first['again']:.1f} s with its kernels "
            f"cached{calls}{start}; max rel diff {rel:.1e}"
        )
    return rows


def extras_channels_last(torch, cfg: Config, emitted: Emitted) -> dict:
    """Model and input in ``torch.channels_last`` vs contiguous (NCHW): eval forward under no_grad."""
    rows = {}
    s, b = cfg.size, cfg.eval_batch
    inputs = f"{b}x3x{s}x{s}"
    for stem, label in EXTRAS_EVAL.items():
        _, model = emitted.model(torch, stem)
        last = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x = torch.randn(b, 3, s, s)
        fns = {"option": make_eval(last, x.contiguous(memory_format=torch.channels_last)), "plain": make_eval(model, x)}
        rel = rel_diff(fns["option"](), fns["plain"]())
        log(f"extras: channels_last {stem} {inputs}")
        t = alternate(fns, cfg.warmup, cfg.repeats)
        row = rows[f"extras_channels_last_{stem}"] = option_row(
            f"{label} channels_last model and input, eval forward (no_grad)",
            "s",
            inputs,
            t["option"],
            t["plain"],
            ok=rel < AGREE_REL,
            max_rel_diff=rel,
        )
        row["note"] = f"{pct(row['ratio'])} time; input converted before timing; max rel diff {rel:.1e}"
        del model, last, fns
        gc.collect()
    return rows


def extras_fold_bn(torch, cfg: Config, emitted: Emitted) -> dict:
    """``archc.export.fold_batchnorm`` (BN folded into the preceding conv) vs the unfolded model: eval forward at
    the eval batch (``extras_fold_bn_*``) and at batch 1 (``extras_fold_bn_b1_*``: deployment latency, where the
    per-layer overhead a folded BN saves weighs more)."""
    from archc.export import fold_batchnorm, foldable_pairs

    rows = {}
    s = cfg.size
    for stem, label in EXTRAS_FOLD.items():
        model_ir, model = emitted.model(torch, stem)
        folded = fold_batchnorm(model_ir, copy.deepcopy(model))
        pairs = len(foldable_pairs(model_ir))
        bn = {
            k: sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
            for k, net in (("plain", model), ("folded", folded))
        }
        for key, b in ((f"extras_fold_bn_{stem}", cfg.eval_batch), (f"extras_fold_bn_b1_{stem}", 1)):
            inputs = f"{b}x3x{s}x{s}"
            x = torch.randn(b, 3, s, s)
            fns = {"option": make_eval(folded, x), "plain": make_eval(model, x)}
            rel = rel_diff(fns["option"](), fns["plain"]())
            log(f"extras: BN folding {stem} {inputs}")
            t = alternate(fns, cfg.warmup, cfg.repeats)
            row = rows[key] = option_row(
                f"{label} BatchNorm folded into convs (archc.export.fold_batchnorm), eval forward (no_grad)",
                "s",
                inputs,
                t["option"],
                t["plain"],
                ok=rel < AGREE_REL,
                max_rel_diff=rel,
                folded_pairs=pairs,
                batchnorms=bn["plain"],
                batchnorms_left=bn["folded"],
            )
            row["note"] = f"{pairs} of {bn['plain']} BNs folded; {pct(row['ratio'])} time; max rel diff {rel:.1e}"
        del model, folded, fns
        gc.collect()
    return rows


def extras_keras_jit(keras, cfg: Config) -> dict:
    """Generated Keras models: ``tf.function(..., jit_compile=True)`` (XLA) vs ``tf.function`` (graph, no XLA)."""
    import numpy as np
    import tensorflow as tf

    rows = {}
    s, n = cfg.size, cfg.keras_images
    inputs = f"{n}x{s}x{s}x3"
    for stem in cfg.keras_jit_models:
        label = KERAS_MODELS[stem][0]
        what = f"{label} (keras) tf.function(jit_compile=True) vs tf.function, model(x, training=False)"
        key = f"extras_keras_jit_{stem}"
        keras.utils.set_random_seed(0)
        model = load_generated("keras", stem).build_model(input_shape=(s, s, 3))
        x = tf.constant(np.random.default_rng(0).random((n, s, s, 3), dtype=np.float32))
        graphs = {
            "option": tf.function(lambda t, m=model: m(t, training=False), jit_compile=True),
            "plain": tf.function(lambda t, m=model: m(t, training=False)),
        }
        log(f"extras: keras jit_compile {stem} {inputs}")
        try:
            first, out = {}, {}
            for k, g in graphs.items():  # the first call traces (and, with jit_compile, compiles with XLA)
                t0 = time.perf_counter()
                out[k] = g(x).numpy()
                first[k] = time.perf_counter() - t0
            rel = rel_diff(out["option"], out["plain"])
            fns = {k: (lambda g=g, x=x: g(x).numpy()) for k, g in graphs.items()}
            t = alternate(fns, max(cfg.warmup, 2), cfg.repeats)
        except Exception as e:  # report XLA's failure, don't abort the run
            rows[key] = failed_row(what, inputs, e)
            continue
        finally:
            del graphs
            keras.backend.clear_session()
            gc.collect()
        row = rows[key] = option_row(
            what,
            "s",
            inputs,
            t["option"],
            t["plain"],
            ok=rel < AGREE_REL,
            first_call_s=first["option"],
            plain_first_call_s=first["plain"],
            max_rel_diff=rel,
        )
        row["note"] = (
            f"first call (trace + XLA compile) {first['option']:.1f} s, without XLA {first['plain']:.1f} s; "
            f"max rel diff {rel:.1e}"
        )
    return rows


def bench_extras(torch, keras, cfg: Config) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        emitted = Emitted(Path(tmp))
        rows |= extras_memory_efficient(torch, cfg, emitted)
        rows |= extras_channels_last(torch, cfg, emitted)
        rows |= extras_fold_bn(torch, cfg, emitted)
        rows |= extras_keras_jit(keras, cfg)
        rows |= extras_torch_compile(torch, cfg, emitted)  # last: it leaves inductor's compile workers running
    return rows


# ------------------------------------------------------------------------------------------------ report


def fmt_s(v: float) -> str:
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.3f} s"


def fmt_v(v: float, unit: str) -> str:
    return fmt_s(v) if unit == "s" else f"{v:,.1f} {unit}"


def markdown(result: dict) -> str:
    m = result["machine"]
    cfg = result["config"]
    out = ["# archc benchmark" + (" (--quick)" if cfg["quick"] else ""), ""]
    out.append(
        f"- Machine: {m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), "
        f"{m.get('memory_gib')} GiB; {m['platform']}; Python {m['python']}"
    )
    libs = []
    if "torch" in m:
        libs.append(
            f"torch {m['torch']} (set_num_threads({THREADS}): {m['torch_num_threads']} threads, "
            f"{m['torch_num_interop_threads']} interop)"
        )
    if "tensorflow" in m:
        libs.append(
            f"tensorflow {m['tensorflow']} / keras {m['keras']} ({m['keras_backend']} backend; intra-op "
            f"{m['tf_intra_op_threads']}, inter-op {m['tf_inter_op_threads']} threads; oneDNN {m['tf_onednn_opts']})"
        )
    if libs:
        out.append("- Libraries: " + "; ".join(libs))
    out.append(
        f"- Runs: {cfg['repeats']} timed per side ({cfg['tv_repeats']} in the rows against torchvision and the "
        f"keras.applications-layout rows) after {cfg['warmup']} warm-up (keras: at least 2), alternating "
        "generated/reference; medians; ratio = generated / reference; paired = median of per-pair ratios."
    )
    out.append("")
    compare = [(k, r) for k, r in result["rows"].items() if "reference" in r]
    if compare:
        out.append("| row | input | runs | generated | reference | gen/ref | paired | page faults/run gen, ref |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for key, r in compare:
            out.append(
                f"| {key}: {r['what']} | {r['input']} | {r['runs']} | {fmt_v(r['generated'], r['unit'])} | "
                f"{fmt_v(r['reference'], r['unit'])} | {r['ratio']:.3f} | {r['paired_ratio']:.3f} | "
                + (
                    f"{r['generated_minflt']:,.0f}, {r['reference_minflt']:,.0f} |"
                    if "generated_minflt" in r
                    else "- |"
                )
            )
        out.append("")
    pc = result.get("param_counts", {})
    if pc:
        parts = [f"{k} {v['generated_params']:,} = {v['reference_params']:,}" for k, v in pc.get("torch", {}).items()]
        parts += [
            f"torchvision {k} {v['generated_params']:,} = {v['reference_params']:,}"
            for k, v in pc.get("torchvision", {}).items()
        ]
        parts += [
            f"keras {k} {v['generated_params']:,} = {v['reference_params']:,}" for k, v in pc.get("keras", {}).items()
        ]
        out.append("- Parameter counts (generated = reference): " + "; ".join(parts))
        eq = [
            f"{prefix}{k} {v['eval_max_rel_error_same_weights']:.2g}"
            for group, prefix in (("torch", ""), ("torchvision", "torchvision "), ("keras", "keras "))
            for k, v in pc.get(group, {}).items()
            if "eval_max_rel_error_same_weights" in v
        ]
        if eq:
            out.append(
                "- Same weights, eval logits of 2 random images (torch: 64x64; keras: the row's size), max relative "
                "difference: " + "; ".join(eq)
            )
        out.append("")
    for key, reason in result.get("skipped", {}).items():
        out.append(f"- Skipped {key}: {reason}")
    if result.get("skipped"):
        out.append("")
    lat = [(k, r) for k, r in result["rows"].items() if r["section"] == "latency"]
    if lat:
        out.append("| compiler latency (whole process) | runs | median | min |")
        out.append("| --- | ---: | ---: | ---: |")
        for key, r in lat:
            out.append(f"| {key}: {r['what']} | {r['runs']} | {r['median']:.3f} s | {r['min']:.3f} s |")
        out.append("")
    sc = result.get("scaling")
    if sc:
        out.append("| scaling spec | blocks | analysis | us/block | torch emit | us/block | keras emit | us/block |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode, entries in sc.items():
            for n, e in entries.items():
                out.append(
                    f"| {mode} | {int(n):,} | {e['analysis_s']:.4f} s | {e['analysis_us_per_block']:.1f} | "
                    f"{e['emit_torch_s']:.4f} s | {e['emit_torch_us_per_block']:.1f} | "
                    f"{e['emit_keras_s']:.4f} s | {e['emit_keras_us_per_block']:.1f} |"
                )
        out.append("")
        out.append("| scaling: per-block time, large N / smaller N | ratio |")
        out.append("| --- | ---: |")
        for key, r in result["rows"].items():
            if r["section"] == "scaling":
                out.append(f"| {key}: {r['what']} | {r['ratio']:.2f} |")
        out.append("")
    extras = [(k, r) for k, r in result["rows"].items() if r["section"] == "extras"]
    if extras:
        out.append(
            f"Extras: each option against the plain generated model, alternating; ratio = option / plain (< 1: faster "
            f"or smaller); pays = ratio <= {PAYS_BELOW} and outputs within {AGREE_REL:g} relative of the plain ones."
        )
        out.append("")
        out.append("| extra | input | runs | option | plain | option/plain | paired | pays | note |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        for key, r in extras:
            if "error" in r:
                error = r["error"].replace("|", "/")  # a table cell
                out.append(f"| {key}: {r['what']} | {r['input']} | - | - | - | - | - | no | {error} |")
                continue
            out.append(
                f"| {key}: {r['what']} | {r['input']} | {r['runs']} | {fmt_v(r['option'], r['unit'])} | "
                f"{fmt_v(r['plain'], r['unit'])} | {r['ratio']:.3f} | {r['paired_ratio']:.3f} | "
                f"{'yes' if r['pays'] else 'no'} | {r['note']} |"
            )
        out.append("")
    out.append(f"Total benchmark time: {result['total_seconds']:.1f} s")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ main


def run_summary(result: dict) -> dict:
    """What identifies one run in a merged file: when, where, how, and which rows it measured."""
    keys = ("run", "config", "machine", "total_seconds")
    return {k: result.get(k) for k in keys} | {"rows": list(result["rows"])}


def merged(old: dict, new: dict) -> dict:
    """``new``'s rows (and checks, scaling table) added to ``old``'s; ``runs`` lists every run, oldest first
    (a file written before ``--merge`` existed counts as one run, its ``run`` None)."""
    runs = old.get("runs") or [run_summary(old)]
    kept = [k for k in old["rows"] if k not in new["rows"]]
    runs = [r | {"rows": [k for k in r["rows"] if k in kept]} for r in runs]
    out = {**new, "rows": {k: old["rows"][k] for k in kept} | new["rows"]}
    counts = {g: dict(v) for g, v in old.get("param_counts", {}).items()}
    for group, v in new.get("param_counts", {}).items():
        counts[group] = counts.get(group, {}) | v
    out["param_counts"] = counts
    if "scaling" not in new and "scaling" in old:
        out["scaling"] = old["scaling"]
    out["runs"] = [r for r in runs if r["rows"]] + [run_summary(new)]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="every row at a tiny size, 1 repeat (smoke test)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write all numbers (default {DEFAULT_JSON})")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per side (default 15; --quick: 1)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs per side (default 2; --quick: 1)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated spec stems: the torchvision and keras sections measure only these",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="add this run's rows to the JSON file's (earlier runs' rows it does not measure are kept; 'runs' "
        "lists each run's machine, config and rows)",
    )
    p.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_worker:
        memory_worker(args.memory_worker)
        return 0
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))} (choose from {', '.join(SECTIONS)})")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be at least 1")
    cfg = Config.make(args.quick, args.repeats, args.warmup)
    if args.models:
        chosen = set(args.models.split(","))
        known = set(TORCH_MODELS) | set(TORCHVISION_MODELS) | set(KERAS_MODELS) | set(KERAS_APP_MODELS)
        if chosen - known:
            p.error(f"unknown model(s) {', '.join(sorted(chosen - known))} (choose from {', '.join(sorted(known))})")
        for table in (TORCH_MODELS, TORCHVISION_MODELS, KERAS_MODELS, KERAS_APP_MODELS):
            for stem in set(table) - chosen:
                del table[stem]
    json_path = Path(args.json).resolve()
    start = time.perf_counter()

    result: dict = {
        "run": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": asdict(cfg) | {"sections": sections, "threads": THREADS},
        "rows": {},
        "skipped": {},
    }
    param_counts: dict = {}
    torch = setup_torch() if {"torch", "torchvision", "memory", "extras"} & set(sections) else None
    keras = None  # imported when a section needs it, after the torch sections, as before the extras existed
    result["machine"] = machine_info(sections)
    if {"torch", "memory"} & set(sections):
        log("checking parameter counts and outputs of generated vs reference torch models")
        param_counts["torch"] = check_torch_models(torch)
    if "torch" in sections:
        result["rows"] |= bench_torch(torch, cfg)
    if "torchvision" in sections:
        rows, param_counts["torchvision"], skipped = bench_torchvision(torch, cfg)
        result["rows"] |= rows
        result["skipped"] |= skipped
    if "memory" in sections:
        result["rows"] |= bench_memory_alloc(torch, cfg)
        result["rows"] |= bench_memory_rss(cfg)
    if {"keras", "extras"} & set(sections):
        keras = setup_keras()
        add_keras_info(result["machine"])
    if "keras" in sections:
        rows, param_counts["keras"], skipped = bench_keras(keras, cfg)
        result["rows"] |= rows
        result["skipped"] |= skipped
    if "latency" in sections:
        result["rows"] |= bench_latency(cfg)
    if "scaling" in sections:
        result["scaling"], rows = bench_scaling(cfg)
        result["rows"] |= rows
    if "extras" in sections:
        result["rows"] |= bench_extras(torch, keras, cfg)
    result["param_counts"] = param_counts
    result["total_seconds"] = time.perf_counter() - start
    print(markdown(result))
    for row in result["rows"].values():
        row["run"] = result["run"]
    if args.merge and json_path.exists():
        result = merged(json.loads(json_path.read_text()), result)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
