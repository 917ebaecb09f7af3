"""Incremental AMI tree builder on doit, in layers (data flows down; a
module imports only its own layer and those below it):

- ``cli/``       doit: task creators (declarations only), actions, options,
                 reporter, and the composition root (``compose.App``) that
                 builds each service once, on first use. The only code that
                 imports doit.
- ``ops/``       one service per command (``Builder``, ``Collector``,
                 ``Verifier``, ...), each given only what it uses.
- ``state/``     what one run has learned and holds: the checkout's inputs
                 and hashes, the lookup behind the decision, locks, reports.
- ``adapters/``  the ports to the world outside the repository (EC2, SSM,
                 KMS, the bucket, Packer, the tool runner, git), each with
                 its real adapter and a fake in ``adapters/fakes/``; the
                 registry, the stage, the console, the emulator.
- ``inputs/``    which files an image is built from: Packer JSON, HCL2,
                 Ansible, the repository's paths.
- ``core/``      settings (the only reader of the environment), the image
                 graph, records, digests, the decisions (pure), local files.

``adapters`` and ``inputs`` are siblings: neither imports the other.
See docs/architecture.md for the services, the ports and every module.
"""
