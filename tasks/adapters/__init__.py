"""adapters: everything that talks to the world outside the repository,
through small typed ports, each with its real adapter here and a fake in
``fakes/``: EC2 (``ec2``), SSM (``ssm``), KMS (``kms``), the bucket
(``s3``), Packer (``packer``, ``packer_output``), the tool runner
(``tools``) and git (``git``), on one AWS session (``aws``). Also the
records in the bucket (``registry``), signing (``signing``), the stage
Packer runs in (``stage``), the sandbox's emulator (``emulator``), signals
(``signals``) and the terminal (``console``).

May import: ``core``, the standard library and the clients (botocore, moto).
Never ``inputs``, ``state``, ``ops`` or ``cli``."""
