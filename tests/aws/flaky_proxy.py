#!/usr/bin/env python3
"""A proxy in front of a moto server that misbehaves as S3 does under load, for the s3 tests:
the first GetObject of each key is answered `503 SlowDown`; the first streamed GetObject (no range, or
`bytes=N-`) of more than 1 MiB of a key then sends its headers and half its body and drops the connection.
Everything else is passed through. Each request is logged to stdout as one JSON line
({"method", "path", "range", "status"}), after a first line {"port": N}.

    flaky_proxy.py MOTO_ENDPOINT
"""
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

target = urllib.parse.urlparse(sys.argv[1])
lock = threading.Lock()
slowed, broken = set(), set()


def log(**kw):
    with lock:
        print(json.dumps(kw), flush=True)


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path = self.path.split("?")[0]
        is_object = self.command == "GET" and path.count("/") >= 2 and \
            not path.endswith("/") and "list-type" not in self.path and \
            "versions" not in self.path and "location" not in self.path
        rng = self.headers.get("Range")
        if is_object and path not in slowed:
            slowed.add(path)
            msg = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                   b"<Message>Please reduce your request rate.</Message></Error>")
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            log(method=self.command, path=path, range=rng, status=503)
            return
        conn = http.client.HTTPConnection(target.hostname, target.port)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = target.netloc
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        # A whole object, or the rest of one (`bytes=N-`): a stream, not a block.
        streamed = rng is None or rng.endswith("-")
        cut = is_object and streamed and len(data) > (1 << 20) and path not in broken
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if cut:
            broken.add(path)
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            log(method=self.command, path=path, range=rng, status=resp.status, cut=len(data) // 2)
            return
        self.wfile.write(data)
        log(method=self.command, path=path, range=rng, status=resp.status)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
server.request_queue_size = 64
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
