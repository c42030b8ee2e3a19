"""Box-aware transforms, the box-padding collate and the alternate split, pinned by hand."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from infocam_exp.data.wsol import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BoxPadCollate,
    EvalTransform,
    ImageRecord,
    TrainTransform,
    alternate_halves,
    authors_boxes,
    default_resize_size,
    resize_boxes,
    valid_box_rows,
)

# CUB image 1 (Black_Footed_Albatross_0046_18.jpg): x y w h = 60 27 325 304 -> corners below;
# an image of 500 x 400 px is used for the hand computations.
BOX = np.array([[60.0, 27.0, 385.0, 331.0]])
SIZE = (500, 400)


def test_resize_boxes_scales_x_and_y_separately():
    # 256/500 = 0.512, 256/400 = 0.64
    out = resize_boxes(BOX, SIZE, (256, 256))
    np.testing.assert_allclose(out, [[30.72, 17.28, 197.12, 211.84]])


def test_default_resize_size():
    assert default_resize_size(224) == 256 and default_resize_size(299) == 342 and default_resize_size(64) == 73


def test_authors_boxes_scale_by_255_over_w_and_shift_by_15():
    # the authors' util_bbox.py at resize 256, crop 224: x * 255 / w - 15, y * 255 / h - 15
    # x: 60 * 255 / 500 - 15 = 15.6, 385 * 255 / 500 - 15 = 181.35
    # y: 27 * 255 / 400 - 15 = 2.2125, 331 * 255 / 400 - 15 = 196.0125
    np.testing.assert_allclose(authors_boxes(BOX, SIZE, 256, 224), [[15.6, 2.2125, 181.35, 196.0125]])


def test_authors_boxes_are_never_clipped_nor_truncated():
    # a box over the whole 500 x 400 image reaches outside the 224 crop on every side:
    # 0 -> -15 and 500 * 255 / 500 - 15 = 240 (> 223); a box at x = 10: 10 * 255 / 500 - 15 = -9.9
    whole = np.array([[0.0, 0.0, 500.0, 400.0], [10.0, 30.0, 20.0, 41.0]])
    np.testing.assert_allclose(
        authors_boxes(whole, SIZE, 256, 224),
        [[-15.0, -15.0, 240.0, 240.0], [-9.9, 4.125, -4.8, 11.1375]],
    )


def test_authors_boxes_without_a_crop_follow_their_formula_too():
    # Tiny-ImageNet: their scripts pass --resize-size 64 --crop-size 64, so R - 1 = 63 and
    # floor((63 - 64) / 2) = -1: x * 63 / 64 + 1 (8 -> 8.875, 40 -> 40.375; 63 -> 63.015625)
    boxes = np.array([[8.0, 10.0, 40.0, 50.0], [0.0, 0.0, 63.0, 63.0]])
    np.testing.assert_allclose(
        authors_boxes(boxes, (64, 64), 64, 64),
        [[8.875, 10.84375, 40.375, 50.21875], [1.0, 1.0, 63.015625, 63.015625]],
    )
    np.testing.assert_allclose(EvalTransform("authors", 64, crop=False).boxes(boxes, (64, 64)), authors_boxes(boxes, (64, 64), 64, 64))


def test_eval_transform_authors_protocol():
    tf = EvalTransform("authors", 224)
    image = Image.new("RGB", SIZE)
    x, boxes = tf(image, BOX)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert boxes.dtype == torch.float32
    np.testing.assert_allclose(boxes.numpy(), [[15.6, 2.2125, 181.35, 196.0125]], rtol=1e-6)
    facts = tf.protocol_facts()
    assert facts["boxes"].startswith("x * 255/w - 15, y * 255/h - 15")
    assert facts["boxes_clipped"] is False and facts["image"] == "resize 256x256, centre crop 224"


def test_eval_transform_wsolevaluation_protocol_truncates():
    tf = EvalTransform("wsolevaluation", 224)
    # 224/500 = 0.448, 224/400 = 0.56: 26.88, 15.12, 172.48, 185.36 -> int()
    np.testing.assert_array_equal(tf.boxes(BOX, SIZE), [[26, 15, 172, 185]])
    x, boxes = tf(Image.new("RGB", SIZE), BOX)
    assert x.shape == (3, 224, 224)
    np.testing.assert_array_equal(boxes.numpy(), [[26, 15, 172, 185]])
    # no crop in this protocol even if asked, and nothing clipped: 0..500 -> 0..224 (beyond 223)
    assert not EvalTransform("wsolevaluation", 224, crop=True).crop
    np.testing.assert_array_equal(tf.boxes(np.array([[0.0, 0.0, 500.0, 400.0]]), SIZE), [[0, 0, 224, 224]])
    assert tf.protocol_facts()["boxes_rounding"] == "int() (toward zero)"


def test_eval_transform_rejects_unknown_protocol():
    with pytest.raises(ValueError, match="protocol"):
        EvalTransform("pascal", 224)


def test_transformed_box_covers_the_transformed_object():
    """Draw a white box on black, transform image and box together, compare against the pixels."""
    image = Image.new("RGB", SIZE)
    ImageDraw.Draw(image).rectangle(tuple(BOX[0].astype(int)), fill=(255, 255, 255))
    for protocol in ("authors", "wsolevaluation"):
        x, boxes = EvalTransform(protocol, 224)(image, BOX)
        raw = x[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        ys, xs = torch.nonzero(raw > 0.5, as_tuple=True)
        found = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=float)
        # the authors' x * 255 / w - 15 is the exact 256 / w, -16 mapping up to about a pixel
        np.testing.assert_allclose(found, boxes[0].numpy(), atol=1.5, err_msg=protocol)


def test_train_transform_shape_and_normalisation():
    torch.manual_seed(0)
    grey = Image.new("RGB", (300, 200), (124, 116, 104))  # ~ ImageNet mean * 255
    x = TrainTransform(224)(grey)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert x.abs().max() < 0.05
    assert TrainTransform(64, crop=False)(Image.new("RGB", (64, 64))).shape == (3, 64, 64)


def test_box_pad_collate_pads_with_minus_one():
    items = [
        (torch.zeros(3, 8, 8), 1, torch.tensor([[1.0, 2.0, 3.0, 4.0]])),
        (torch.ones(3, 8, 8), 0, torch.tensor([[0.0, 0.0, 5.0, 5.0], [2.0, 2.0, 7.0, 7.0]])),
    ]
    images, labels, boxes = BoxPadCollate(3)(items)
    assert images.shape == (2, 3, 8, 8)
    assert labels.dtype == torch.int64 and labels.tolist() == [1, 0]
    assert boxes.shape == (2, 3, 4) and boxes.dtype == torch.float32
    assert boxes[0, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert (boxes[0, 1:] == -1).all() and (boxes[1, 2] == -1).all()
    with pytest.raises(ValueError, match="max_boxes"):
        BoxPadCollate(1)(items)
    assert valid_box_rows(boxes).tolist() == [[True, False, False], [True, True, False]]


def test_padding_is_told_apart_from_boxes_outside_the_crop():
    # the authors' boxes keep negative coordinates: only all -1 rows are padding
    boxes = torch.tensor([[[-15.0, -15.0, 240.0, 240.0], [-1.0, -1.0, -1.0, -1.0], [-1.0, 3.0, 9.0, 9.0]]])
    assert valid_box_rows(boxes).tolist() == [[True, False, True]]


def test_alternate_halves_per_class_in_order():
    recs = [ImageRecord(f"{i}", "", label) for i, label in enumerate([0, 1, 0, 0, 1, 2, 0, 0])]
    val, test = alternate_halves(recs)
    # class 0: ids 0,2,3,6,7 -> val 0,3,7 / test 2,6; class 1: 1,4 -> 1 / 4; class 2: 5 -> 5 / -
    assert [r.image_id for r in val] == ["0", "1", "3", "5", "7"]
    assert [r.image_id for r in test] == ["2", "4", "6"]


def test_transforms_and_collate_pickle_for_worker_processes():
    for obj in (EvalTransform("authors", 224), TrainTransform(224), BoxPadCollate(2), EvalTransform("authors", 224).image):
        pickle.loads(pickle.dumps(obj))
