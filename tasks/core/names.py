"""Names and ids as AWS and this tool spell them, and the tag that marks
what this tool made. Used with ``fullmatch``: a trailing newline is not
part of a name."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"[a-z0-9_-]{1,64}")                 # images and the source
AMI_RE = re.compile(r"ami-[0-9a-f]{8,17}")
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
ACCOUNT_RE = re.compile(r"[0-9]{12}")
CHANNEL_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DIGEST_RE = re.compile(r"[0-9a-f]{64}")

# The ManagedBy tag on every AMI and snapshot this tool builds: gc only
# ever considers AMIs that carry it, and deletes only those whose Registry
# tag is its own registry's (REGISTRY_TAG: s3://bucket/prefix/).
MANAGED_BY = "amis-doit"
REGISTRY_TAG = "Registry"
# The variables the runner passes every template that declares them
# (ops/invocation.build_variables).
RUNNER_VARIABLES = frozenset({"image", "region", "playbook", "source_ami", "parent_image", "digest",
                              "branch", "commit", "dirty", "build_url", "build_time",
                              "packer_version"})
LINT_CONFIG = ".ansible-lint"  # the project's ansible-lint settings
TOOL_VERSION = "0.21.0"        # this tool, as provenance statements name it
