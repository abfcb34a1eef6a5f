#!/usr/bin/env python3
"""Seeds S3 buckets in a moto server for the s3 tests, as a backup job would: buckets (in their
regions, versioning on where asked), objects put from files (with a storage class where asked),
objects overwritten (their old versions noncurrent) and deleted (behind a delete marker), and a
bucket policy denying GetObject under one prefix.

    moto_s3.py ENDPOINT SPEC.json

SPEC: {"buckets": [{"name", "region", "versioning": bool, "deny_prefix": str?}],
       "ops": [{"put": "bucket/key", "file": path, "storage_class": str?}
               | {"delete": "bucket/key"}]}

Prints JSON: {"versions": {"bucket/key": [version id of each put, in order]},
              "sizes": {"bucket/key": bytes of the last put}}.
"""
import json
import sys

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
print(json.dumps({"versions": versions, "sizes": sizes}))
