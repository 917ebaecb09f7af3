"""Which files an Ansible run reads, found the way Ansible finds them.

From a playbook: the plays it imports, its roles (looked up in the
playbook's ``roles/``, the ``roles_path`` of ``ansible.cfg`` or the
provisioner, then beside the playbook), their dependencies and the roles
their tasks include, ``include_tasks`` / ``import_tasks`` /
``include_vars`` / ``vars_files`` / ``src`` paths, ``lookup('file', ...)``,
the playbook folder's ``files/ templates/ tasks/ vars/ group_vars/
host_vars/`` and plugin folders, and ``ansible.cfg`` itself. A role every
file of which is tracked covers what its tasks read from it.

Roles and collections from outside the repository are tracked by the
requirements file that pins them; an unpinned requirement, or content
found only outside the repository and pinned nowhere, is refused. A full
collection name (``acme.platform.docker``) never resolves to a local role
of the same short name.

Modules: ``loader`` (Ansible's YAML), ``requirements`` (Galaxy pins),
``config`` (``ansible.cfg`` and where a run looks), ``playbook`` (the
walk) and ``args`` (the files ansible-playbook's own arguments name).
"""
