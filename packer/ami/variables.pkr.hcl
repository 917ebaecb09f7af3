# Set by the runner for every build (`doit ami:<image>`): which image, from
# which playbook, on which parent AMI, and where the build comes from.
variable "image" {
  type = string
}

variable "playbook" {
  type = string
}

variable "region" {
  type = string
}

variable "source_ami" {
  type = string
}

variable "parent_image" {
  type = string
}

variable "digest" {
  type = string
}

variable "build_time" {
  type = string
}

variable "branch" {
  type    = string
  default = ""
}

variable "commit" {
  type    = string
  default = ""
}

variable "dirty" {
  type    = string
  default = "false"
}

variable "build_url" {
  type    = string
  default = ""
}

variable "packer_version" {
  type    = string
  default = ""
}

# Per image, through `vars:` in amis.yaml, where an image needs other values.
variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "ssh_username" {
  type    = string
  default = "ec2-user"
}

variable "root_device" {
  type    = string
  default = "/dev/sda1"
}

variable "root_volume_gb" {
  type    = number
  default = 10
}
