"""ops: one service per command, each given only what it uses by the
composition root (``cli.compose``): building (``build``: ``Builder``, with
``prebuild`` before Packer, ``invocation`` for Packer's stage and command
line, ``postbuild`` for what Packer made, ``attest`` for its signature),
planning (``plan``, ``diagram``), gc (``gc``: ``Collector``), promotion
(``promote``), revocation (``revoke``), provenance (``verify``), ancestry
(``explain``), inputs (``listing``), Buildkite (``buildkite``), user-data
(``cloud_init``) and the AMI ``-a``/``-i`` name (``targets``).

May import: ``state``, ``adapters``, ``inputs``, ``core``. Never ``cli``
(and so never doit, nor the composition root)."""
