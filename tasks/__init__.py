"""Incremental AMI tree builder on doit.

Modules, one concern each:

- ``errors``    the one error type users see
- ``config``    settings from the environment
- ``graph``     ``amis.yaml``: the image tree and its validation
- ``inputs``    which files an image is built from (playbook, roles, templates)
- ``digest``    content digests of those inputs
- ``packer``    running Packer and reading its machine-readable output
- ``aws``       boto3 clients and the few EC2 calls we make
- ``registry``  image records, locally and in S3
- ``emulator``  the local AWS emulator for the sandbox
- ``build``     what ``ami:<name>`` does
- ``plan``      what ``plan`` prints
- ``creators``  the doit task creators
"""
