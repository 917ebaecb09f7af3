#!/usr/bin/env python3
"""A stand-in for `packer`, for what the emulator cannot give: a controlled
build time. It prints real machine-readable output and registers real AMIs
in the emulator at $AWS_ENDPOINT_URL (plain HTTP, no boto3: it starts fast).

    FAKE_PACKER_SLEEP   seconds one build takes (default 1)
    FAKE_PACKER_TIMES   a file to append "<image> start|end <epoch>" lines to
    FAKE_PACKER_COUNT   a file to append the image name to, once per build
    FAKE_PACKER_BLOCK   a FIFO to read before building: the build waits until a
                        test writes to it (a deterministic "slow build")
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
import uuid


def _ec2(endpoint: str, region: str, params: dict[str, str]) -> str:
    data = urllib.parse.urlencode({"Version": "2016-11-15", **params}).encode()
    # moto routes by the credential scope; the signature is not checked.
    request = urllib.request.Request(endpoint, data=data, headers={
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/{region}/ec2/aws4_request,"
                         " SignedHeaders=host, Signature=0",
        "Content-Type": "application/x-www-form-urlencoded"})
    return urllib.request.urlopen(request, timeout=60).read().decode()


def register_image(endpoint: str, region: str, name: str, tags: dict[str, str]) -> str:
    """An AMI, tagged as Packer tags it (the template's `tags`)."""
    body = _ec2(endpoint, region, {
        "Action": "RegisterImage", "Name": name, "RootDeviceName": "/dev/sda1",
        "BlockDeviceMapping.1.DeviceName": "/dev/sda1", "BlockDeviceMapping.1.Ebs.VolumeSize": "10"})
    ami = re.search(r"<imageId>(ami-[0-9a-f]+)</imageId>", body).group(1)
    params = {"Action": "CreateTags", "ResourceId.1": ami}
    for i, (key, value) in enumerate(sorted(tags.items()), 1):
        params.update({f"Tag.{i}.Key": key, f"Tag.{i}.Value": value})
    _ec2(endpoint, region, params)
    return ami


def _filled(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*user\s+`([^`]+)`\s*\}\}", lambda m: variables.get(m[1], ""), value)


def _template(path: str, variables: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The AMI's tags and copy regions. A JSON template says them; of an HCL2
    one (this runs on any python3, without an HCL parser) the tags are those
    the runner adds and the copy regions are read off `ami_regions`."""
    if path.endswith(".json") and not path.endswith(".pkr.json"):
        builder = json.load(open(path))["builders"][0]
        tags = {k: _filled(str(v), variables) for k, v in (builder.get("tags") or {}).items()}
        return tags, builder.get("ami_regions", [])
    files = [os.path.join(path, f) for f in sorted(os.listdir(path))] if os.path.isdir(path) \
        else [path]
    text = "".join(open(f).read() for f in files if f.endswith((".pkr.hcl", ".pkr.json")))
    listed = re.search(r'"?ami_regions"?\s*[=:]\s*\[([^\]]*)\]', text)
    tags = {"Image": variables.get("image", ""), "Digest": variables.get("digest", ""),
            "ManagedBy": "amis-doit"}
    return tags, re.findall(r'"([a-z]{2}-[a-z]+-\d)"', listed.group(1)) if listed else []


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"]:
        print(f"{int(time.time())},,version,1.6.6")
        return 0
    if argv[:1] != ["build"]:
        return 0                    # `validate` and the rest: nothing to check here
    variables = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    for arg in argv:                 # the runner hands its variables over in a var file
        if arg.startswith("-var-file=") and arg.endswith(".json"):
            with open(arg[len("-var-file="):], encoding="utf-8") as f:
                variables.update(json.load(f))
    image = variables.get("image", "image")
    tags, copies = _template(argv[-1], variables)
    regions = dict.fromkeys([variables.get("region", "eu-west-1"), *copies])

    def note(env: str, text: str) -> None:
        if os.environ.get(env):
            with open(os.environ[env], "a") as f:
                f.write(text + "\n")

    note("FAKE_PACKER_COUNT", image)
    note("FAKE_PACKER_TIMES", f"{image} start {time.time()}")
    print(f"{int(time.time())},,ui,say,==> amazon-ebs: fake build of {image}", flush=True)
    if os.environ.get("FAKE_PACKER_BLOCK"):
        with open(os.environ["FAKE_PACKER_BLOCK"]) as gate:
            gate.read()
    time.sleep(float(os.environ.get("FAKE_PACKER_SLEEP", "1")))
    ids = [f"{r}:{register_image(os.environ['AWS_ENDPOINT_URL'], r, f'{image}-{uuid.uuid4().hex[:12]}', tags)}"
           for r in regions]
    note("FAKE_PACKER_TIMES", f"{image} end {time.time()}")
    print(f"{int(time.time())},amazon-ebs,artifact,0,id,{'%!(PACKER_COMMA)'.join(ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
