"""TF-slim's Inception preprocessing and batch stream (infocam_exp/data/slim.py), pinned with
hand-computed cases and seeded bounds checks."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
from PIL import Image

from infocam_exp.data.slim import (
    InceptionEvalTransform,
    InceptionTrainTransform,
    PassStreamSampler,
    adjust_saturation,
    authors_eval_multiplicity,
    central_crop_box,
    imagenet_normalise,
    resize_bilinear_legacy,
    sample_distorted_crop,
)
from infocam_exp.data.wsol import IMAGENET_MEAN, IMAGENET_STD


@pytest.mark.parametrize("width,height", [(500, 375), (37, 23), (64, 300)])
def test_distorted_crop_respects_area_and_aspect_bounds(width, height):
    g = torch.Generator().manual_seed(0)
    fractions, aspects = [], []
    for _ in range(1500):
        x, y, w, h = sample_distorted_crop(width, height, g)
        assert 1 <= w <= width and 1 <= h <= height
        # TF draws offsets in [0, n - size): a smaller crop never touches the last row/column
        assert 0 <= x and x + w <= width and (w == width or x + w <= width - 1)
        assert 0 <= y and y + h <= height and (h == height or y + h <= height - 1)
        frac = w * h / (width * height)
        # area_range [0.05, 1], but the whole image is the box and at least 0.1 of it must be
        # covered, so nothing under 0.1 of the image survives
        assert 0.1 <= frac <= 1.0
        if (w, h) != (width, height):  # the fallback after 100 failed attempts keeps the image's ratio
            # w = round(h * a) with a in [0.75, 1.33]
            assert 0.75 * h - 0.5 <= w <= 1.33 * h + 0.5
        fractions.append(frac)
        aspects.append(w / h)
    if (width, height) == (500, 375):
        # the draws reach the edges of the allowed ranges
        assert min(fractions) < 0.12 and max(fractions) > 0.9
        assert min(aspects) < 0.78 and max(aspects) > 1.30


def test_distorted_crop_falls_back_to_the_whole_image():
    # a 1 x 1 image admits no crop covering the area constraints with integer sizes but itself
    assert sample_distorted_crop(1, 1, torch.Generator().manual_seed(0)) == (0, 0, 1, 1)
    # aspect range far from the image's: every attempt fails
    g = torch.Generator().manual_seed(0)
    assert sample_distorted_crop(10, 100, g, aspect_ratio_range=(5.0, 6.0), area_range=(0.9, 1.0)) == (0, 0, 10, 100)


def test_central_crop_box_by_hand():
    # start = int((n - 0.875 n) / 2): 20 -> int(1.25) = 1, size 18; 16 -> int(1.0) = 1, size 14
    assert central_crop_box(20, 16) == (1, 1, 18, 14)
    # 10 -> int(0.625) = 0; 7 -> int(0.4375) = 0: nothing cropped
    assert central_crop_box(10, 7) == (0, 0, 10, 7)
    # truncation, not rounding: 12 -> int(0.75) = 0; 28 -> int(1.75) = 1, size 26
    assert central_crop_box(12, 28) == (0, 1, 12, 26)
    # 500 -> int(31.25) = 31, size 438; 375 -> int(23.4375) = 23, size 329
    assert central_crop_box(500, 375) == (31, 23, 438, 329)


def test_legacy_bilinear_resize_by_hand():
    ramp = torch.tensor([0.0, 10.0, 20.0, 30.0]).view(1, 1, 4)
    # 4 -> 3: source x = j * 4/3 = 0, 1.333, 2.667 (no half-pixel offset)
    out = resize_bilinear_legacy(ramp, (1, 3))
    torch.testing.assert_close(out.view(-1), torch.tensor([0.0, 40 / 3, 80 / 3]))
    # 2 -> 4: source x = 0, 0.5, 1, 1.5 -> the last one clamps to pixel 1
    out = resize_bilinear_legacy(torch.tensor([[[2.0, 6.0]]]), (1, 4))
    torch.testing.assert_close(out.view(-1), torch.tensor([2.0, 4.0, 6.0, 6.0]))
    # 2-D: x first, then y
    img = torch.tensor([[[0.0, 4.0], [8.0, 12.0]]])
    out = resize_bilinear_legacy(img, (4, 4))
    torch.testing.assert_close(out[0, 1, 1], torch.tensor(6.0))  # centre of the four: (0+4+8+12)/4
    torch.testing.assert_close(out[0, 3, 3], torch.tensor(12.0))


def _columns_rows_image(width: int, height: int) -> Image.Image:
    """R = column index, G = row index, B = 0 (uint8)."""
    a = np.zeros((height, width, 3), dtype=np.uint8)
    a[..., 0] = np.arange(width)[None, :]
    a[..., 1] = np.arange(height)[:, None]
    return Image.fromarray(a)


def test_eval_transform_crops_0875_then_resizes_by_hand():
    # 20 x 16 image: crop (1, 1, 18, 14); to 8 x 8 output pixel (i, j) samples crop coordinates
    # (1.75 i, 2.25 j), i.e. original column 1 + 2.25 j and row 1 + 1.75 i; R and G are linear in
    # them, so the interpolated values are exact
    out = InceptionEvalTransform(8, unit_range=True)(_columns_rows_image(20, 16))
    assert out.shape == (3, 8, 8) and out.dtype == torch.float32
    j = torch.arange(8, dtype=torch.float32)
    torch.testing.assert_close(out[0], ((1 + 2.25 * j) / 255).expand(8, 8))
    torch.testing.assert_close(out[1], ((1 + 1.75 * j) / 255).view(8, 1).expand(8, 8))
    assert float(out[2].abs().max()) == 0.0
    # the loader output is the same image ImageNet-normalised
    norm = InceptionEvalTransform(8)(_columns_rows_image(20, 16))
    torch.testing.assert_close(norm, imagenet_normalise(out))


def test_train_transform_shapes_and_ranges():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (45, 60, 3), dtype=np.uint8))
    unit = InceptionTrainTransform(32, generator=torch.Generator().manual_seed(3), unit_range=True)(image)
    assert unit.shape == (3, 32, 32) and unit.dtype == torch.float32
    assert float(unit.min()) >= 0.0 and float(unit.max()) <= 1.0
    normed = InceptionTrainTransform(32, generator=torch.Generator().manual_seed(3))(image)
    torch.testing.assert_close(normed, imagenet_normalise(unit))
    # what the network sees with Google's weights: InceptionV3 maps the loader's ImageNet
    # normalisation back to slim's 2x - 1, in [-1, 1]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    net_input = normed * (std / 0.5) + (mean - 0.5) / 0.5
    torch.testing.assert_close(net_input, 2 * unit - 1, atol=1e-5, rtol=0)
    assert float(net_input.min()) >= -1 - 1e-5 and float(net_input.max()) <= 1 + 1e-5


def test_colour_distortion_is_brightness_then_saturation_only():
    # a uniform image: crop, resize and flip change nothing, so each output pixel is the colour
    # after brightness + d, saturation x f, clip. Fast mode has no hue or contrast op: the hue of
    # an unclipped colour stays, its value moves by d (|d| <= 32/255), its saturation by f in [0.5, 1.5]
    rgb = (0.55, 0.35, 0.25)
    image = Image.fromarray(np.full((30, 40, 3), [round(c * 255) for c in rgb], dtype=np.uint8))
    base = np.array([round(c * 255) / 255 for c in rgb])
    h0, s0, v0 = colorsys.rgb_to_hsv(*base)
    seen_brighter = seen_darker = False
    for seed in range(40):
        out = InceptionTrainTransform(16, generator=torch.Generator().manual_seed(seed), unit_range=True)(image)
        pixel = out[:, 0, 0].double().numpy()
        assert np.allclose(out.double().numpy(), pixel[:, None, None], atol=1e-6)
        h, s, v = colorsys.rgb_to_hsv(*pixel)
        assert h == pytest.approx(h0, abs=1e-5)
        d = v - v0
        assert abs(d) <= 32 / 255 + 1e-6
        seen_brighter |= d > 0.05
        seen_darker |= d < -0.05
        s_after_brightness = (base.max() - base.min()) / (base.max() + d)
        assert 0.5 - 1e-4 <= s / s_after_brightness <= 1.5 + 1e-4
    assert seen_brighter and seen_darker


def test_saturation_matches_an_hsv_round_trip():
    rng = np.random.default_rng(1)
    pixels = rng.random((3, 5, 7)).astype(np.float32)
    for factor in (0.0, 0.5, 1.3, 3.0):
        out = adjust_saturation(torch.from_numpy(pixels), factor).numpy()
        for i in range(5):
            for j in range(7):
                h, s, v = colorsys.rgb_to_hsv(*pixels[:, i, j].astype(np.float64))
                expected = colorsys.hsv_to_rgb(h, min(1.0, s * factor), v)
                np.testing.assert_allclose(out[:, i, j], expected, atol=2e-6)
    # grey stays grey; a pixel with max <= 0 (after a brightness shift) becomes grey at its max,
    # as TF's conversion gives it saturation 0
    odd = torch.tensor([[0.4, -0.1, 0.2], [0.4, -0.3, -0.5], [0.4, -0.2, 0.1]]).view(3, 3, 1)
    out = adjust_saturation(odd, 1.5)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.4, 0.4, 0.4]))
    torch.testing.assert_close(out[:, 1, 0], torch.tensor([-0.1, -0.1, -0.1]))
    # max 0.2 > 0 with a negative channel: s = 0.7 / 0.2 > 1 is clipped to 1, min goes to 0
    torch.testing.assert_close(out[:, 2, 0], torch.tensor([0.2, 0.0, 0.2 - 0.1 / 0.7 * 0.2]))


def test_stream_sampler_serves_full_batches_and_even_passes():
    n, b = 10, 4
    sampler = PassStreamSampler(n, b, seed=7)
    assert sampler.steps_per_epoch == 3 and len(sampler) == 12  # ceil(10 / 4) full batches
    epochs = []
    for e in range(5):
        sampler.set_epoch(e)
        epochs.append(list(sampler))
    stream = [i for ep in epochs for i in ep]
    assert len(stream) == 60
    # the stream is whole passes: each block of n positions is a permutation
    for p in range(6):
        assert sorted(stream[p * n:(p + 1) * n]) == list(range(n))
    # a loader over it: every batch has b items, passes run into each other
    loader = torch.utils.data.DataLoader(list(range(n)), batch_size=b, sampler=PassStreamSampler(n, b, seed=7))
    assert [len(batch) for batch in loader] == [b] * 3
    # resume: epoch 3 alone gives what the uninterrupted run gave; no set_epoch counts up itself
    fresh = PassStreamSampler(n, b, seed=7)
    fresh.set_epoch(3)
    assert list(fresh) == epochs[3]
    counting = PassStreamSampler(n, b, seed=7)
    assert [list(counting) for _ in range(2)] == epochs[:2]
    assert list(PassStreamSampler(n, b, seed=8)) != epochs[0]


def test_authors_eval_counts_each_imbalanced_test_image_two_or_three_times():
    # eval.py: ceil(5794 / 100) = 58 batches of 100 from a reader cycling over the record
    counts = authors_eval_multiplicity(1996)
    assert counts.sum() == 5800 == math.ceil(5794 / 100) * 100
    assert (counts == 3).sum() == 1808 and (counts == 2).sum() == 188 and counts.min() == 2
    official = authors_eval_multiplicity(5794)
    assert (official == 2).sum() == 6 and (official == 1).sum() == 5788
