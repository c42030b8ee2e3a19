"""infocam-exp: softmax cross-entropy as an MI estimator, PC-softmax and infoCAM."""

from __future__ import annotations

import numpy as np
from omegaconf import OmegaConf


def derived_seed(seed: int, stream: int = 0) -> int:
    """A 32-bit seed hashed from ``seed`` (and a ``stream`` number) by numpy's ``SeedSequence``.

    Used as the data seed of the MI benchmark (``data_seed: ${derived_seed:${seed}}``): the data of
    seed s are not those of a run that used s raw, and neighbouring seeds give unrelated streams."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, dtype=np.uint32)[0])


OmegaConf.register_new_resolver("derived_seed", derived_seed, replace=True)
