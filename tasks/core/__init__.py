"""core: what the tool knows without asking anyone: settings, the image
graph, records, digests, the decisions (rebuild: ``decision``; gc:
``retention``), what EC2 says as plain data (``cloud``), and local files.

May import: the standard library, PyYAML, and other modules of ``core``.
Nothing here runs a program or talks to the network."""
