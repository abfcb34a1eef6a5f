#!/usr/bin/env python3
"""Reads state back from moto with boto3, signed by the operator's key (auth is on).

    moto_query.py ENDPOINT KEY_ID SECRET key-status USER ACCESS_KEY_ID   → Active|Inactive|absent
    moto_query.py ENDPOINT KEY_ID SECRET sqs-read QUEUE_URL              → JSON list of SNS envelopes
"""
import json
import sys

import boto3

endpoint, key, secret, cmd, *args = sys.argv[1:]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id=key, aws_secret_access_key=secret)
if cmd == "key-status":
    iam = boto3.client("iam", **kw)
    try:
        keys = iam.list_access_keys(UserName=args[0])["AccessKeyMetadata"]
    except iam.exceptions.NoSuchEntityException:
        keys = []
    print(next((k["Status"] for k in keys if k["AccessKeyId"] == args[1]), "absent"))
elif cmd == "sqs-read":
    sqs = boto3.client("sqs", **kw)
    got = []
    while True:
        r = sqs.receive_message(QueueUrl=args[0], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not r.get("Messages"):
            break
        got += [json.loads(m["Body"]) for m in r["Messages"]]
    print(json.dumps(got))
else:
    sys.exit(f"unknown command {cmd}")
