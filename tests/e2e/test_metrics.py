"""The metrics the dashboard graphs, as the real handlers write them: EMF lines in the functions'
logs (what CloudWatch Logs turns into metrics in AWS), in the stage's namespace, per service and
per ensemble step."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from tests.e2e.client import digit_pixels

EMF = re.compile(r'(\{"_aws":.*\})\s*$')


def emitted(logs: str) -> list[dict[str, Any]]:
    found = []
    for line in logs.splitlines():
        match = EMF.search(line)
        if match is None:
            continue
        document = json.loads(match.group(1))
        for directive in document["_aws"]["CloudWatchMetrics"]:
            (names,) = directive["Dimensions"]
            for metric in directive["Metrics"]:
                found.append(
                    {
                        "namespace": directive["Namespace"],
                        "name": metric["Name"],
                        "dimensions": {name: document[name] for name in names},
                    }
                )
    return found


def test_an_ensemble_prediction_is_counted_per_service_and_per_step_in_the_stage_namespace(stack):
    # Given a digits-ensemble prediction that ran to the end
    pixels, _ = digit_pixels()
    created = stack.api().create({"service": "digits-ensemble", "input": {"pixels": pixels}})
    assert stack.api().wait(created["id"])["status"] == "succeeded"
    # Then (once the functions' logs are in) it was counted under its service, and each step under
    # the ensemble and the step, in namespace Chorus/<Stage>
    wanted = {
        ("PredictionsSubmitted", ("digits-ensemble", None)),
        ("PredictionsSucceeded", ("digits-ensemble", None)),
        ("PredictionRunSeconds", ("digits-ensemble", None)),
        *{("PredictionsSucceeded", ("digits-ensemble", step)) for step in ("svm", "forest", "stacker")},
    }
    deadline = time.monotonic() + 10
    while True:
        found = emitted(stack.logs())
        seen = {(m["name"], (m["dimensions"].get("service"), m["dimensions"].get("step"))) for m in found}
        if wanted <= seen or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert wanted <= seen, sorted(wanted - seen)
    assert {m["namespace"] for m in found} == {"Chorus/local"}
    # the per-service dimension never reaches the handlers' own metrics
    assert all(m["dimensions"] == {"service": "chorus"} for m in found if m["name"].startswith(("Callback", "Tokens")))
