"""doit tasks for the AMI tree: `doit list` shows them, `doit` builds what changed."""

from tasks.creators import task_ami, task_amis, task_plan, task_pull, task_sandbox_stop  # noqa: F401

DOIT_CONFIG = {
    "default_tasks": ["amis"],
    # sqlite3: safe when two doit processes touch it; dbm cannot be opened twice.
    "backend": "sqlite3",
    "dep_file": ".amis/doit.sqlite3",
    "check_file_uptodate": "md5",
    # Packer is a subprocess: threads are enough and need no pickling.
    "par_type": "thread",
    "verbosity": 2,
    "minversion": "0.36.0",
}
