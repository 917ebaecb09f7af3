"""cli: doit's side. The task creators (``creators``: declarations only),
their actions (``actions``), doit's settings from the command line
(``options``) and doit's own console lines (``reporter``). The only code
that imports doit.

May import: everything below (``ops``, ``state``, ``adapters``,
``inputs``, ``core``) and doit."""
