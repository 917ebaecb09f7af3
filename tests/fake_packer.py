#!/usr/bin/env python3
"""A stand-in for `packer` where the emulator cannot give what a test needs
(a controlled build time). It prints real machine-readable output and
registers real AMIs in the emulator at $AWS_ENDPOINT_URL.

    FAKE_PACKER_SLEEP   seconds one build takes (default 1)
    FAKE_PACKER_TIMES   a file to append "<image> start|end <epoch>" lines to
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"]:
        print(f"{int(time.time())},,version,1.6.6")
        return 0
    variables = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    image = variables.get("image", "image")
    template = json.load(open(argv[-1]))
    builder = template["builders"][0]
    regions = [variables.get("region", "eu-west-1"), *builder.get("ami_regions", [])]
    times = os.environ.get("FAKE_PACKER_TIMES")

    def mark(what: str) -> None:
        if times:
            with open(times, "a") as f:
                f.write(f"{image} {what} {time.time()}\n")

    mark("start")
    print(f"{int(time.time())},,ui,say,==> amazon-ebs: fake build of {image}", flush=True)
    time.sleep(float(os.environ.get("FAKE_PACKER_SLEEP", "1")))
    import boto3

    ids = []
    for region in dict.fromkeys(regions):
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        ami = ec2.register_image(
            Name=f"{image}-{uuid.uuid4().hex[:12]}", RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 10}}],
        )["ImageId"]
        ids.append(f"{region}:{ami}")
    mark("end")
    print(f"{int(time.time())},amazon-ebs,artifact,0,id,{'%!(PACKER_COMMA)'.join(ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
