"""``python -m infocam_exp.fetch DATASET [--root DIR]`` / ``python -m infocam_exp.fetch weights [MODEL ...]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from infocam_exp.fetch.core import default_root, fetch, fetch_weights, weights_dir
from infocam_exp.fetch.download import FetchError
from infocam_exp.fetch.sources import BASE_URL_ENV, DATASETS, WEIGHTS

log = logging.getLogger("infocam_exp.fetch")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m infocam_exp.fetch",
        description="Download a dataset (into the layout the loaders read) or torchvision's ImageNet weights "
        "(into torch.hub.get_dir()/checkpoints), from the publishers' addresses, checking size and checksum. "
        "Interrupted downloads resume; a second call does nothing.",
        epilog="--list prints every file with its address, size and checksum.",
    )
    p.add_argument("what", nargs="?", choices=[*DATASETS, "weights"], type=lambda s: s.replace("-", "_"),
                   help="the dataset, or 'weights' (tiny-imagenet and fashion-mnist work too)")
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"with 'weights': any of {', '.join(WEIGHTS)} (default all)")
    p.add_argument("--root", default=None,
                   help="data root (paths.data_dir: $INFOCAM_DATA, else ${INFOCAM_ROOT:-.}/data); with 'weights': "
                   "the folder for the files (default torch.hub.get_dir()/checkpoints)")
    p.add_argument("--base-url", default=None,
                   help=f"fetch every file from BASE_URL/<file name> (a mirror; default ${BASE_URL_ENV} if set, "
                   "else the publishers' addresses)")
    p.add_argument("--force", action="store_true", help="replace a folder or file that is there but does not check out")
    p.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extracting it")
    p.add_argument("--retries", type=int, default=3, help="resumes of an interrupted transfer (default 3)")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    return p


def _catalogue() -> str:
    lines = []
    for key, spec in DATASETS.items():
        lines.append(f"{key}: {spec.title} -> <root>/{spec.target}/")
        for r in spec.files:
            lines.append(f"  {r.name}  {r.size} bytes  {r.checksum}\n    {' | '.join(r.urls)}")
    lines.append(f"weights -> {weights_dir()}/")
    for key, r in WEIGHTS.items():
        lines.append(f"  {key}: {r.name}  {r.size} bytes  {r.checksum}\n    {' | '.join(r.urls)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.list:
        print(_catalogue())
        return 0
    if args.what is None:
        _parser().print_usage(sys.stderr)
        print("error: name a dataset or 'weights' (or --list)", file=sys.stderr)
        return 2
    if args.models and args.what != "weights":
        print(f"error: model names ({' '.join(args.models)}) only go with 'weights'", file=sys.stderr)
        return 2
    try:
        if args.what == "weights":
            result = fetch_weights(args.models or None, args.root, base_url=args.base_url, force=args.force,
                                   retries=args.retries)
        else:
            root = args.root if args.root is not None else default_root()
            result = fetch(args.what, root, base_url=args.base_url, force=args.force,
                           keep_archive=args.keep_archive, retries=args.retries)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(result.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
