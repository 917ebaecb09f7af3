"""Incremental AMI tree builder on doit.

Modules, one concern each:

- ``errors``      the one error type users see
- ``config``      settings from the environment
- ``graph``       ``amis.yaml``: the image tree and its validation
- ``inputs``      which files an image is built from (playbook, roles, templates)
- ``digest``      content digests of those inputs
- ``packer``      running Packer and reading its machine-readable output
- ``aws``         boto3 clients and the few EC2/S3/SSM calls we make
- ``registry``    image records, locally and in S3 (channels, digests, promotions)
- ``locks``       per-image build locks in S3
- ``provenance``  git commit, branch, dirtiness, channel, actor
- ``emulator``    the local AWS emulator for the sandbox
- ``build``       what ``ami:<name>`` does
- ``plan``        what ``plan`` prints, and the expected durations
- ``validate``    packer validate, --syntax-check, ansible-lint
- ``cloud_init``  user-data rendered per image and environment
- ``diagram``     the tree as Mermaid or DOT
- ``explain``     an AMI's ancestry from the records
- ``buildkite``   annotations and the dynamic pipeline
- ``gc``          deregistering old AMIs and Packer leftovers
- ``console``     whole, prefixed lines on the console
- ``creators``    the doit task creators
"""
