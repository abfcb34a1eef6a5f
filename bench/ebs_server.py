#!/usr/bin/env python3
"""A loopback stand-in for AWS that serves one raw disk image as an EBS snapshot, for
bench/snapshot.sh (speed only: correctness is tested against moto).

    ebs_server.py IMAGE PORT [SNAPSHOT_ID]

It answers, for any credentials, the calls `keyhound snapshot SNAPSHOT_ID` makes:
STS GetCallerIdentity, EC2 DescribeSnapshots and DescribeVolumes (Query protocol, XML), and the
EBS direct APIs ListSnapshotBlocks (paginated, 10,000 a page) and GetSnapshotBlock, with AWS's
512 KiB blocks: only the blocks that are not all zeros are listed, as a snapshot lists only
written blocks; each body carries x-amz-Data-Length and x-amz-Checksum (SHA-256, base64).
Bodies are sent with sendfile from the image. Listens on 127.0.0.1 only; prints "ready" when
it is. GET /stats returns the number of block requests served, as JSON.
"""
import base64
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

image, port = sys.argv[1], int(sys.argv[2])
snap = sys.argv[3] if len(sys.argv) > 3 else "snap-0bench000000000000"
BS = 512 << 10
ACCOUNT = "123456789012"
size = os.path.getsize(image)

# The written blocks and their checksums, computed once.
blocks = {}
with open(image, "rb") as f:
    i = 0
    while True:
        b = f.read(BS)
        if not b:
            break
        if b.strip(b"\0"):
            b = b.ljust(BS, b"\0")
            blocks[i] = base64.b64encode(hashlib.sha256(b).digest()).decode()
        i += 1
order = sorted(blocks)
served = {"blocks": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        action = form.get("Action", [""])[0]
        if action == "GetCallerIdentity":
            self.reply(200, (
                '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/bench</Arn>"
                f"<UserId>AIDABENCH</UserId><Account>{ACCOUNT}</Account>"
                "</GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId>"
                "</ResponseMetadata></GetCallerIdentityResponse>"), "text/xml")
        elif action == "DescribeSnapshots":
            gib = -(-size // (1 << 30))
            self.reply(200, (
                '<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                "<requestId>1</requestId><snapshotSet><item>"
                f"<snapshotId>{snap}</snapshotId><volumeId>vol-0bench000000000000</volumeId>"
                "<status>completed</status><startTime>2026-01-01T00:00:00.000Z</startTime>"
                f"<progress>100%</progress><ownerId>{ACCOUNT}</ownerId>"
                f"<volumeSize>{gib}</volumeSize><encrypted>false</encrypted>"
                "</item></snapshotSet></DescribeSnapshotsResponse>"), "text/xml")
        elif action == "DescribeVolumes":
            self.reply(200, (
                '<DescribeVolumesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                "<requestId>1</requestId><volumeSet/></DescribeVolumesResponse>"), "text/xml")
        else:
            self.reply(400, f"<Response><Errors><Error><Code>Unsupported</Code><Message>{action}"
                            "</Message></Error></Errors></Response>", "text/xml")

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if parts == ["stats"]:
            return self.reply(200, json.dumps(served), "application/json")
        if len(parts) == 3 and parts[0] == "snapshots" and parts[2] == "blocks":
            q = urllib.parse.parse_qs(url.query)
            start = int(q.get("pageToken", ["0"])[0])
            page = order[start:start + 10000]
            body = {"Blocks": [{"BlockIndex": i, "BlockToken": f"t{i}"} for i in page],
                    "BlockSize": BS, "VolumeSize": -(-size // (1 << 30))}
            if start + 10000 < len(order):
                body["NextToken"] = str(start + 10000)
            return self.reply(200, json.dumps(body), "application/json")
        if len(parts) == 4 and parts[0] == "snapshots" and parts[2] == "blocks":
            i = int(parts[3])
            with lock:
                served["blocks"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(BS))
            self.send_header("x-amz-Data-Length", str(BS))
            self.send_header("x-amz-Checksum", blocks[i])
            self.send_header("x-amz-Checksum-Algorithm", "SHA256")
            self.end_headers()
            self.wfile.flush()
            with open(image, "rb") as f:
                sent = self.connection.sendfile(f, i * BS, min(BS, size - i * BS))
            if sent < BS:  # the image's last block, short: pad with zeros
                self.wfile.write(b"\0" * (BS - sent))
            return None
        self.reply(404, "{}", "application/json")


class Server(ThreadingHTTPServer):
    # The default backlog of 5 drops the SYNs of a burst of new connections (32 at once from
    # keyhound's connection pool): each then waits a second for its retransmission.
    request_queue_size = 256


server = Server(("127.0.0.1", port), Handler)
server.daemon_threads = True
print("ready", len(order), "written blocks", flush=True)
server.serve_forever()
