"""What a build made, checked before it is published: hardened (IMDSv2
required at launch) and private."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import AmiError

if TYPE_CHECKING:
    from .run import Run


def vet(run: Run, image: str, template: str, amis: dict[str, str]) -> None:
    """Require IMDSv2 on instances launched from each AMI (Packer 1.6 cannot
    set it) and make sure none is public. A public AMI is made private at
    once, and the build is not published."""
    public = []
    for region, ami in amis.items():
        run.aws.call(f"hardening {ami} in {region}", "ec2", region, "modify_image_attribute",
                     ImageId=ami, ImdsSupport={"Value": "v2.0"})
        grants = run.aws.call(f"reading launch permissions of {ami}", "ec2", region,
                              "describe_image_attribute", ImageId=ami,
                              Attribute="launchPermission")
        if any(g.get("Group") == "all" for g in grants.get("LaunchPermissions", [])):
            run.aws.call(f"making {ami} private", "ec2", region, "modify_image_attribute",
                         ImageId=ami, LaunchPermission={"Remove": [{"Group": "all"}]})
            public.append(f"{region}:{ami}")
    if public:
        raise AmiError(f"image {image}: {template} made {', '.join(public)} public "
                       "(ami_groups/ami_users); made private again, nothing published: "
                       "remove the setting from the template")
