"""GPU promises (``pytest -m gpu``; skipped without a CUDA device, deselected by ``make test``):
``trainer=gpu`` (bf16 autocast) with channels-last convolutions fits and tests a WSOL model for
one batch with every metric on the GPU, the box evaluator gives the same IoUs on CUDA as on
the CPU, and PxAP's histograms are the same on CUDA as on the CPU. Run them on a GPU machine with ``scripts/gpu_check.sh`` (its first step)."""

import json

import pytest
import pytorch_lightning as pl
import torch

from infocam_exp.metrics.boxes import batched_threshold_ious
from infocam_exp.run import run
from tests.conftest import compose_cfg
from tests.fixtures_wsol import make_cub

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


class PrecisionSpy(pl.Callback):
    """Records, in the first training batch, the dtype of the classifier's output (bf16 under
    autocast), whether the convolution weights are channels-last, and the device."""

    seen: list[dict] = []

    def on_train_start(self, trainer, pl_module):
        def hook(module, args, out):
            if not PrecisionSpy.seen:
                conv = next(m for m in pl_module.modules() if isinstance(m, torch.nn.Conv2d))
                PrecisionSpy.seen.append({
                    "logits_dtype": out.dtype,
                    "channels_last": conv.weight.is_contiguous(memory_format=torch.channels_last),
                    "device": out.device.type,
                    "precision": trainer.precision,
                })
        pl_module.model.classifier.register_forward_hook(hook)


def test_gpu_bf16_channels_last_one_batch_fit_and_test(tmp_path):
    PrecisionSpy.seen.clear()
    make_cub(tmp_path / "CUB_200_2011", num_classes=4, per_class=6, train_per_class=3)
    cfg = compose_cfg(
        "+experiment=cub_infocam", f"data.root={tmp_path / 'CUB_200_2011'}", "data.image_size=64",
        "data.batch_size=6", "data.eval_batch_size=6", "model=vgg16_adl", "model.pretrained=false",
        "data.num_workers=0", "trainer=gpu", "system.channels_last=true", "+trainer.fast_dev_run=1",
        "trainer.enable_progress_bar=false", "logger=none", "callbacks.checkpoint=null",
        "+callbacks.spy._target_=tests.test_gpu.PrecisionSpy",
    )
    m = run(cfg, tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert rec["status"] == "complete" and "cuda" in json.dumps(rec["device"]).lower()
    (seen,) = PrecisionSpy.seen
    assert seen == {"logits_dtype": torch.bfloat16, "channels_last": True, "device": "cuda",
                    "precision": "bf16-mixed"}
    for key in ("test/top1_cls", "test/top1_loc@cam", "test/top1_loc@infocam", "test/max_box_acc_v2@infocam"):
        assert 0.0 <= m[key] <= 1.0, key


def test_box_evaluator_on_cuda_equals_cpu():
    g = torch.Generator().manual_seed(0)
    # smooth blobby maps (upsampled noise: many regions per threshold) and one constant map
    maps = torch.nn.functional.interpolate(torch.rand(24, 1, 12, 12, generator=g), size=(96, 80), mode="bicubic")[:, 0]
    maps[3] = 0.5
    x0 = torch.randint(0, 60, (24, 2), generator=g)
    y0 = torch.randint(0, 70, (24, 2), generator=g)
    boxes = torch.stack([x0, y0, x0 + 15, y0 + 20], dim=-1).float()
    boxes[::2, 1] = -1  # padding rows: one box for half the images
    thresholds = torch.linspace(0, 1, 1001, dtype=torch.float64)[:-1]
    cpu = batched_threshold_ious(maps, boxes, thresholds)
    gpu = batched_threshold_ious(maps.cuda(), boxes.cuda(), thresholds.cuda())
    for a, b in zip(cpu, gpu, strict=True):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=0, atol=0)
    assert (cpu[0] > 0).any() and (cpu[1] >= cpu[0]).all()  # some hits; any region >= largest


def test_pxap_metric_on_cuda_equals_cpu():
    # Histograms accumulate on the maps' device (no host sync); counts and PxAP match the CPU's.
    from infocam_exp.metrics.pxap import PxAPMetric

    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(6, 224, 224, generator=gen)
    maps[0] = (maps[0] * 100).floor() / 100  # values on the bin edges
    fg = torch.rand(6, 224, 224, generator=gen) < 0.3
    box = torch.rand(6, 224, 224, generator=gen) < 0.2
    cpu, gpu = PxAPMetric(1000), PxAPMetric(1000).to("cuda")
    cpu.update(maps, fg, box)
    gpu.update(maps.cuda(), fg.cuda(), box.cuda())
    assert gpu.foreground_hist.device.type == "cuda"
    assert torch.equal(gpu.foreground_hist.cpu(), cpu.foreground_hist)
    assert torch.equal(gpu.background_hist.cpu(), cpu.background_hist)
    assert float(gpu.compute()["pxap"]) == float(cpu.compute()["pxap"])
