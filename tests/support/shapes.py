"""Trees in the shapes users bring, written by the tests themselves:

- ``shell``: like Buildkite's elastic-ci-stack, a JSON template run from its
  own folder (``packer_dir``), shell scripts, a folder uploaded with
  ``file``, ``{{template_dir}}`` paths, a var file choosing a script;
- ``eks``: like amazon-eks-ami, a required variable set only by a var file,
  and ``{{template_dir}}/provisioners/`` scripts;
- ``app``: Ansible with ``ansible.cfg`` (``roles_path``), two playbooks,
  a Galaxy requirements file, ``--extra-vars @file``, include_tasks /
  import_tasks / include_vars / vars_files, and a collection role whose
  short name is also a local role;
- ``local``: ``ansible-local`` with ``playbook_dir``, ``role_paths``,
  ``group_vars`` and an inventory file.

Every provisioner that needs an instance is left out by the sandbox; each
template also has a ``shell-local`` step that does run there, reading a
file through ``{{template_dir}}`` or a path relative to ``packer_dir``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from .project import Project, commit, ok

EBS = {"type": "amazon-ebs", "region": "{{user `region`}}", "source_ami": "{{user `source_ami`}}",
       "instance_type": "t3.small", "ssh_username": "ec2-user",
       "ami_name": "{{user `image`}}-{{timestamp}}-{{uuid}}"}
VARIABLES = {"image": "", "region": "", "source_ami": ""}


def _template(variables: dict, provisioners: list, **extra) -> str:
    return json.dumps({"variables": {**VARIABLES, **variables}, "builders": [EBS],
                       "provisioners": provisioners, **extra}, indent=2)


SHELL = {
    "packer/linux/buildkite-ami.json": _template({"arch": "x86_64"}, [
        {"type": "shell", "script": "scripts/install-utils.sh"},
        {"type": "shell", "scripts": ["scripts/install-docker.sh",
                                      "scripts/install-{{user `arch`}}.sh"]},
        {"type": "file", "source": "conf/", "destination": "/tmp/conf"},
        {"type": "file", "source": "{{template_dir}}/motd", "destination": "/etc/motd"},
        {"type": "powershell", "scripts": ["scripts/windows.ps1"]},
        {"type": "shell-local", "script": "{{template_dir}}/scripts/check-local.sh"},
        {"type": "shell-local", "scripts": ["scripts/relative-to-packer-dir.sh"]},
    ]),
    "packer/linux/vars.json": json.dumps({"arch": "arm64"}),
    "packer/linux/scripts/install-utils.sh": "#!/bin/sh\nyum install -y jq\n",
    "packer/linux/scripts/install-docker.sh": "#!/bin/sh\nyum install -y docker\n",
    "packer/linux/scripts/install-arm64.sh": "#!/bin/sh\necho arm\n",
    "packer/linux/scripts/install-x86_64.sh": "#!/bin/sh\necho x86\n",
    "packer/linux/scripts/windows.ps1": "Write-Host hi\n",
    "packer/linux/scripts/check-local.sh": "#!/bin/sh\necho local check ran\n",
    "packer/linux/scripts/relative-to-packer-dir.sh": "#!/bin/sh\necho relative ran\n",
    "packer/linux/conf/buildkite-agent.cfg": "spawn=1\n",
    "packer/linux/conf/systemd/agent.service": "[Service]\n",
    "packer/linux/motd": "welcome\n",
    "packer/linux/unused.sh": "#!/bin/sh\n",
}

EKS = {
    "packer/eks/al2023.json": _template({"kubernetes_version": None, "runc_version": "1.1"}, [
        {"type": "shell", "script": "{{template_dir}}/provisioners/install-worker.sh",
         "environment_vars": ["KUBERNETES_VERSION={{user `kubernetes_version`}}"]},
        {"type": "shell-local", "inline": [
            "test -n '{{user `kubernetes_version`}}'",
            "test -f {{template_dir}}/provisioners/install-worker.sh"]},
    ]),
    "packer/eks/al2023.vars.json": json.dumps({"kubernetes_version": "1.31"}),
    "packer/eks/provisioners/install-worker.sh": "#!/bin/sh\necho worker\n",
}

APP = {
    "ansible.cfg": "[defaults]\nroles_path = ansible/shared-roles\n",
    "packer/app.json": _template({"playbook": ""}, [
        {"type": "ansible", "playbook_file": "{{user `playbook`}}",
         "galaxy_file": "ansible/requirements.yml",
         "extra_arguments": ["--extra-vars", "@ansible/extra.yml", "-e@ansible/more.yml"]},
        {"type": "ansible", "playbook_file": "ansible/second.yml"},
        {"type": "shell-local", "inline": ["echo app"]},
    ]),
    "ansible/app.yml": (
        "- hosts: all\n"
        "  vars_files: [vars/common.yml]\n"
        "  roles:\n    - ntp_client\n    - hardening\n    - acme.platform.docker\n"
        "  tasks:\n"
        "    - ansible.builtin.include_tasks: tasks/setup.yml\n"
        "    - ansible.builtin.import_tasks: ../shared/tasks/banner.yml\n"
        "    - ansible.builtin.include_vars: ../shared/vars/limits.yml\n"
        "    - name: Configure\n"
        "      ansible.builtin.template:\n        src: app.conf.j2\n        dest: /etc/app.conf\n"),
    "ansible/second.yml": "- hosts: all\n  tasks:\n    - ansible.builtin.debug: {msg: second}\n",
    "ansible/requirements.yml": "roles:\n  - name: ntp_client\n    src: geerlingguy.ntp\n"
                                "    version: 2.3.0\n",
    "ansible/extra.yml": "extra: 1\n",
    "ansible/more.yml": "more: 1\n",
    "ansible/vars/common.yml": "common: 1\n",
    "ansible/tasks/setup.yml": "- ansible.builtin.debug: {msg: setup}\n",
    "ansible/templates/app.conf.j2": "port={{ port | default(80) }}\n",
    "shared/tasks/banner.yml": "- ansible.builtin.debug: {msg: banner}\n",
    "shared/vars/limits.yml": "limits: 1\n",
    "shared/unused.yml": "x: 1\n",
    "ansible/shared-roles/hardening/tasks/main.yml": "- ansible.builtin.debug: {msg: hard}\n",
    "ansible/roles/docker/tasks/main.yml": "- ansible.builtin.debug: {msg: local docker}\n",
    "ansible/collections/ansible_collections/acme/platform/roles/docker/tasks/main.yml":
        "- ansible.builtin.debug: {msg: collection docker}\n",
    "ansible/collections/ansible_collections/acme/platform/galaxy.yml":
        "namespace: acme\nname: platform\nversion: 1.0.0\n",
}

LOCAL = {
    "packer/local.json": _template({}, [
        {"type": "ansible-local", "playbook_file": "ansible-local/site.yml",
         "playbook_dir": "ansible-local", "role_paths": ["ansible-local/roles/web"],
         "group_vars": "ansible-local/group_vars", "inventory_file": "ansible-local/hosts"},
        {"type": "shell-local", "inline": ["echo local"]},
    ]),
    "ansible-local/site.yml": "- hosts: all\n  roles: [web]\n",
    "ansible-local/hosts": "[all]\n127.0.0.1\n",
    "ansible-local/group_vars/all.yml": "x: 1\n",
    "ansible-local/roles/web/tasks/main.yml": "- ansible.builtin.debug: {msg: web}\n",
    "ansible-local/notes.txt": "uploaded with playbook_dir\n",
}

GRAPH = """\
region: eu-west-1
source:
  name: centos
  ami: ami-bb9a6bc2
