"""core: what the tool knows without asking anyone: settings, the image
graph, records, digests, the one decision, and local files.

May import: the standard library, PyYAML, and other modules of ``core``.
Nothing here runs a program or talks to the network."""
