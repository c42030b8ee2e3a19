"""What ``python -m infocam_exp.fetch`` downloads: each file's publisher address, size and checksum.

Checksums are the publisher's where the publisher gives one; otherwise the value other projects
record for the same file (named in ``checksum_source``; docs/data.md lists them). Sizes are the
byte counts the publishers' servers send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Every file of a dataset or weights set is fetched from ``<base>/<file name>`` when this
#: environment variable (or the ``base_url`` argument) is set, instead of the addresses below:
#: for a local mirror, and for the tests' loopback server.
BASE_URL_ENV = "INFOCAM_FETCH_BASE_URL"


@dataclass(frozen=True)
class Remote:
    """One file as published.

    Attributes:
        name: the file name on disk (and under a mirror's base URL).
        urls: the addresses tried in order (the publisher's first).
        size: its length in bytes.
        checksum: ``"md5:<hex>"`` or ``"sha256:<hex>"``.
        checksum_source: who states that checksum.
    """

    name: str
    urls: tuple[str, ...]
    size: int
    checksum: str
    checksum_source: str

    @property
    def algorithm(self) -> str:
        return self.checksum.split(":", 1)[0]

    @property
    def digest(self) -> str:
        return self.checksum.split(":", 1)[1]


@dataclass(frozen=True)
class Source:
    """A dataset (or a set of weights) and where it goes.

    ``kind="archive"``: one archive extracted so that ``<root>/<target>/`` appears, holding
    ``required`` (paths relative to it; a trailing ``/`` names a folder). ``kind="files"``: the
    files themselves are the product, kept under ``<root>/<target>/`` as downloaded.
    """

    key: str
    title: str
    kind: str
    target: str
    files: tuple[Remote, ...]
    required: tuple[str, ...] = field(default=())
    homepage: str = ""


_KRIZ = "https://www.cs.toronto.edu/~kriz/"
_KRIZ_SRC = "Krizhevsky's CIFAR page (https://www.cs.toronto.edu/~kriz/cifar.html); torchvision's CIFAR classes list the same md5"
_TV_MNIST = "torchvision.datasets.MNIST.resources (LeCun's page gives sizes, no checksum)"
_TV_FASHION = (
    "Zalando's Fashion-MNIST README (https://github.com/zalandoresearch/fashion-mnist); "
    "torchvision.datasets.FashionMNIST.resources list the same md5"
)
_MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
_FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


def _idx(name: str, size: int, md5: str, bases: tuple[str, ...], source: str) -> Remote:
    return Remote(name, tuple(b + name for b in bases), size, f"md5:{md5}", source)


DATASETS: dict[str, Source] = {
    "cub": Source(
        key="cub",
        title="CUB-200-2011",
        kind="archive",
        target="CUB_200_2011",
        files=(
            Remote(
                "CUB_200_2011.tgz",
                ("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",),
                1_150_585_339,
                "md5:97eceeb196236b17998738112f37df78",
                "the md5 that loaders of this file record (e.g. Avalanche's CUB200); CaltechDATA lists "
                "an md5 per file on record 65de6-vp158",
            ),
        ),
        required=(
            "classes.txt", "images.txt", "image_class_labels.txt", "train_test_split.txt",
            "bounding_boxes.txt", "images/",
        ),
        homepage="https://www.vision.caltech.edu/datasets/cub_200_2011/",
    ),
    "tiny_imagenet": Source(
        key="tiny_imagenet",
        title="Tiny-ImageNet (tiny-imagenet-200)",
        kind="archive",
        target="tiny-imagenet-200",
        files=(
            Remote(
                "tiny-imagenet-200.zip",
                ("https://cs231n.stanford.edu/tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip"),
                248_100_043,
                "md5:90528d7ca1a48142e341f4ef8d21d0de",
                "no checksum from CS231n; the md5 that several PyTorch Tiny-ImageNet loaders record, the same "
                "as Mila's datasets--tinyimagenet git-annex key MD5E-s248100043--90528d7c...",
            ),
        ),
        required=("wnids.txt", "words.txt", "train/", "val/images/", "val/val_annotations.txt"),
        homepage="https://cs231n.stanford.edu/",
    ),
    "cifar10": Source(
        key="cifar10",
        title="CIFAR-10 (python version)",
        kind="archive",
        target="cifar-10-batches-py",
        files=(
            Remote("cifar-10-python.tar.gz", (_KRIZ + "cifar-10-python.tar.gz",), 170_498_071,
                   "md5:c58f30108f718f92721af3b95e74349a", _KRIZ_SRC),
        ),
        required=(
            "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
            "batches.meta",
        ),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "cifar100": Source(
        key="cifar100",
        title="CIFAR-100 (python version)",
        kind="archive",
        target="cifar-100-python",
        files=(
            Remote("cifar-100-python.tar.gz", (_KRIZ + "cifar-100-python.tar.gz",), 169_001_437,
                   "md5:eb9058c3a382ffc7106e4002c42a8d85", _KRIZ_SRC),
        ),
        required=("train", "test", "meta"),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "mnist": Source(
        key="mnist",
        title="MNIST",
        kind="files",
        target="MNIST/raw",
        files=(
            _idx("train-images-idx3-ubyte.gz", 9_912_422, "f68b3c2dcbeaaa9fbdd348bbdeb94873", _MNIST_URLS, _TV_MNIST),
            _idx("train-labels-idx1-ubyte.gz", 28_881, "d53e105ee54ea40749a09fcbcd1e9432", _MNIST_URLS, _TV_MNIST),
            _idx("t10k-images-idx3-ubyte.gz", 1_648_877, "9fb629c4189551a2d022fa330f9573f3", _MNIST_URLS, _TV_MNIST),
            _idx("t10k-labels-idx1-ubyte.gz", 4_542, "ec29112dd5afa0611ce80d1b7f02629c", _MNIST_URLS, _TV_MNIST),
        ),
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": Source(
        key="fashion_mnist",
        title="Fashion-MNIST",
        kind="files",
        target="FashionMNIST/raw",
        files=(
            _idx("train-images-idx3-ubyte.gz", 26_421_880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d", _FASHION_URLS, _TV_FASHION),
            _idx("train-labels-idx1-ubyte.gz", 29_515, "25c81989df183df01b3e8a0aad5dffbe", _FASHION_URLS, _TV_FASHION),
            _idx("t10k-images-idx3-ubyte.gz", 4_422_102, "bef4ecab320f06d8554ea6380940ec79", _FASHION_URLS, _TV_FASHION),
            _idx("t10k-labels-idx1-ubyte.gz", 5_148, "bb300cfdad3c16e7a12a480ee83cd310", _FASHION_URLS, _TV_FASHION),
        ),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
}

_PT = "https://download.pytorch.org/models/"
_W_SRC = (
    "torchvision gives the first 8 hex digits in the file name (torch.hub's hash-prefix check); "
    "the full sha256 and size as other projects record them"
)

#: torchvision's ImageNet weights (IMAGENET1K_V1 of each architecture); into torch.hub.get_dir()/checkpoints.
WEIGHTS: dict[str, Remote] = {
    "vgg16": Remote("vgg16-397923af.pth", (_PT + "vgg16-397923af.pth",), 553_433_881,
                    "sha256:397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", _W_SRC),
    "resnet50": Remote("resnet50-0676ba61.pth", (_PT + "resnet50-0676ba61.pth",), 102_530_333,
                       "sha256:0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a", _W_SRC),
    "inception_v3": Remote("inception_v3_google-0cc3c7bd.pth", (_PT + "inception_v3_google-0cc3c7bd.pth",), 108_949_747,
                           "sha256:0cc3c7bd75056d25e46cba549dc184522069b81e9787eff6df84f397bd52a5ef", _W_SRC),
}
