"""inputs: which files an image is built from, and why each one, read from
the repository alone. One module per source of inputs: Packer JSON
templates (``packer_json``), HCL2 configurations (``hcl/``), Ansible
(``ansible/``), the repository's paths (``repo``); ``walk`` goes over a
template's blocks with the registry of kinds (``kinds``), and ``image``
puts one image's inputs together.

May import: ``core``, the standard library, PyYAML and python-hcl2.
Nothing here runs a program or talks to the network."""
