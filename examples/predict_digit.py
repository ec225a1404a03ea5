"""Predict the digit in a PNG with the Chorus Python client and print its label.

    .venv/bin/python examples/predict_digit.py [IMAGE] [--service digits-svm] [--local [READY_FILE]]

IMAGE defaults to examples/digit.png (a held-out 1). With --local it talks to the running
`make local`; otherwise it finds the API as the `chorus` command does (CHORUS_API_URL and
CHORUS_API_TOKEN, or a profile of ~/.config/chorus/config.toml). Exits 1 if the prediction fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chorus_client import ChorusClientError, Client

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path, default=HERE / "digit.png")
    parser.add_argument("--service", default="digits-svm", help="digits-svm, digits-forest, digits-ensemble, …")
    parser.add_argument("--local", nargs="?", const=True, default=False, type=Path, metavar="READY_FILE")
    args = parser.parse_args(argv)

    with Client.from_config(local=args.local) as chorus:
        try:
            # A Path is uploaded through the presigned POST; then the client waits (polling adaptively).
            prediction = chorus.predict(args.service, args.image, timeout=300).raise_for_status()
            output = json.loads(chorus.download(prediction))
        except ChorusClientError as exc:  # the API's error, a failed prediction, a wait that ran out…
            print(f"{args.image}: {exc}", file=sys.stderr)
            return 1
    confidence = max(output["probabilities"])
    print(f"{args.image.name}: {output['label']} (p={confidence:.2f}, {prediction.metrics.total_seconds} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
