"""GPU check (issue: WSOL on CUB / Tiny-ImageNet): throughput of each WSOL backbone and of the box
evaluator, with no network and no Hydra (the GPU machines lack it).

1. Each backbone (VGG16-GAP, VGG16-ADL, ResNet50, ResNet50-ADL) at 224 px: ``--steps`` SGD steps
   on synthetic tensors with bf16 autocast and channels_last -> training images/s.
2. The same on a generated CUB_200_2011-layout folder of JPEGs through the real ``CUBWSOLDataModule``
   (decoding in DataLoader workers, pinned memory) -> images/s with real data loading.
3. Evaluation: CAM/infoCAM maps + ``LocalizationMetrics`` on the GPU (100 thresholds) -> images/s,
   and the box evaluator alone at 1,000 thresholds on 224x224 maps -> maps/s.
Prints one line per measurement. Usage: python scripts/gpu_check.py [--steps 200] [--batch 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infocam_exp.cam.maps import class_maps, upsample_maps  # noqa: E402
from infocam_exp.data.cub import CUBWSOLDataModule  # noqa: E402
from infocam_exp.metrics.boxes import default_thresholds, threshold_ious  # noqa: E402
from infocam_exp.metrics.localization import LocalizationMetrics  # noqa: E402
from infocam_exp.models.wsol_backbones import VGG16GAP, ResNet50GAP  # noqa: E402
from tests.fixtures_wsol import make_cub  # noqa: E402

BACKBONES = {
    "vgg16_gap": (VGG16GAP, {}),
    "vgg16_adl": (VGG16GAP, {"adl": True}),
    "resnet50": (ResNet50GAP, {}),
    "resnet50_adl": (ResNet50GAP, {"adl": True}),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_steps(model, batches, device, steps: int) -> float:
    """images/s over ``steps`` SGD steps (after 5 warm-up steps)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)
    model.train()
    it = iter(batches)
    seen, start = 0, None
    for step in range(steps + 5):
        if step == 5:
            sync(device)
            start, seen = time.perf_counter(), 0
        x, y = next(it)[:2]
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    sync(device)
    return seen / (time.perf_counter() - start)


def synthetic(batch: int, classes: int):
    x = torch.randn(batch, 3, 224, 224)
    y = torch.randint(0, classes, (batch,))
    while True:
        yield x, y


def cycle(loader):
    while True:
        yield from loader


@torch.no_grad()
def eval_throughput(model, loader, device, max_batches: int | None = None) -> float:
    model.eval()
    metrics = {m: LocalizationMetrics(thresholds=100).to(device) for m in ("cam", "infocam")}
    seen = 0
    sync(device)
    start = time.perf_counter()
    for i, (x, y, boxes) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x, y, boxes = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device), boxes.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            feats = model.forward_features(x)
        feats = feats.float()
        logits = model.classifier(feats.mean((2, 3)))
        top1 = logits.argmax(1) == y
        top5 = (logits.topk(5, 1).indices == y[:, None]).any(1)
        for method, metric in metrics.items():
            maps = upsample_maps(class_maps(feats, model.classifier.weight, y, method, logits), (224, 224))
            metric.update(maps, boxes, top1_correct=top1, top5_correct=top5)
        seen += len(y)
    for metric in metrics.values():
        metric.compute()
    sync(device)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--classes", type=int, default=20, help="classes of the generated CUB folder")
    parser.add_argument("--eval-batches", type=int, default=None, help="limit evaluation batches")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; bf16 autocast + channels_last; batch {args.batch}")
    with tempfile.TemporaryDirectory() as tmp:
        make_cub(Path(tmp), num_classes=args.classes, per_class=40, train_per_class=30)
        dm = CUBWSOLDataModule(root=tmp, batch_size=args.batch, eval_batch_size=args.batch, num_workers=args.workers)
        dm.prepare_facts()
        dm.setup()
        for key, (cls, kw) in BACKBONES.items():
            model = cls(num_classes=dm.num_classes, input_shape=(3, 224, 224), **kw).to(device).to(memory_format=torch.channels_last)
            ips = train_steps(model, synthetic(args.batch, dm.num_classes), device, args.steps)
            print(f"{key:>13s}: train, synthetic tensors : {ips:8.1f} img/s")
            ips = train_steps(model, cycle(dm.train_dataloader()), device, max(20, args.steps // 4))
            print(f"{key:>13s}: train, CUB JPEG loading  : {ips:8.1f} img/s")
            ips = eval_throughput(model, dm.test_dataloader(), device, args.eval_batches)
            print(f"{key:>13s}: eval, CAM+infoCAM metrics: {ips:8.1f} img/s")
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    n_maps = 256 if device.type == "cuda" else 16
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    centres = torch.rand(n_maps, 2, generator=g) * 224
    maps = torch.exp(-((xx - centres[:, 0, None, None]) ** 2 + (yy - centres[:, 1, None, None]) ** 2) / 800.0).to(device)
    gt = torch.tensor([[[50.0, 50.0, 150.0, 150.0]]]).expand(n_maps, 1, 4).to(device)
    taus = default_thresholds(1000, device=device)
    threshold_ious(maps[:8], gt[:8], taus)
    sync(device)
    start = time.perf_counter()
    threshold_ious(maps, gt, taus)
    sync(device)
    print(f"box evaluator, 1000 thresholds, 224x224: {n_maps / (time.perf_counter() - start):8.1f} maps/s")


if __name__ == "__main__":
    main()
