"""Time one training step of a plain Trainer, ``flat=False`` and ``flat=True`` against the floors.

    .venv/bin/python benchmarks/step_time.py                 # scaled CelebA / NYUv2 rows
    .venv/bin/python benchmarks/step_time.py --full          # the benchmarks' full sizes
    .venv/bin/python benchmarks/step_time.py --models lenet resnet18

For each model, on one fixed random batch, in one process with ``torch.set_num_threads(1)``:

* ``F``: one forward of every task (train mode, graph kept, losses included); ``F_one``: a
  forward of one task (``tasks=[t]``, rotating over the tasks);
* ``B``: one per-task backward, ``torch.autograd.grad(L_i, all parameters)`` from the clean
  graph, the mean over the measured tasks; ``B_sum``: the same for ``sum_i L_i``;
* the steps: ``trainer`` (``transformers.Trainer``, loss = sum of the task losses), ``mtl``
  (``FlatMTLTrainer`` with ``flat=False``) and ``flat`` (``flat=True``), each
  ``training_step`` + ``optimizer.step()`` + ``zero_grad``; ``*_batched`` use
  ``batched_task_grads=True``. Aggregator ``sum``: the floors hold no aggregation cost.

Floors: plain Trainer ``F + B_sum``, plain MTL ``F + m B``, flat ``(m + 1) F + 2m B`` (and the
tighter ``F + m F_one + 2m B``, since a perturbed pass runs one head only). The loop overhead
(optimizer step, Trainer glue) is the plain Trainer's median step minus ``F + B_sum``; it is
subtracted from every step before dividing by its floor. Variants are interleaved (the order
rotates every repeat) after warm-up steps, and medians are reported: the machine is shared.
``x floor (fastest)`` repeats the computation with the fastest sample of every quantity
(noise only adds time), as a second estimate.

Peak memory: after the timings, glibc's mmap threshold is fixed at 64 KiB (so freed tensors
go back to the OS and the resident size follows the live tensors), the kernel's peak-RSS
counter is reset (``/proc/self/clear_refs``) and each variant runs two more steps; its peak
is the smaller ``VmHWM`` minus the resident size before that step (Linux only). The batched
variants run on LeNet only (on ResNet-18 they measured no faster, at 10 s a step).

Writes a table to stdout and ``benchmarks/results/step_time.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

from flatmtl import FlatMTLConfig, FlatMTLTrainer, MultiTaskConfig, MultiTaskModel
from flatmtl.modeling import presets

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "step_time.json")


@dataclass
class Case:
    """One benchmark row: a model, its batch and how often to time it."""

    name: str
    description: str
    build: Callable[[], MultiTaskModel]
    batch: Callable[[], dict[str, Tensor]]
    repeats: int
    warmup: int
    batched: bool
    floor_tasks: int


def _multi_mnist_model(backbone: str) -> MultiTaskModel:
    tasks = [
        {"name": name, "type": "classification", "num_labels": 10, "label_index": index}
        for index, name in enumerate(("top_left", "bottom_right"))
    ]
    return MultiTaskModel(MultiTaskConfig(tasks=tasks, backbone=backbone))


def _multi_mnist_batch() -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "pixel_values": torch.rand(256, 1, 36, 36, generator=generator),
        "labels": torch.randint(0, 10, (256, 2), generator=generator),
    }


def _celeba_batch(size: int) -> Callable[[], dict[str, Tensor]]:
    def batch() -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(0)
        return {
            "pixel_values": torch.rand(size, 3, 64, 64, generator=generator),
            "labels": torch.randint(0, 2, (size, 40), generator=generator),
        }

    return batch


def _nyuv2_batch(height: int, width: int) -> Callable[[], dict[str, Tensor]]:
    def batch() -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(0)
        normal = torch.randn(2, 3, height, width, generator=generator)
        return {
            "pixel_values": torch.rand(2, 3, height, width, generator=generator),
            "segmentation": torch.randint(0, 13, (2, height, width), generator=generator),
            "depth": torch.rand(2, 1, height, width, generator=generator) + 0.1,
            "normal": nn.functional.normalize(normal, dim=1),
        }

    return batch


def cases(full: bool, scale: float) -> dict[str, Case]:
    """The rows; ``full=False`` shrinks CelebA and NYUv2 so that the run fits ~10 minutes."""

    def repeats(count: int) -> int:
        return max(1, round(count * scale))

    if full:
        celeba_width, celeba_batch, celeba_text = 64, 32, "width 64, batch 32"
        filters, height, width = None, 288, 384
        mtan_text = "filters 64-512, batch 2, 3x288x384"
    else:
        celeba_width, celeba_batch, celeba_text = 16, 8, "width 16 (of 64), batch 8 (of 32)"
        filters, height, width = [16, 32, 64, 128, 128], 96, 128
        mtan_text = "filters 16-128 (of 64-512), batch 2, 3x96x128 (of 3x288x384)"
    return {
        "lenet": Case(
            "lenet", "LeNet, MultiMNIST shapes: batch 256, 1x36x36, 2 tasks",
            lambda: _multi_mnist_model("lenet"), _multi_mnist_batch, repeats(15), 3, True, 2,
        ),
        "resnet18": Case(
            "resnet18", "ResNet-18, MultiMNIST shapes: batch 256, 1x36x36, 2 tasks",
            lambda: _multi_mnist_model("resnet18"), _multi_mnist_batch, repeats(9), 1, False, 2,
        ),
        "celeba40": Case(
            "celeba40", f"CIFAR ResNet-18 + 40 heads, CelebA shapes: 3x64x64, {celeba_text}",
            lambda: MultiTaskModel(presets.celeba_config(width=celeba_width)),
            _celeba_batch(celeba_batch), repeats(3) if not full else 1, 1, False, 4,
        ),
        "mtan": Case(
            "mtan", f"SegNet-MTAN, NYUv2 shapes, 3 tasks: {mtan_text}",
            lambda: MultiTaskModel(presets.nyuv2_config(filters=filters)),
            _nyuv2_batch(height, width), repeats(5) if not full else 1, 1, False, 3,
        ),
    }  # fmt: skip


# ---------------------------------------------------------------------- measurement


def _clock() -> float:
    return time.perf_counter()


def measure_floor(
    model: MultiTaskModel, batch: dict[str, Tensor], tasks: list[int], one_task: str
) -> dict[str, float]:
    """One sample of ``F``, ``F_one``, ``B`` (mean over ``tasks``) and ``B_sum``."""
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    start = _clock()
    losses = list(model(**batch).losses.values())
    forward = _clock() - start
    backwards = []
    for index in tasks:
        start = _clock()
        torch.autograd.grad(losses[index], params, retain_graph=True, allow_unused=True)
        backwards.append(_clock() - start)
    del losses

    start = _clock()
    one = model(**batch, tasks=[one_task]).loss
    forward_one = _clock() - start
    del one

    total = model(**batch).loss
    start = _clock()
    torch.autograd.grad(total, params, allow_unused=True)
    backward_sum = _clock() - start
    del total
    return {
        "F": forward,
        "F_one": forward_one,
        "B": statistics.mean(backwards),
        "B_sum": backward_sum,
    }


def make_trainers(model: MultiTaskModel, batched: bool, output_dir: str) -> dict[str, Trainer]:
    """The timed variants, all on the same model (the step cost does not depend on the
    weights' values); each has its own optimizer."""
    common = dict(
        output_dir=output_dir, use_cpu=True, report_to="none", learning_rate=1e-5,
        weight_decay=0.0, max_grad_norm=0.0, disable_tqdm=True, save_strategy="no",
    )  # fmt: skip
    trainers: dict[str, Trainer] = {
        "trainer": Trainer(model=model, args=TrainingArguments(**common))
    }
    variants = [("mtl", False, False), ("flat", True, False)]
    if batched:
        variants += [("mtl_batched", False, True), ("flat_batched", True, True)]
    for name, flat, batched_grads in variants:
        config = FlatMTLConfig(
            aggregator="sum", flat=flat, batched_task_grads=batched_grads, **common
        )
        trainers[name] = FlatMTLTrainer(model=model, args=config)
    for trainer in trainers.values():
        trainer.create_optimizer()
        trainer.current_gradient_accumulation_steps = 1
    return trainers


def run_step(trainer: Trainer, batch: dict[str, Tensor]) -> float:
    """One optimizer step; seconds."""
    start = _clock()
    loss = trainer.training_step(trainer.model, dict(batch))
    trainer.optimizer.step()
    trainer.model.zero_grad(set_to_none=True)
    elapsed = _clock() - start
    if not torch.isfinite(loss):
        raise RuntimeError(f"non-finite loss {float(loss)} in a benchmark step")
    return elapsed


class PeakMemory:
    """Peak resident memory of one call, from the kernel's high-water mark (Linux)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL("libc.so.6")
        # M_MMAP_THRESHOLD: every block from 64 KiB is its own mapping, unmapped on free.
        self.libc.mallopt(-3, 64 * 1024)

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"{field} missing from /proc/self/status")

    def measure(self, call: Callable[[], Any]) -> int:
        gc.collect()
        self.libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        before = self._status("VmRSS")
        call()
        return self._status("VmHWM") - before


def _median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Timed:
    """A timed model, kept for the memory pass that follows all timings."""

    case: Case
    model: MultiTaskModel
    batch: dict[str, Tensor]
    trainers: dict[str, Trainer]
    samples: dict[str, list[float]]


def time_case(case: Case, output_dir: str, log: Callable[[str], None]) -> Timed:
    torch.manual_seed(0)
    model = case.build()
    batch = case.batch()
    task_names = list(model.config.task_names)
    m = len(task_names)
    trainers = make_trainers(model, case.batched, output_dir)
    floor_tasks = list(range(m))[: case.floor_tasks]

    log(f"[{case.name}] warm-up ({case.warmup} step(s) per variant)")
    for _ in range(case.warmup):
        measure_floor(model, batch, floor_tasks, task_names[0])
        for trainer in trainers.values():
            run_step(trainer, batch)

    samples: dict[str, list[float]] = {key: [] for key in ("F", "F_one", "B", "B_sum")}
    samples.update({name: [] for name in trainers})
    jobs = ["floor", *trainers]
    for repeat in range(case.repeats):
        shift = repeat % len(jobs)
        for job in jobs[shift:] + jobs[:shift]:
            if job == "floor":
                one_task = task_names[repeat % m]
                for key, value in measure_floor(model, batch, floor_tasks, one_task).items():
                    samples[key].append(value)
            else:
                samples[job].append(run_step(trainers[job], batch))
        log(f"[{case.name}] repeat {repeat + 1}/{case.repeats}: "
            + ", ".join(f"{k}={v[-1]:.3f}s" for k, v in samples.items()))  # fmt: skip
    return Timed(case, model, batch, trainers, samples)


def peak_memory(timed: Timed, memory: PeakMemory) -> dict[str, int]:
    """Peak resident memory of each variant: the smaller of two more steps."""
    return {
        name: min(memory.measure(lambda t=trainer: run_step(t, timed.batch)) for _ in range(2))
        for name, trainer in timed.trainers.items()
    }


def summarise(
    case: Case,
    model: nn.Module,
    m: int,
    shared: int,
    samples: dict[str, list[float]],
    peaks: dict[str, int],
) -> dict[str, Any]:
    median = {key: _median(values) for key, values in samples.items()}
    floors, tight_flat, overhead = _floors(median, m)
    # The same from the fastest sample of each quantity: noise on a shared machine only ever
    # adds time, so this is a second, less noisy estimate.
    fastest = {key: min(values) for key, values in samples.items()}
    fastest_floors, _, fastest_overhead = _floors(fastest, m)
    rows = {}
    for name in samples:
        if name in ("F", "F_one", "B", "B_sum"):
            continue
        base = name.removesuffix("_batched")
        row = {
            "median_s": median[name],
            "samples_s": samples[name],
            "floor_s": floors[base],
            "ratio_raw": median[name] / floors[base],
            "ratio": (median[name] - overhead) / floors[base],
            "ratio_fastest": (fastest[name] - fastest_overhead) / fastest_floors[base],
            "peak_memory_bytes": peaks[name],
        }
        if base == "flat":
            row["ratio_tight"] = (median[name] - overhead) / tight_flat
        rows[name] = row
    matrix_bytes = 4 * m * shared
    return {
        "description": case.description,
        "tasks": m,
        "parameters": sum(p.numel() for p in model.parameters()),
        "shared_parameters": shared,
        "task_matrix_bytes": matrix_bytes,
        "repeats": case.repeats,
        "warmup": case.warmup,
        "floor_medians_s": {k: median[k] for k in ("F", "F_one", "B", "B_sum")},
        "floor_samples_s": {k: samples[k] for k in ("F", "F_one", "B", "B_sum")},
        "floors_s": {**floors, "flat_tight": tight_flat},
        "loop_overhead_s": overhead,
        "steps": rows,
        "flat_minus_mtl_peak_bytes": peaks["flat"] - peaks["mtl"],
        "flat_minus_mtl_peak_in_task_matrices": (peaks["flat"] - peaks["mtl"]) / matrix_bytes,
    }


def _floors(times: dict[str, float], m: int) -> tuple[dict[str, float], float, float]:
    """The three floors, the tight flat floor and the loop overhead from ``F``, ``B``, ..."""
    forward, forward_one = times["F"], times["F_one"]
    backward, backward_sum = times["B"], times["B_sum"]
    floors = {
        "trainer": forward + backward_sum,
        "mtl": forward + m * backward,
        "flat": (m + 1) * forward + 2 * m * backward,
    }
    tight_flat = forward + m * forward_one + 2 * m * backward
    return floors, tight_flat, times["trainer"] - floors["trainer"]


def table(results: dict[str, Any]) -> str:
    lines = [
        "| model | step | median s | floor s | x floor (raw) | x floor (- overhead) "
        "| x floor (fastest) | x tight floor | peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        for step, row in result["steps"].items():
            tight = f"{row['ratio_tight']:.3f}" if "ratio_tight" in row else ""
            lines.append(
                f"| {name} | {step} | {row['median_s']:.3f} | {row['floor_s']:.3f} "
                f"| {row['ratio_raw']:.3f} | {row['ratio']:.3f} | {row['ratio_fastest']:.3f} "
                f"| {tight} "
                f"| {row['peak_memory_bytes'] / 2**20:.0f} |"
            )
    lines.append("")
    lines.append("| model | m | d (shared) | F s | F_one s | B s | B_sum s | overhead s "
                 "| m x d f32 MiB | flat - mtl peak MiB |")  # fmt: skip
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        f = r["floor_medians_s"]
        lines.append(
            f"| {name} | {r['tasks']} | {r['shared_parameters']:,} | {f['F']:.3f} "
            f"| {f['F_one']:.3f} | {f['B']:.3f} | {f['B_sum']:.3f} | {r['loop_overhead_s']:.3f} "
            f"| {r['task_matrix_bytes'] / 2**20:.1f} "
            f"| {r['flat_minus_mtl_peak_bytes'] / 2**20:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["lenet", "resnet18", "celeba40", "mtan"])
    parser.add_argument("--full", action="store_true", help="CelebA and NYUv2 at full size.")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiplies the repeats.")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log("Timing on a shared machine: torch.set_num_threads(1), warm-up steps, variants "
        "interleaved (rotating order), medians over the repeats.")  # fmt: skip
    all_cases = cases(args.full, args.scale)
    unknown = [name for name in args.models if name not in all_cases]
    if unknown:
        parser.error(f"unknown --models {unknown}; choose from {list(all_cases)}")
    start = _clock()
    results = {}
    with tempfile.TemporaryDirectory() as output_dir:
        timed = [time_case(all_cases[name], output_dir, log) for name in args.models]
        # After every timing: the fixed mmap threshold would slow the allocator down.
        memory = PeakMemory()
        for item in timed:
            log(f"[{item.case.name}] peak memory")
            peaks = peak_memory(item, memory)
            m = len(item.model.config.task_names)
            shared = item.trainers["flat"].flat_step.num_shared
            results[item.case.name] = summarise(
                item.case, item.model, m, shared, item.samples, peaks
            )
            item.trainers.clear()
    report = {
        "method": (
            "torch.set_num_threads(1); per model one fixed random batch; warm-up steps; variants "
            "interleaved with a rotating order; medians. A step is Trainer.training_step + "
            "optimizer.step + zero_grad (AdamW, aggregator 'sum'). Loop overhead = plain "
            "Trainer median - (F + B_sum), subtracted before dividing by the floor "
            "(ratio_fastest: the same from the fastest samples). Peak "
            "memory: min over two extra steps of VmHWM - VmRSS, glibc mmap threshold 64 KiB."
        ),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "full_size": args.full,
        "wall_s": _clock() - start,
        "models": results,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print("Step time (medians; shared machine, 1 thread, interleaved variants)")
    print(table(results))
    print(f"\nwall time {report['wall_s']:.0f} s; JSON: {args.output}")
    return report


if __name__ == "__main__":
    main()
