"""Download the datasets and weights the experiments read, exactly as published.

``python -m infocam_exp.fetch cub | tiny_imagenet | cifar10 | cifar100 | mnist | fashion_mnist``
and ``python -m infocam_exp.fetch weights [vgg16 resnet50 inception_v3]``; docs/data.md has the
addresses, sizes, checksums and where each checksum comes from. Nothing else in the package
downloads: a training run only reads (``data.download=true`` calls ``fetch`` explicitly).
"""

from infocam_exp.fetch.archive import HostileArchiveError
from infocam_exp.fetch.core import MARKER, Result, default_root, fetch, fetch_weights, weights_dir
from infocam_exp.fetch.download import ChecksumError, FetchError
from infocam_exp.fetch.sources import BASE_URL_ENV, DATASETS, WEIGHTS, Remote, Source

__all__ = [
    "BASE_URL_ENV", "DATASETS", "MARKER", "WEIGHTS", "ChecksumError", "FetchError", "HostileArchiveError",
    "Remote", "Result", "Source", "default_root", "fetch", "fetch_weights", "weights_dir",
]
