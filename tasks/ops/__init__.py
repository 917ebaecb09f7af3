"""ops: what each command does, on a run (``run``, the composition root):
building an image (``build``, with ``invocation``, ``validate`` and
``vetting``), planning (``plan``), the tree as a diagram (``diagram``),
garbage collection (``gc``), ancestry (``explain``), promotion
(``promote``), Buildkite (``buildkite``) and cloud-init (``cloud_init``).

May import: ``state``, ``adapters``, ``inputs``, ``core``. Never ``cli``
(and so never doit)."""
