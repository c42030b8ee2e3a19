"""The figures say what they show: legends for every colour and line style, one line-style
meaning across panels, the MI plot with a gap panel and a visible exact value for one d, no
figure without data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infocam_exp.plots.curves import CURVE_STYLES, localization_curves_figure
from infocam_exp.plots.overlays import overlay_grid_figure, save_overlay_grid
from infocam_exp.tables.aggregate import Row
from infocam_exp.tables.plots import mi_vs_dim

PNG = b"\x89PNG\r\n\x1a\n"


def _curves(methods=("cam", "infocam")):
    taus = np.linspace(0, 1, 11).tolist()
    keys = [k for k in CURVE_STYLES]
    return {m: {"thresholds": taus, **{k: np.linspace(0.1 * i, 0.5, 11).tolist() for i, k in enumerate(keys)}} for m in methods}


def test_curve_line_styles_mean_one_metric_in_both_panels():
    fig = localization_curves_figure(_curves(), "test", 0.2)
    left, right = fig.axes[:2]
    def styles(ax):  # the drawn dash pattern (custom patterns all report get_linestyle() == "--")
        return {(line.get_linestyle(), str(line._unscaled_dash_pattern)) for line in ax.get_lines() if np.asarray(line.get_xdata()).size > 2}

    left_styles, right_styles = styles(left), styles(right)
    assert len(left_styles) == 2 and len(right_styles) == 3
    assert not left_styles & right_styles, "a line style means two metrics"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["cam", "infocam"]  # colour = method
    assert {label for _, label in CURVE_STYLES.values()} <= set(labels)  # every style explained
    assert any("tau = 0.2" in t.get_text() for t in left.texts)


def _overlay_inputs(n=2):
    images = torch.rand(n, 3, 16, 16)
    maps = {"cam": torch.rand(n, 4, 4), "infocam": torch.rand(n, 4, 4)}
    gt = [torch.tensor([[1.0, 1.0, 8.0, 8.0]]) for _ in range(n)]
    pred = {m: torch.tensor([[2.0, 2.0, 9.0, 9.0]] * n) for m in maps}
    return images, maps, gt, pred


def test_overlay_legend_names_box_colours_and_tau():
    images, maps, gt, pred = _overlay_inputs()
    fig = overlay_grid_figure(images, maps, gt_boxes=gt, pred_boxes=pred, tau=0.2)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["ground-truth box", "predicted box (largest region at tau = 0.2)"]
    assert "tau = 0.2" in fig._suptitle.get_text()
    # no boxes, no legend
    assert not overlay_grid_figure(images, maps).legends


def test_overlay_difference_panel_shows_infocam_minus_cam():
    images, maps, _, _ = _overlay_inputs(1)
    maps = {"cam": torch.ones(1, 4, 4) * 5.0, "infocam": torch.ones(1, 4, 4) * 5.0}
    maps["infocam"][0, 0, 0] = 6.0  # infoCAM higher at one cell only
    fig = overlay_grid_figure(images, maps, difference=("infocam", "cam"), note="centre crop")
    axes = fig.axes
    assert len(axes) == 4  # image, cam, infocam, difference
    diff = axes[-1].get_images()[-1].get_array()
    # raw difference (bicubic upsampling overshoots a little), largest where infoCAM is higher
    assert diff.max() > 0.9 and diff.max() > 5 * abs(diff.min())
    assert np.unravel_index(np.argmax(diff), diff.shape)[0] < 4
    assert diff.shape == (16, 16)
    assert "infocam - cam" in axes[-1].get_title()
    assert "centre crop" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="difference"):
        overlay_grid_figure(images, maps, difference=("infocam", "gradcam"))


def test_save_overlay_grid_writes_png(tmp_path):
    images, maps, gt, pred = _overlay_inputs()
    out = save_overlay_grid(tmp_path / "sub" / "o.png", images, maps, gt_boxes=gt, pred_boxes=pred, tau=0.2)
    assert out.read_bytes()[:8] == PNG


def _mi_rows(dims, with_records=True):
    def rec(d, loss):
        t = 1.0 + 0.1 * int(d)
        return {"metrics": {"test/mi_true": t, "test/mi_estimate": t - 0.01, "test/mi_estimate_prior_corrected": t - 0.02}}

    return [
        Row({"data.prior": "balanced", "data.dim": d, "loss": loss}, 1, [rec(d, loss)] if with_records else [])
        for d in dims for loss in ("ce", "pc_softmax")
    ]


def _drawn_figure(monkeypatch, draw):
    """Run ``draw()`` (which must return True) and return the Figure it saved."""
    from matplotlib.figure import Figure

    captured = {}
    orig = Figure.savefig

    def spy(self, *a, **k):
        captured["fig"] = self
        return orig(self, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    assert draw()
    return captured["fig"]


def test_mi_plot_has_gap_panel_and_markers(tmp_path, monkeypatch):
    fig = _drawn_figure(monkeypatch, lambda: mi_vs_dim(_mi_rows(("1", "2")), tmp_path / "mi.png"))
    top, bottom = fig.axes
    assert "nats" in top.get_ylabel() and "nats" in bottom.get_ylabel()
    assert bottom.get_xlabel() == "input dimension d"
    # gap panel: estimate - exact = -0.01 (paper recipe) and -0.02 (+ H(Y)) for every d
    gaps = sorted({round(float(y), 6) for line in bottom.get_lines() for y in np.asarray(line.get_ydata(), dtype=float) if line.get_marker() not in (None, "None", "")})
    assert gaps == [-0.02, -0.01]
    # every estimate series has a marker, and coinciding series are drawn side by side
    xs = [tuple(np.round(np.asarray(line.get_xdata(), dtype=float), 6)) for line in top.get_lines() if line.get_marker() in ("o", "s")]
    assert len(xs) == 3 and len(set(xs)) == 3
    assert (tmp_path / "mi.png").read_bytes()[:8] == PNG


def test_mi_plot_with_one_dimension_shows_the_exact_value(tmp_path, monkeypatch):
    top = _drawn_figure(monkeypatch, lambda: mi_vs_dim(_mi_rows(("1",)), tmp_path / "mi.png")).axes[0]
    exact = [line for line in top.get_lines() if line.get_label() == "exact I(X;Y)"]
    assert exact and np.allclose(exact[0].get_ydata(), 1.1)
    assert exact[0].get_xdata()[0] != exact[0].get_xdata()[-1]  # a segment, not a single point


def test_mi_plot_without_data_writes_nothing(tmp_path):
    assert mi_vs_dim(_mi_rows(("1", "2"), with_records=False), tmp_path / "mi.png") is False
    assert not (tmp_path / "mi.png").exists()
