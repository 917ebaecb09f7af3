"""cli: doit's side. The composition root (``compose``: ``App`` builds each
service once, on first use), the task creators (``creators``: declarations
only), their actions (``actions``), the tasks' options (``usage``), doit's
settings from the command line (``options``), doit's own console lines
(``reporter``) and file check (``checker``). The only code that imports
doit.

May import: everything below (``ops``, ``state``, ``adapters``,
``inputs``, ``core``) and doit."""
