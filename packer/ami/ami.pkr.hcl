# Every image of the tree: the same hardened amazon-ebs source and tags; what
# differs (the image's name and playbook) comes in as variables.
locals {
  provenance = {
    Name          = var.image
    Image         = var.image
    Digest        = var.digest
    ParentImage   = var.parent_image
    ParentAmi     = var.source_ami
    Commit        = var.commit
    Branch        = var.branch
    BuildTime     = var.build_time
    ManagedBy     = "amis-doit"
    Dirty         = var.dirty
    PackerVersion = var.packer_version
    BuildUrl      = var.build_url
  }
}

source "amazon-ebs" "ami" {
  region          = var.region
  source_ami      = var.source_ami
  instance_type   = var.instance_type
  ssh_username    = var.ssh_username
  ami_name        = "${var.image}-${var.build_time}-${uuidv4()}"
  ami_description = "${var.image}: ${var.playbook} on ${var.parent_image}"
  encrypt_boot    = true

  launch_block_device_mappings {
    device_name           = var.root_device
    volume_size           = var.root_volume_gb
    volume_type           = "gp3"
    throughput            = 125
    iops                  = 3000
    encrypted             = true
    delete_on_termination = true
  }

  tags          = local.provenance
  snapshot_tags = local.provenance
  run_tags = {
    Name      = "packer-${var.image}"
    Image     = var.image
    ManagedBy = "amis-doit"
  }
}

build {
  sources = ["source.amazon-ebs.ami"]

  provisioner "ansible" {
    playbook_file    = var.playbook
    user             = var.ssh_username
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_NOCOLOR=1"]
    extra_arguments  = ["--extra-vars", "image_name=${var.image}"]
  }
}
