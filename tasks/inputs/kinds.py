"""The registry of block kinds this tool can track: per builder,
provisioner and post-processor type, the fields that name local files.
A type not listed here cannot be tracked, so it is refused.

Field kinds: "file" (a file or a folder), "files" (a list of them),
"playbook(s)", "galaxy", "roles_path", "collections_path", "role_folders",
"args" (ansible extra_arguments), "env" (ansible_env_vars)."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Mapping

EBS_BUILDERS = frozenset({"amazon-ebs"})
# Provisioners that need a connection to the instance: the sandbox, whose
# emulator runs no instances, leaves them out.
NEEDS_COMMUNICATOR = frozenset({"shell", "file", "ansible", "ansible-local", "powershell",
                                "windows-shell", "windows-restart", "breakpoint", "goss"})
ANSIBLE = frozenset({"ansible", "ansible-local"})

PROVISIONERS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "shell": {"script": "file", "scripts": "files"},
    "shell-local": {"script": "file", "scripts": "files"},
    "powershell": {"script": "file", "scripts": "files"},
    "windows-shell": {"script": "file", "scripts": "files"},
    "file": {"source": "file", "sources": "files"},
    "windows-restart": {},
    # goss (a plugin): its test files and vars file are uploaded from here
    "goss": {"tests": "files", "vars_file": "file"},
    "breakpoint": {},
    "ansible": {"playbook_file": "playbook", "galaxy_file": "galaxy", "inventory_file": "file",
                "inventory_directory": "file", "roles_path": "roles_path",
                "collections_path": "collections_path", "extra_arguments": "args",
                "ansible_env_vars": "env"},
    "ansible-local": {"playbook_file": "playbook", "playbook_files": "playbooks",
                      "playbook_dir": "file", "playbook_paths": "files",
                      "role_paths": "role_folders", "group_vars": "file", "host_vars": "file",
                      "inventory_file": "file", "galaxy_file": "galaxy",
                      "extra_arguments": "args"},
})
POST_PROCESSORS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "shell-local": {"script": "file", "scripts": "files"},
    "manifest": {},
    "checksum": {},
})
BUILDERS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "amazon-ebs": {"user_data_file": "file"}})

# amazon-ebs fields Packer 1.6.6 does not know ("Extraneous JSON object property").
NEWER_EBS_FIELDS = ("metadata_options", "include_deprecated", "ami_org_arns", "ami_ou_arns",
                    "skip_create_ami", "deprecate_at", "imds_support", "snapshot_groups")
# Packer 1.6.6 has no packer_version template function (1.7 has).
PACKER_VERSION_CALL = re.compile(r"\{\{-?\s*packer_version\s*-?\}\}")