images:
  shell:
    parent: centos
    template: packer/linux/buildkite-ami.json
    packer_dir: packer/linux
    var_files: [packer/linux/vars.json]
  eks:
    parent: centos
    template: packer/eks/al2023.json
    var_files: [packer/eks/al2023.vars.json]
  app:
    parent: centos
    template: packer/app.json
    playbook: ansible/app.yml
  local:
    parent: centos
    template: packer/local.json
"""

# file -> the images that read it
READERS = {
    "packer/linux/scripts/install-utils.sh": ["shell"],
    "packer/linux/scripts/install-arm64.sh": ["shell"],      # chosen by the var file
    "packer/linux/scripts/windows.ps1": ["shell"],
    "packer/linux/conf/systemd/agent.service": ["shell"],
    "packer/linux/motd": ["shell"],
    "packer/linux/scripts/relative-to-packer-dir.sh": ["shell"],
    "packer/linux/vars.json": ["shell"],
    "packer/eks/provisioners/install-worker.sh": ["eks"],
    "packer/eks/al2023.vars.json": ["eks"],
    "ansible.cfg": ["app"],
    "ansible/second.yml": ["app"],
    "ansible/requirements.yml": ["app"],
    "ansible/extra.yml": ["app"],
    "ansible/more.yml": ["app"],
    "ansible/tasks/setup.yml": ["app"],
    "shared/tasks/banner.yml": ["app"],
    "shared/vars/limits.yml": ["app"],
    "ansible/vars/common.yml": ["app"],
    "ansible/templates/app.conf.j2": ["app"],
    "ansible/shared-roles/hardening/tasks/main.yml": ["app"],
    "ansible/collections/ansible_collections/acme/platform/roles/docker/tasks/main.yml": ["app"],
    "ansible-local/notes.txt": ["local"],
    "ansible-local/roles/web/tasks/main.yml": ["local"],
    "ansible-local/group_vars/all.yml": ["local"],
    "ansible-local/hosts": ["local"],
}
UNREAD = ["packer/linux/unused.sh", "packer/linux/scripts/install-x86_64.sh",
          "ansible/roles/docker/tasks/main.yml", "shared/unused.yml"]


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if rel.endswith(".sh"):
            path.chmod(0o755)


def zoo(root: Path) -> Path:
    """Every shape in one tree, with the project's code beside it."""
    write(root, {**SHELL, **EKS, **APP, **LOCAL, "amis.yaml": GRAPH})
    return root


