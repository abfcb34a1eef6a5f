#!/usr/bin/env python3
"""Sets up two accounts in a moto server for the owners/audit/remediate tests, then turns its
authentication on.

    moto_org.py ENDPOINT [--no-auth]

Main account (moto's default): `admin` (the operator: Action:* policy), `alice` (owner tag,
password, one key), `carol` (owner tag, key; not in the test's directory), `dave` (password,
an Inactive key), `erin` (no password, only an Inactive key), `frank` (no password, no key).
Member account 111111111111: role `KeyhoundAudit` (Action:*), user `mallory` with a key.
An SNS topic with an SQS queue subscribed to it.

Prints JSON: users by name → user, arn, account, key_id, secret; and topic_arn, queue_url,
member_account.
"""
import json
import sys
import urllib.request

import boto3

endpoint = sys.argv[1]
MEMBER = "111111111111"
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
iam = boto3.client("iam", **kw)
member = boto3.client("iam", **kw)
member.meta.events.register(
    "before-sign.*.*", lambda request, **_: request.headers.__setitem__("x-moto-account-id", MEMBER))
ALL = json.dumps({"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
out = {}


def user(client, name, owner=None, password=False, key=True, inactive=False):
    tags = [{"Key": "owner", "Value": owner}] if owner else []
    u = client.create_user(UserName=name, Tags=tags)["User"]
    if password:
        client.create_login_profile(UserName=name, Password="Pass-word-123!")
    entry = {"user": name, "arn": u["Arn"], "account": u["Arn"].split(":")[4]}
    if key:
        k = client.create_access_key(UserName=name)["AccessKey"]
        entry.update(key_id=k["AccessKeyId"], secret=k["SecretAccessKey"])
        if inactive:
            client.update_access_key(UserName=name, AccessKeyId=k["AccessKeyId"], Status="Inactive")
    out[name] = entry


user(iam, "admin", owner="admin@example.com", password=True)
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=ALL)
user(iam, "alice", owner="alice@example.com", password=True)
user(iam, "carol", owner="carol@example.com", password=True)
user(iam, "dave", owner="dave@example.com", password=True, inactive=True)
user(iam, "erin", owner="erin@example.com", inactive=True)
user(iam, "frank", key=False)
user(member, "mallory", owner="mallory@example.com", password=True)
main_account = out["admin"]["account"]
member.create_role(RoleName="KeyhoundAudit", AssumeRolePolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                   "Principal": {"AWS": f"arn:aws:iam::{main_account}:root"}}]}))
member.put_role_policy(RoleName="KeyhoundAudit", PolicyName="all", PolicyDocument=ALL)

sns = boto3.client("sns", **kw)
sqs = boto3.client("sqs", **kw)
topic = sns.create_topic(Name="keyhound-owners")["TopicArn"]
queue = sqs.create_queue(QueueName="owners")["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
out.update(topic_arn=topic, queue_url=queue, member_account=MEMBER)

# With auth on, moto re-encodes a form body with botocore's rules before checking its signature;
# the Rust SDK's encoding of spaces differs, so an SNS Publish with a text message fails there
# (boto3's passes). The SNS test runs without auth.
if "--no-auth" not in sys.argv[2:]:
    urllib.request.urlopen(urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "application/json"}))
print(json.dumps(out))
