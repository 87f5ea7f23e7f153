"""``python -m emotion_client``: the ``emotion-client`` command."""

from emotion_client.cli import main

raise SystemExit(main())
