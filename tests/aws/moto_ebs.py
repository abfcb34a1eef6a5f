#!/usr/bin/env python3
"""Seeds EBS snapshots in a moto server for the snapshot tests, through the EBS direct APIs as
coldsnap or any uploader would: StartSnapshot, PutSnapshotBlock for every block that is not all
zeros (with its SHA-256, base64), CompleteSnapshot.

    moto_ebs.py ENDPOINT IMAGE [--bad-block N] [--policy FILE] [--extra IMAGE]...

moto's EBS block size is 512 bytes (AWS's is 512 KiB). With --bad-block N, block N (counted
among the blocks put, in order; -1 the last) is stored with a wrong checksum, as moto stores whatever it is
given. Also: an instance (RunInstances, tagged Name=web-1, owner=...) whose root volume has a
snapshot made by EC2's CreateSnapshot (no blocks); a volume without snapshots; an organization
whose member account (made by CreateAccount) holds a snapshot and a role to assume.

With --policy FILE: users `scanner` (FILE's IAM policy) and `scanner-no-describe` (the same
without ec2:DescribeSnapshots) with access keys, and moto's authentication turned on, so that
every call is checked against the caller's policy. (moto's signature check refuses every EBS
direct API request once authentication is on, boto3's too, so only EC2, STS and the rest can
be checked this way.)

Prints JSON: snapshot, volume, blocks (indices put), block_size, bad_block, instance,
instance_volume, instance_snapshot, member_account, member_snapshot, bare_volume.
"""
import base64
import hashlib
import json
import sys
import urllib.request

import boto3

endpoint, image = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
bad = int(args[args.index("--bad-block") + 1]) if "--bad-block" in args else None
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
sid, put, bad_index = seed(ebs, data, [{"Key": "team", "Value": "payments"},
                                       {"Key": "owner", "Value": "payments-oncall@example.com"}],
                           bad)
volume = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["VolumeId"]
# --extra IMAGE (repeatable): one more snapshot of each image (the shard tests).
extra = [seed(ebs, open(args[i + 1], "rb").read(), [{"Key": "team", "Value": "extra"}])[0]
         for i, a in enumerate(args) if a == "--extra"]

# An instance with its root volume and a snapshot of it (EC2's CreateSnapshot: no blocks).
inst = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=[{
    "ResourceType": "instance",
    "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "owner", "Value": "ops@example.com"}]}])
iid = inst["Instances"][0]["InstanceId"]
desc = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
ivol = desc["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
isnap = ec2.create_snapshot(VolumeId=ivol, Description="root of web-1")["SnapshotId"]

# A volume with no snapshot at all.
bare = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]

# An organization (the operator's account manages it) with a member account holding a
# snapshot, reached through a role the operator assumes.
org = boto3.client("organizations", **kw)
org.create_organization(FeatureSet="ALL")
MEMBER = org.create_account(Email="member@example.com", AccountName="member")[
    "CreateAccountStatus"]["AccountId"]
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

users = {}
if "--policy" in args:
    with open(args[args.index("--policy") + 1]) as f:
        policy = json.load(f)
    plain = boto3.client("iam", **kw)
    for name, drop in [("scanner", None), ("scanner-no-describe", "ec2:DescribeSnapshots")]:
        doc = json.loads(json.dumps(policy))
        for st in doc["Statement"]:
            st["Action"] = [a for a in st["Action"] if a != drop]
        plain.create_user(UserName=name)
        plain.put_user_policy(UserName=name, PolicyName="keyhound", PolicyDocument=json.dumps(doc))
        k = plain.create_access_key(UserName=name)["AccessKey"]
        users[name] = {"key_id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
    urllib.request.urlopen(urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "application/json"}))

print(json.dumps({
    "users": users,
    "snapshot": sid, "volume": volume, "blocks": put, "block_size": BS, "bad_block": bad_index,
    "instance": iid, "instance_volume": ivol, "instance_snapshot": isnap,
    "member_account": MEMBER, "member_snapshot": msid, "bare_volume": bare, "extra": extra,
}))
