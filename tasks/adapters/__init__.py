"""adapters: everything that talks to the world outside the repository:
AWS (``aws``), the bucket (``s3``) and the records in it (``registry``),
Packer (``packer``, ``packer_output``), the stage Packer runs in
(``stage``), git (``git``), the sandbox's emulator (``emulator``), signals
(``signals``), the terminal (``console``) and the tools a run finds
(``tools``). ``fakes`` holds stand-ins for tests.

May import: ``core``, the standard library and the clients (boto3, moto).
Never ``inputs``, ``state``, ``ops`` or ``cli``."""
