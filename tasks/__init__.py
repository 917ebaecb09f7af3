"""Incremental AMI tree builder on doit, in layers (data flows down; a
module imports only its own layer and those below it):

- ``cli/``       doit: task creators (declarations only), actions, options,
                 reporter. The only code that imports doit.
- ``ops/``       what each command does, on a run; ``ops/run.py`` composes
                 the run's services once and hands them down.
- ``state/``     what one run has learned and holds: the checkout's inputs
                 and hashes, the lookup behind the decision, locks, outcomes.
- ``adapters/``  the world outside the repository: AWS, the bucket and the
                 registry in it, Packer, the stage, git, the emulator.
- ``inputs/``    which files an image is built from: Packer JSON, HCL2,
                 Ansible, the repository's paths.
- ``core/``      settings (the only reader of the environment), the image
                 graph, records, digests, the one decision, local files.

``adapters`` and ``inputs`` are siblings: neither imports the other.
See docs/architecture.md for the flow of one image.
"""
