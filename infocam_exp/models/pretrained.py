"""ImageNet weights from a local file or the torch hub cache, never downloaded, never swapped.

torchvision stores the files it downloads as ``torch.hub.get_dir()/checkpoints/<file name>``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``). Without an explicit
file this module accepts only the files of the authors' protocol there (``WEIGHT_FILES``; docs/
protocol.md, "Pretrained weights"): VGG16 ``vgg16-397923af.pth``; ResNet50 V1, as the authors'
network/resnet.py loads it (``resnet50-19c8e357.pth``) or as torchvision now ships the same
IMAGENET1K_V1 weights (``resnet50-0676ba61.pth``). Other weights (e.g. torchvision's IMAGENET1K_V2
``resnet50-11ad3fa6.pth``, which changes every ResNet number) are used only when named with
``model.weights_path=FILE``. Whatever is loaded is recorded: file name, path and sha256
(``weights_facts``, in metrics.json's ``protocol`` block).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.protocol import file_sha256

log = logging.getLogger(__name__)

#: The weights files accepted without an explicit ``model.weights_path``, preferred first.
WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "vgg16": ("vgg16-397923af.pth",),
    # torchvision's IMAGENET1K_V1 file, and the authors' name of the original V1 file
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth"),
    "inception_v3": ("inception_v3_google-0cc3c7bd.pth",),
}
#: Files of other weights a user may have in the cache; never picked without being named.
OTHER_FILES: dict[str, tuple[str, ...]] = {"resnet50": ("resnet50-11ad3fa6.pth",)}  # IMAGENET1K_V2
FETCH_COMMAND = "python -m infocam_exp.fetch weights {name}"


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (honours ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights_file(model_name: str, weights_path: str | None = None) -> Path:
    """Path of the ImageNet weights of ``model_name`` ("vgg16", "resnet50", "inception_v3").

    Args:
        model_name: a key of ``WEIGHT_FILES``.
        weights_path: a weights file (any name: an explicit choice), or a folder holding one of the
            accepted file names; None -> the torch hub checkpoints cache (accepted names only).

    Raises:
        DataNotFoundError: nothing found; the message names the accepted files, the places
            searched, the fetch command, any other weights found there (not used implicitly) and
            the ``model.weights_path=`` override.
    """
    if model_name not in WEIGHT_FILES:
        raise ValueError(f"no ImageNet weights known for {model_name!r}; known: {sorted(WEIGHT_FILES)}")
    names = WEIGHT_FILES[model_name]
    if weights_path:
        p = Path(weights_path).expanduser()
        folder = p if p.is_dir() else None
        candidates = [p / n for n in names] if folder else [p]
    else:
        folder = hub_checkpoint_dir()
        candidates = [folder / n for n in names]
    for c in candidates:
        if c.is_file():
            return c
    others = [folder / n for n in OTHER_FILES.get(model_name, ()) if folder and (folder / n).is_file()]
    not_used = (
        f" Found {', '.join(str(o) for o in others)}: other weights (they change the results), "
        "used only when named with model.weights_path=FILE." if others else ""
    )
    raise DataNotFoundError(
        f"ImageNet weights for {model_name} ({' or '.join(names)})",
        [str(c) for c in candidates],
        f"one of {', '.join(names)} in {hub_checkpoint_dir()} (torch.hub.get_dir()/checkpoints, moved "
        "with $TORCH_HOME)." + not_used,
        f"{FETCH_COMMAND.format(name=model_name)} on a machine with internet (it puts the file there; "
        "copy that folder to an offline machine); nothing is downloaded by a training run",
        f"model.weights_path=/path/to/{names[0]} (any other file is an explicit choice, recorded with its "
        "sha256), or model.pretrained=false",
    )


def weights_facts(model_name: str, path: Path, explicit: bool) -> dict[str, Any]:
    """What metrics.json records about a weights file: its name, path, sha256, whether it was named
    explicitly (``model.weights_path``) and whether it is one of the protocol's accepted files.
    torchvision's file names end in the first hex digits of the file's sha256; a file whose hash
    does not match its name is recorded (``sha256_matches_name: false``) and logged."""
    sha = file_sha256(path)
    facts: dict[str, Any] = {
        "file": path.name,
        "path": str(path),
        "sha256": sha,
        "explicit": bool(explicit),
        "accepted_name": path.name in WEIGHT_FILES.get(model_name, ()),
    }
    m = re.search(r"-([0-9a-f]{8,})\.pth$", path.name)
    if m:
        facts["sha256_matches_name"] = sha.startswith(m.group(1))
        if not facts["sha256_matches_name"]:
            log.warning("%s: sha256 %s does not start with the %s its name promises (corrupt or renamed file?)",
                        path, sha[:12], m.group(1))
    return facts


def load_imagenet_weights(model_name: str, weights_path: str | None = None) -> dict[str, torch.Tensor]:
    """The torchvision ImageNet state dict of ``model_name`` (CPU tensors), found by
    ``find_weights_file``. A checkpoint wrapping it under ``"state_dict"`` is unwrapped.

    Raises:
        DataNotFoundError: no file (see ``find_weights_file``).
        DataFormatError: the file does not load as a state dict.
    """
    return load_weights_with_facts(model_name, weights_path)[0]


def load_weights_with_facts(model_name: str, weights_path: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``load_imagenet_weights`` and the ``weights_facts`` of the file it read."""
    path = find_weights_file(model_name, weights_path)
    facts = weights_facts(model_name, path, explicit=bool(weights_path) and not Path(weights_path).expanduser().is_dir())
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling failure means the same thing here
        raise DataFormatError(path, f"cannot load as a state dict ({type(e).__name__}: {e})",
                              fix="the file is corrupt or not a torchvision weights file") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataFormatError(path, "not a state dict of tensors")
    log.info("loaded ImageNet weights for %s from %s (sha256 %s)", model_name, path, facts["sha256"][:12])
    return obj, facts


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
