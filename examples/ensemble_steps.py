"""Run an ensemble with the Chorus Python client, printing each step as it finishes, then list the
ensemble's step predictions (`GET /predictions?parentId=…`, a page at a time).

    .venv/bin/python examples/ensemble_steps.py [IMAGE] [--service digits-ensemble] [--local [READY_FILE]]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chorus_client import Client, Prediction

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path, default=HERE / "digit.png")
    parser.add_argument("--service", default="digits-ensemble")
    parser.add_argument("--local", nargs="?", const=True, default=False, type=Path, metavar="READY_FILE")
    args = parser.parse_args(argv)
    reported: set[str] = set()

    def on_update(prediction: Prediction) -> None:
        """Told the prediction first, then each time its status or one of its steps changes."""
        for step in prediction.steps or ():
            if step.status.finished and step.name not in reported:
                reported.add(step.name)
                print(f"step {step.name}: {step.status.value} in {step.duration_seconds} s")

    with Client.from_config(local=args.local) as chorus:
        prediction = chorus.predict(args.service, args.image, timeout=300, on_update=on_update)
        print(f"{prediction.service} {prediction.status.value}: {json.loads(chorus.download(prediction))['label']}")
        for page in chorus.list(parent_id=prediction.id, limit=10):
            for step in page.predictions:
                print(f"  {step.step_name}: {step.service} {step.id} {step.metrics.run_seconds} s")
    return 0 if prediction.status == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
