"""`chorus`: the operator's command line (tenants and API tokens, against AWS or `make local`).

The CLI calls the product's own domain package, `chorus` (layers/chorus/chorus/, shipped to the
functions as a Lambda layer). That package is deliberately not a distribution of its own: the layer
folder is what SAM packages and what the functions import. So the CLI puts the layer folder of the
repository it lives in on `sys.path` here, before anything imports `chorus.*`; an installed
`chorus` script (`pip install -e .`) then uses the very code the deployed functions run, with no
second copy to drift. Inserted first, so an unrelated `chorus` distribution cannot shadow it.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYER = REPO_ROOT / "layers" / "chorus"
DEFAULT_READY_FILE = REPO_ROOT / ".chorus-local.json"  # what `make local` writes; `--local` reads it

if LAYER.is_dir() and str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))