# -- HCL2 -------------------------------------------------------------------------

HCL_SOURCE = '''source "amazon-ebs" "NAME" {
  region        = var.region
  source_ami    = var.source_ami
  instance_type = "t3.small"
  ssh_username  = "ec2-user"
  ami_name      = "${var.image}-${uuidv4()}"
}
'''
HCL_VARIABLES = '''variable "region" {
  type = string
}

variable "source_ami" {
  type = string
}

variable "image" {
  type = string
}
'''

HCL = {
    # One file, no playbook: shell and file provisioners, ${path.root} paths,
    # file() (templatefile() needs Packer 1.7), and a script chosen by a
    # .pkrvars.hcl var file.
    "packer/hcl/image.pkr.hcl": HCL_VARIABLES + '''
variable "arch" {
  type    = string
  default = "x86_64"
}

locals {
  scripts = "${path.root}/scripts"
}

''' + HCL_SOURCE.replace("NAME", "image").replace(
        '  ami_name      = "${var.image}-${uuidv4()}"\n',
        '  ami_name      = "${var.image}-${uuidv4()}"\n'
        '  user_data     = file("${path.root}/user-data.tpl")\n') + '''
build {
  sources = ["source.amazon-ebs.image"]

  provisioner "shell" {
    scripts = ["${local.scripts}/setup.sh", "${path.root}/scripts/install-${var.arch}.sh"]
  }

  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "/etc/app"
  }

  provisioner "shell-local" {
    # an escaped quote before an interpolation, a brace in an expression's string
    inline = ["echo \\"motd says\\" ${file("${path.root}/motd")}${replace("}", "}", "")}"]
  }

  provisioner "shell-local" {
    script = "${path.root}/scripts/local.sh"
  }
}
''',
    "packer/hcl/arm.pkrvars.hcl": 'arch = "arm64"\n',
    "packer/hcl/scripts/setup.sh": "#!/bin/sh\necho setup\n",
    "packer/hcl/scripts/install-arm64.sh": "#!/bin/sh\necho arm\n",
    "packer/hcl/scripts/install-x86_64.sh": "#!/bin/sh\necho x86\n",
    "packer/hcl/scripts/local.sh": "#!/bin/sh\necho hcl local step ran\n",
    "packer/hcl/files/app.conf": "port=80\n",
    "packer/hcl/motd": "hello\n",
    "packer/hcl/user-data.tpl": "#cloud-config\nhostname: hcl\n",
    # HCL2's JSON syntax.
    "packer/pkrjson/image.pkr.json": json.dumps({
        "variable": {"region": {"type": "string"}, "source_ami": {"type": "string"},
                     "image": {"type": "string"}},
        "source": {"amazon-ebs": {"image": {
            "region": "${var.region}", "source_ami": "${var.source_ami}",
            "instance_type": "t3.small", "ssh_username": "ec2-user",
            "ami_name": "${var.image}-${uuidv4()}"}}},
        "build": {"sources": ["source.amazon-ebs.image"], "provisioner": [
            {"shell-local": {"script": "${path.root}/check.sh"}},
            {"shell": {"inline": ["echo needs an instance"]}}]},
    }, indent=2),
    "packer/pkrjson/check.sh": "#!/bin/sh\necho pkr.json step ran\n",
    # A folder of files: Packer's unit of HCL2 configuration.
    "packer/folder/variables.pkr.hcl": HCL_VARIABLES,
    "packer/folder/source.pkr.hcl": HCL_SOURCE.replace("NAME", "folder"),
    "packer/folder/locals.pkr.hcl": '''locals {
  confs   = fileset("${path.root}/conf", "*.conf")
  banner  = <<-EOT
    folder heredoc ran
    EOT
  uploads = { "motd" = "files/motd" }
}
''',
    "packer/folder/conf/app.conf": "workers=2\n",
    "packer/folder/files/motd": "uploaded by a dynamic block\n",
    "packer/folder/build.pkr.hcl": '''build {
  sources = ["source.amazon-ebs.folder"]

  provisioner "shell-local" {
    inline = ["echo folder step ran"]
  }

  provisioner "shell-local" {
    inline = ["printf '${local.banner}'"]
  }

  # amazon-ecs-ami's shape: a file named only in a dynamic block
  dynamic "provisioner" {
    labels   = ["file"]
    for_each = local.uploads
    iterator = up
    content {
      source      = "${path.root}/${up.value}"
      destination = "/tmp/${up.key}"
    }
  }
}
''',
}

