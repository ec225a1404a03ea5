"""`python -m chorus_client …`: the client's commands where the `chorus` command is not installed."""

from chorus_client.cli import main

raise SystemExit(main())
