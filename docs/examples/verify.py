"""A webhook receiver for the Telegram Bot Gateway that checks every delivery's signature with the
Python standard library only (docs/webhooks.md shows the same with the `standardwebhooks` package).

    WEBHOOK_SECRET=whsec_... PORT=8080 python3 docs/examples/verify.py

It answers 204 to a delivery whose signature holds (and to a repeat of one it has seen), 401 to one
that does not, and prints each event. CHECK=legacy checks only X-Webhook-Signature instead.

Trying it with a gateway on the same machine: start the gateway with WEBHOOK_ALLOW_PRIVATE=true, or
creating a webhook for "url": "http://127.0.0.1:8080/" (a loopback or private address) is refused
with 400. Leave that setting off in production.
"""
import base64
import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE_SECONDS = 5 * 60


def verify_standard_webhook(secret: str, headers, raw_body: bytes, now=None) -> dict:
    """Standard Webhooks: HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<raw body>", keyed by the
    base64-decoded part of the whsec_ secret; any of the space-separated "v1,<base64>" signatures
    may match (two during a secret rotation). Returns the parsed body; raises ValueError."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise ValueError("missing webhook-id, webhook-timestamp or webhook-signature")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise ValueError("timestamp too far from now")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + raw_body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return json.loads(raw_body)
    raise ValueError("no matching signature")


def verify_legacy_signature(secret: str, header, raw_body: bytes) -> bool:
    """X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the whole secret
    string, "whsec_" included>. No timestamp: prefer the Standard Webhooks headers."""
    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header or "", expected)


class Receiver(BaseHTTPRequestHandler):
    secret = ""
    check = "standard"
    seen = set()

    def do_POST(self):
        # Verify the bytes as they arrived: re-serialising parsed JSON would change them.
        raw_body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            if self.check == "legacy":
                if not verify_legacy_signature(self.secret, self.headers.get("x-webhook-signature"), raw_body):
                    raise ValueError("no matching signature")
                event = json.loads(raw_body)
            else:
                event = verify_standard_webhook(self.secret, self.headers, raw_body)
        except ValueError as err:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(f"signature check failed: {err}".encode())
            return
        msg_id = self.headers.get("webhook-id")
        if msg_id not in self.seen:  # the same webhook-id on every retry: handle it once
            self.seen.add(msg_id)
            print(json.dumps({"event": event.get("event"), "event_id": event.get("event_id"), "seq": event.get("seq")}), flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    Receiver.secret = os.environ.get("WEBHOOK_SECRET", "")
    if not Receiver.secret.startswith("whsec_"):
        raise SystemExit("Set WEBHOOK_SECRET to the whsec_... secret of the webhook")
    Receiver.check = "legacy" if os.environ.get("CHECK") == "legacy" else "standard"
    host = os.environ.get("HOST", "127.0.0.1")
    server = HTTPServer((host, int(os.environ.get("PORT", "8080"))), Receiver)
    print(f"listening on http://{host}:{server.server_address[1]}", flush=True)
    server.serve_forever()
