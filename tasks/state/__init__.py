"""state: what one run has learned and holds: the checkout's inputs and
hashes (``checkout``), records, digests and AMIs looked up for the
decision (``lookup``), build locks (``locks``) and what happened to each
image (``reports``). Each is a service the composition root builds once.

May import: ``adapters``, ``inputs``, ``core``. Never ``ops`` or ``cli``."""
