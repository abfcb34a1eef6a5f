#!/usr/bin/env python3
"""Seeds EBS snapshots in a moto server for the snapshot tests, through the EBS direct APIs as
coldsnap or any uploader would: StartSnapshot, PutSnapshotBlock for every block that is not all
zeros (with its SHA-256, base64), CompleteSnapshot.

    moto_ebs.py ENDPOINT IMAGE [--bad-block N]

moto's EBS block size is 512 bytes (AWS's is 512 KiB). With --bad-block N, block N (counted
among the blocks put, in order; -1 the last) is stored with a wrong checksum, as moto stores whatever it is
given. Also: an instance (RunInstances, tagged Name=web-1, owner=...) whose root volume has a
snapshot made by EC2's CreateSnapshot (no blocks), and a second account's snapshot reached
through an organization role.

Prints JSON: snapshot, volume, blocks (indices put), block_size, bad_block, instance,
instance_volume, instance_snapshot, member_account, member_snapshot.
"""
import base64
import hashlib
import json
import sys

import boto3

endpoint, image = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
bad = int(args[args.index("--bad-block") + 1]) if "--bad-block" in args else None
MEMBER = "222222222222"
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ebs = boto3.client("ebs", **kw)
ec2 = boto3.client("ec2", **kw)
BS = 512


def seed(client, data, tags, bad=None):
    size_gib = max(1, -(-len(data) // (1 << 30)))
    snap = client.start_snapshot(VolumeSize=size_gib, Tags=tags, Description="keyhound test")
    sid = snap["SnapshotId"]
    put = [i // BS for i in range(0, len(data), BS) if any(data[i:i + BS])]
    bad = put[bad] if bad is not None else None
    for i in put:
        block = data[i * BS:(i + 1) * BS].ljust(BS, b"\0")
        digest = base64.b64encode(hashlib.sha256(block).digest()).decode()
        if i == bad:
            digest = base64.b64encode(hashlib.sha256(b"not this block").digest()).decode()
        client.put_snapshot_block(SnapshotId=sid, BlockIndex=i, BlockData=block,
                                  DataLength=BS, Checksum=digest, ChecksumAlgorithm="SHA256")
    client.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(put))
    return sid, put, bad


with open(image, "rb") as f:
    data = f.read()
sid, put, bad_index = seed(ebs, data, [{"Key": "team", "Value": "payments"}], bad)
volume = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["VolumeId"]

# An instance with its root volume and a snapshot of it (EC2's CreateSnapshot: no blocks).
inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=[{
    "ResourceType": "instance",
    "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "owner", "Value": "ops@example.com"}]}])
iid = inst["Instances"][0]["InstanceId"]
desc = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
ivol = desc["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
isnap = ec2.create_snapshot(VolumeId=ivol, Description="root of web-1")["SnapshotId"]

# A member account's snapshot, reached through a role the operator assumes.
member_ebs = boto3.client("ebs", **kw)
member_ebs.meta.events.register(
    "before-sign.*.*", lambda request, **_: request.headers.__setitem__("x-moto-account-id", MEMBER))
msid, _, _ = seed(member_ebs, data[:1 << 20], [{"Key": "team", "Value": "web"}])
iam = boto3.client("iam", **kw)
iam.meta.events.register(
    "before-sign.*.*", lambda request, **_: request.headers.__setitem__("x-moto-account-id", MEMBER))
iam.create_role(RoleName="KeyhoundScan", AssumeRolePolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))

print(json.dumps({
    "snapshot": sid, "volume": volume, "blocks": put, "block_size": BS, "bad_block": bad_index,
    "instance": iid, "instance_volume": ivol, "instance_snapshot": isnap,
    "member_account": MEMBER, "member_snapshot": msid,
}))
