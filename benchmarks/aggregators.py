"""Per-call time of every registered aggregator, against the backward passes it follows.

Times each method for m in {2, 3, 10, 40} tasks and d in {1e4, 1e6} shared parameters (the
median of a few calls after one warm-up call, which also builds any solver problem), then the
m = 3 per-task backward passes of a ResNet-18 on a Multi-MNIST-shaped batch of 256 (36x36, one
channel), and prints the ratio aggregator / backward at m = 3, d = 1e6. Runs on one CPU thread
(``torch.set_num_threads(1)``) so that both sides are measured alike on a shared machine.

    python benchmarks/aggregators.py  # writes benchmarks/results/aggregators.json
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from transformers import ResNetConfig, ResNetModel

from flatmtl.aggregation import AGGREGATORS, get_aggregator

TASK_COUNTS = (2, 3, 10, 40)
SIZES = (10_000, 1_000_000)
LEARNED = {"uw", "imtl_l", "gradnorm"}
RESULTS = Path(__file__).parent / "results" / "aggregators.json"


def time_aggregator(name: str, m: int, d: int, repeats: int) -> float:
    generator = torch.Generator().manual_seed(m * 7 + d)
    grads = torch.randn(m, d, generator=generator)
    losses = 0.5 + torch.rand(m, generator=generator)
    kwargs = {"num_tasks": m} if name in LEARNED else {}
    aggregator = get_aggregator(name, **kwargs)
    aggregator(grads, losses)  # warm-up: solver set-up, first-call state
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        aggregator(grads, losses)
        times.append(time.perf_counter() - start)
        for parameter in aggregator.parameters():
            parameter.grad = None
    return statistics.median(times)


class MultiMNISTResNet(nn.Module):
    """ResNet-18 with a 7x7 one-channel stem, Linear(512, 100) + ReLU and one head per task."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        config = ResNetConfig(
            num_channels=1,
            embedding_size=64,
            hidden_sizes=[64, 128, 256, 512],
            depths=[2, 2, 2, 2],
            layer_type="basic",
        )
        self.resnet = ResNetModel(config)
        self.fc = nn.Linear(512, 100)
        self.heads = nn.ModuleList(nn.Linear(100, 10) for _ in range(num_tasks))

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        features = torch.relu(self.fc(self.resnet(pixel_values).pooler_output.flatten(1)))
        return [head(features) for head in self.heads]


def time_backward(num_tasks: int = 3, batch_size: int = 256, repeats: int = 2) -> dict:
    torch.manual_seed(0)
    model = MultiMNISTResNet(num_tasks)
    shared = [p for name, p in model.named_parameters() if not name.startswith("heads")]
    images = torch.randn(batch_size, 1, 36, 36)
    labels = torch.randint(0, 10, (num_tasks, batch_size))
    times = []
    for _ in range(repeats + 1):
        logits = model(images)
        losses = [nn.functional.cross_entropy(out, y) for out, y in zip(logits, labels)]
        start = time.perf_counter()
        for index, loss in enumerate(losses):
            torch.autograd.grad(loss, shared, retain_graph=index < num_tasks - 1)
        times.append(time.perf_counter() - start)
    return {
        "seconds": statistics.median(times[1:]),
        "num_tasks": num_tasks,
        "batch_size": batch_size,
        "num_shared_parameters": sum(p.numel() for p in shared),
    }


def main() -> None:
    torch.set_num_threads(1)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    names = sorted(AGGREGATORS)
    timings: dict[str, dict[str, float]] = {}
    for name in names:
        timings[name] = {}
        for d in SIZES:
            for m in TASK_COUNTS:
                repeats = 3 if d >= 1_000_000 else 5
                timings[name][f"m={m},d={d:.0e}"] = time_aggregator(name, m, d, repeats)
    backward = time_backward()

    columns = [f"m={m},d={d:.0e}" for d in SIZES for m in TASK_COUNTS]
    print(f"{'method':<12}" + "".join(f"{c:>15}" for c in columns) + f"{'/ backward':>12}")
    ratios = {}
    for name in names:
        ratios[name] = timings[name]["m=3,d=1e+06"] / backward["seconds"]
        cells = "".join(f"{1e3 * timings[name][c]:>13.2f}ms" for c in columns)
        print(f"{name:<12}{cells}{ratios[name]:>12.4f}")
    print(
        f"\nbackward: {backward['num_tasks']} per-task backward passes, ResNet-18, batch "
        f"{backward['batch_size']}, {backward['num_shared_parameters']:,} shared parameters: "
        f"{backward['seconds']:.3f} s"
    )
    slower = [name for name, ratio in ratios.items() if ratio >= 1.0]
    print("methods slower than the backward at m=3, d=1e6:", ", ".join(slower) or "none")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "unit": "seconds per call (median)",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "timings": timings,
        "backward": backward,
        "ratio_to_backward_at_m3_d1e6": ratios,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
