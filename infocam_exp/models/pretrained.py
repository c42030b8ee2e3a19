"""ImageNet weights from a local file or the torch hub cache, never downloaded.

torchvision stores the files it downloads as ``torch.hub.get_dir()/checkpoints/<file name>``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``). This module looks
there (or at an explicit path) for the file names torchvision uses, and fails with one clear
message otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from infocam_exp.data.base import DataFormatError, DataNotFoundError

log = logging.getLogger(__name__)

#: torchvision's file names for each architecture, preferred first.
WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "vgg16": ("vgg16-397923af.pth",),
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"),  # IMAGENET1K_V1, _V2
    "inception_v3": ("inception_v3_google-0cc3c7bd.pth",),
}
_GET_COMMAND = {
    "vgg16": "vgg16(weights='IMAGENET1K_V1')",
    "resnet50": "resnet50(weights='IMAGENET1K_V1')",
    "inception_v3": "inception_v3(weights='IMAGENET1K_V1')",
}


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (honours ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights_file(model_name: str, weights_path: str | None = None) -> Path:
    """Path of the ImageNet weights of ``model_name`` ("vgg16", "resnet50", "inception_v3").

    Args:
        model_name: a key of ``WEIGHT_FILES``.
        weights_path: a weights file, or a folder holding one of torchvision's file names; None ->
            the torch hub checkpoints cache.

    Raises:
        DataNotFoundError: nothing found; the message names the files, the places searched, how
            to fetch them on an online machine and the ``model.weights_path=`` override.
    """
    if model_name not in WEIGHT_FILES:
        raise ValueError(f"no ImageNet weights known for {model_name!r}; known: {sorted(WEIGHT_FILES)}")
    names = WEIGHT_FILES[model_name]
    if weights_path:
        p = Path(weights_path).expanduser()
        candidates = [p / n for n in names] if p.is_dir() else [p]
    else:
        candidates = [hub_checkpoint_dir() / n for n in names]
    for c in candidates:
        if c.is_file():
            return c
    raise DataNotFoundError(
        f"ImageNet weights for {model_name} ({' or '.join(names)})",
        [str(c) for c in candidates],
        f"a torchvision state-dict file named {names[0]} in {hub_checkpoint_dir()} "
        "(torch.hub.get_dir()/checkpoints, moved with $TORCH_HOME)",
        f"on an online machine run python -c \"import torchvision; torchvision.models.{_GET_COMMAND[model_name]}\" "
        f"and copy ~/.cache/torch/hub/checkpoints/{names[0]} here (nothing is downloaded on this machine)",
        "model.weights_path=/path/to/" + names[0] + " (or model.pretrained=false)",
    )


def load_imagenet_weights(model_name: str, weights_path: str | None = None) -> dict[str, torch.Tensor]:
    """The torchvision ImageNet state dict of ``model_name`` (CPU tensors), found by
    ``find_weights_file``. A checkpoint wrapping it under ``"state_dict"`` is unwrapped.

    Raises:
        DataNotFoundError: no file (see ``find_weights_file``).
        DataFormatError: the file does not load as a state dict.
    """
    path = find_weights_file(model_name, weights_path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling failure means the same thing here
        raise DataFormatError(path, f"cannot load as a state dict ({type(e).__name__}: {e})",
                              fix="the file is corrupt or not a torchvision weights file") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataFormatError(path, "not a state dict of tensors")
    log.info("loaded ImageNet weights for %s from %s", model_name, path)
    return obj


def load_body_weights(
    module: torch.nn.Module, state_dict: dict[str, torch.Tensor], expected_missing_prefixes: tuple[str, ...], source: str
) -> None:
    """Load ``state_dict`` into ``module`` non-strictly and check the outcome: only parameters under
    ``expected_missing_prefixes`` (the new head) may stay uninitialised, and every tensor that the
    module has must match in shape. Raises DataFormatError naming ``source`` otherwise."""
    own = module.state_dict()
    wrong = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise DataFormatError(source, f"shape mismatch for {wrong[:3]}: not weights of this architecture")
    result = module.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(expected_missing_prefixes)]
    if missing:
        raise DataFormatError(source, f"weights lack {len(missing)} tensors of the model, e.g. {missing[:3]}")
