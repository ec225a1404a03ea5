"""Write a held-out digit as a PNG, for trying the API by hand:

    python -m chorus_local.models.sample digit.png [--index N] [--size 64]

It prints the true label so you can compare it with the prediction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from chorus_local.models.train import load_split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--index", type=int, default=0, help="which held-out digit (default 0)")
    parser.add_argument("--size", type=int, default=64, help="width and height in pixels (default 64)")
    args = parser.parse_args(argv)
    split = load_split()
    pixels = split.x_test[args.index % len(split.x_test)].reshape(8, 8)
    # Dark background, light ink, scaled up: the models read any size back as 8x8 at 0-16.
    image = Image.fromarray(np.uint8(pixels * (255 / 16)), mode="L")
    image.resize((args.size, args.size), Image.Resampling.NEAREST).save(args.out, format="PNG")
    print(
        f"wrote {args.out}: a {args.size}x{args.size} PNG of the digit {split.y_test[args.index % len(split.y_test)]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
