#!/usr/bin/env python3
"""Puts files into a bucket of a moto server (made if missing), as a fan-out's parts upload
their reports.

    put_files.py ENDPOINT BUCKET PREFIX FILE...

Prints JSON: the keys put.
"""
import json
import os
import sys

import boto3

endpoint, bucket, prefix, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=bucket)
keys = []
for f in files:
    key = prefix + os.path.basename(f)
    with open(f, "rb") as h:
        s3.put_object(Bucket=bucket, Key=key, Body=h.read())
    keys.append(key)
print(json.dumps(keys))
