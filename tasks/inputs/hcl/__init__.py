"""HCL2 Packer configurations, as Packer's own ``hcl2template`` reads them,
one module per concern: ``parse`` (files and python-hcl2), ``syntax``
(python-hcl2's value form), ``scope`` (what expressions mean before the
build), ``functions`` (file() and its kin), ``shape`` (the blocks) and
``effective`` (the configuration Packer gets)."""
