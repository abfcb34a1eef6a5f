#!/usr/bin/env python3
"""Seeds S3 buckets in a moto server for the s3 tests, as a backup job would: buckets (in their
regions, versioning on where asked), objects put from files (with a storage class where asked),
objects overwritten (their old versions noncurrent) and deleted (behind a delete marker), and a
bucket policy denying GetObject under one prefix.

    moto_s3.py ENDPOINT SPEC.json [--policy FILE]

SPEC: {"buckets": [{"name", "region", "versioning": bool, "deny_prefix": str?}],
       "ops": [{"put": "bucket/key", "file": path, "storage_class": str?}
               | {"delete": "bucket/key"}]}

With --policy FILE: users `scanner` (FILE's IAM policy) and `scanner-no-versions` (the same
without s3:GetObjectVersion) with access keys, and moto's authentication turned on, so that
every call is checked against the caller's policy.

Prints JSON: {"versions": {"bucket/key": [version id of each put, in order]},
              "sizes": {"bucket/key": bytes of the last put},
              "users": {name: {"key_id", "secret"}} (with --policy)}.
"""
import json
import sys
import urllib.request

import boto3

endpoint, spec_path = sys.argv[1], sys.argv[2]
with open(spec_path) as f:
    spec = json.load(f)


def client(region):
    return boto3.client("s3", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


regions = {}
for b in spec["buckets"]:
    c = client(b["region"])
    regions[b["name"]] = b["region"]
    if b["region"] == "us-east-1":
        c.create_bucket(Bucket=b["name"])
    else:
        c.create_bucket(Bucket=b["name"],
                        CreateBucketConfiguration={"LocationConstraint": b["region"]})
    if b.get("versioning"):
        c.put_bucket_versioning(Bucket=b["name"],
                                VersioningConfiguration={"Status": "Enabled"})
    if b.get("deny_prefix"):
        c.put_bucket_policy(Bucket=b["name"], Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                           "Resource": f"arn:aws:s3:::{b['name']}/{b['deny_prefix']}*"}]}))

versions, sizes = {}, {}
for op in spec["ops"]:
    if "put" in op:
        bucket, key = op["put"].split("/", 1)
        with open(op["file"], "rb") as f:
            body = f.read()
        kw = {"StorageClass": op["storage_class"]} if op.get("storage_class") else {}
        out = client(regions[bucket]).put_object(Bucket=bucket, Key=key, Body=body, **kw)
        versions.setdefault(op["put"], []).append(out.get("VersionId"))
        sizes[op["put"]] = len(body)
    else:
        bucket, key = op["delete"].split("/", 1)
        client(regions[bucket]).delete_object(Bucket=bucket, Key=key)
users = {}
if "--policy" in sys.argv:
    with open(sys.argv[sys.argv.index("--policy") + 1]) as f:
        policy = json.load(f)
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    narrow = json.loads(json.dumps(policy))
    for st in narrow["Statement"]:
        st["Action"] = [a for a in st["Action"] if a != "s3:GetObjectVersion"]
    for name, doc in [("scanner", policy), ("scanner-no-versions", narrow)]:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="keyhound", PolicyDocument=json.dumps(doc))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        users[name] = {"key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    urllib.request.urlopen(urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "application/json"}))
print(json.dumps({"versions": versions, "sizes": sizes, "users": users}))
