"""Incremental AMI tree builder on doit.

Modules, one concern each, top to bottom (data flows down):

- ``creators``    the doit task creators: declarations only
- ``actions``     what each task does, through the modules below
- ``build``       ``ami:<name>``: keep, reuse or build, and publish
- ``plan``        what ``plan`` prints, and the expected durations
- ``facts``       gathering what the decision needs (records, digests, AMIs)
- ``decision``    the one pure decision: a verdict per image
- ``run``         one run's state: settings, graph, clients, outcomes
- ``validate``    packer validate, --syntax-check, ansible-lint
- ``gc``          deregistering old AMIs and Packer leftovers
- ``explain``     an AMI's ancestry from the records
- ``buildkite``   annotations and the dynamic pipeline
- ``diagram``     the tree as Mermaid or DOT
- ``cloud_init``  user-data rendered per image and environment
- ``artifacts``   checks on what a build made, before it is published
- ``graph``       ``amis.yaml``: the image tree and its validation
- ``inputs``      which files an image is built from
- ``digest``      content digests of those inputs
- ``records``     image records as JSON, and their local copies
- ``registry``    records in S3: channels, digests, promotions (adapter)
- ``locks``       per-image build locks in S3 (adapter)
- ``aws``         boto3 clients and EC2/SSM calls (adapter)
- ``packer``      running Packer, reading its machine-readable output (adapter)
- ``provenance``  git commit, branch, dirtiness, channel, actor (adapter)
- ``emulator``    the local AWS emulator for the sandbox (adapter)
- ``config``      settings from the environment
- ``options``     doit's settings from the graph and the command line
- ``reporter``    doit's own lines on stderr
- ``console``     whole, prefixed lines on stdout
- ``errors``      the one error type users see
"""