HCL_GRAPH = """\
region: eu-west-1
source:
  name: centos
  ami: ami-bb9a6bc2
images:
  hcl:
    parent: centos
    template: packer/hcl/image.pkr.hcl
    var_files: [packer/hcl/arm.pkrvars.hcl]
  pkrjson:
    parent: centos
    template: packer/pkrjson/image.pkr.json
  folder:
    parent: centos
    template: packer/folder
"""

HCL_READERS = {
    "packer/hcl/image.pkr.hcl": ["hcl"],
    "packer/hcl/arm.pkrvars.hcl": ["hcl"],
    "packer/hcl/scripts/setup.sh": ["hcl"],
    "packer/hcl/scripts/install-arm64.sh": ["hcl"],
    "packer/hcl/scripts/local.sh": ["hcl"],
    "packer/hcl/files/app.conf": ["hcl"],
    "packer/hcl/motd": ["hcl"],
    "packer/hcl/user-data.tpl": ["hcl"],
    "packer/pkrjson/image.pkr.json": ["pkrjson"],
    "packer/pkrjson/check.sh": ["pkrjson"],
    "packer/folder/build.pkr.hcl": ["folder"],
    "packer/folder/variables.pkr.hcl": ["folder"],
    "packer/folder/locals.pkr.hcl": ["folder"],
    "packer/folder/conf/app.conf": ["folder"],
    "packer/folder/files/motd": ["folder"],
}
HCL_UNREAD = ["packer/hcl/scripts/install-x86_64.sh"]


def hcl_zoo(root: Path) -> Path:
    write(root, {**HCL, "amis.yaml": HCL_GRAPH})
    return root


# -- rounds of edits, for the end-to-end tests ---------------------------------

def would_build(plan: str) -> dict[str, str]:
    """image -> why, for the images the plan would build."""
    return {m[1]: m[2] for m in re.finditer(r"^(\w+)\s+build\s+\S+\s+\S*\s+(.*)$",
                                            plan, re.M)}


def edits_rebuild_exactly_their_readers(zoo: Project, readers: dict[str, list[str]],
                                        unread: list[str]) -> None:
    """Edit the files in rounds, one per image and round: each plan names
    exactly the images that read an edited file, and each run builds them;
    editing what nothing reads builds nothing."""
    by_image: dict[str, list[str]] = defaultdict(list)
    for path, images in readers.items():
        assert len(images) == 1
        by_image[images[0]].append(path)
    for i in range(max(len(paths) for paths in by_image.values())):
        edited = {image: paths[i] for image, paths in by_image.items() if i < len(paths)}
        for path in edited.values():
            edit(zoo.path, path)
        commit(zoo.path)
        plan = ok(zoo.doit("plan")).stdout
        assert would_build(plan) == {image: f"changed {path}" for image, path in edited.items()}, plan
        ok(zoo.doit("amis"))
        assert sorted(zoo.packer_builds()) == sorted(edited), edited
        zoo.reset_count()
    for path in unread:
        edit(zoo.path, path)
    commit(zoo.path)
    assert "nothing to build" in ok(zoo.doit("plan")).stdout
    ok(zoo.doit("amis"))
    assert zoo.packer_builds() == []


def edit(root, rel: str) -> None:
    path = root / rel
    if rel.endswith(".pkr.json"):
        # HCL2's JSON syntax has no room for a stray key: change a setting.
        data = json.loads(path.read_text())
        for body in data["source"]["amazon-ebs"].values():
            body["instance_type"] = "t3.medium"
        path.write_text(json.dumps(data, indent=2))
    elif rel.endswith(".json"):
        data = json.loads(path.read_text())
        data["edited"] = "yes"
        path.write_text(json.dumps(data))
    else:
        path.write_text(path.read_text() + "\n# edited\n")
