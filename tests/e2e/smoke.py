#!/usr/bin/env python3
"""End-to-end smoke test of the release binary, as an operator would use it.

Usage: smoke.py path/to/hubmon

Starts `hubmon serve` on a free port with a fresh data dir, exactly as the README says,
and checks the foundation's promises over HTTP: fast start, /healthz open, everything else
closed, admin login with the printed one-time password, a token created through the API
that authenticates, the audit trail, /metrics, the OpenAPI document, and a clean exit 0 on
SIGTERM. Prints one line per check and exits non-zero on the first failure.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, response.headers, text
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + (f": {detail}" if detail and not condition else ""))
    if not condition:
        sys.exit(1)


def main():
    binary = os.path.abspath(sys.argv[1])
    workdir = tempfile.mkdtemp(prefix="hubmon-e2e-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBMON_")}
    started = time.monotonic()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}"],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr_lines = []
    password = None
    ready_after = None
    try:
        while time.monotonic() - started < 20:
            try:
                status, _, _ = call("GET", f"{base}/healthz")
                if status == 200:
                    ready_after = time.monotonic() - started
                    break
            except OSError:
                time.sleep(0.02)
        check("GET /healthz answers 200", ready_after is not None)
        check(f"starts in under a second on an empty data dir ({ready_after:.3f} s)", ready_after < 1.0)
        check("data dir created where the README says", os.path.isfile(os.path.join(workdir, "hubmon-data", "state.db")))

        while password is None:
            line = server.stderr.readline()
            if not line:
                break
            stderr_lines.append(line)
            match = re.search(r'created user "admin" with password: (\S+)', line)
            if match:
                password = match.group(1)
        check("the one-time admin password is printed", password is not None, "".join(stderr_lines))

        status, _, body = call("GET", f"{base}/api/v1/audit")
        check("unauthenticated GET /api/v1/audit is 401", status == 401, body)
        check("the 401 is the JSON error shape", json.loads(body)["error"]["code"] == "unauthorized", body)

        status, headers, body = call("POST", f"{base}/api/v1/auth/login", {"username": "admin", "password": password})
        check("admin login works", status == 200, body)
        cookies = headers.get_all("Set-Cookie") or []
        session_cookie = re.search(r"hubmon_session=([^;]+)", " ".join(cookies))
        login = json.loads(body)
        csrf = login["csrf_token"]
        cookie_header = {"cookie": f"hubmon_session={session_cookie.group(1)}"} if session_cookie else {}
        check("login sets the session cookie", bool(cookie_header), str(cookies))
        check("the session cookie is HttpOnly and SameSite=Strict",
              any("hubmon_session=" in c and "HttpOnly" in c and "SameSite=Strict" in c for c in cookies), str(cookies))

        status, _, body = call("POST", f"{base}/api/v1/tokens", {"name": "e2e", "role": "admin"}, cookie_header)
        check("a mutating call without the CSRF header is refused", status == 403, body)
        status, _, body = call("POST", f"{base}/api/v1/tokens", {"name": "e2e", "role": "admin", "expires_in": "1h"},
                               {**cookie_header, "x-csrf-token": csrf})
        check("POST /api/v1/tokens creates a token", status == 201, body)
        token = json.loads(body)["token"]
        bearer = {"authorization": f"Bearer {token}"}

        status, _, body = call("GET", f"{base}/api/v1/auth/me", headers=bearer)
        check("the new token authenticates", status == 200 and json.loads(body)["kind"] == "token", body)
        status, _, body = call("GET", f"{base}/api/v1/audit?action=create_token", headers=bearer)
        entries = json.loads(body)["entries"] if status == 200 else []
        outcomes = sorted(e["outcome"] for e in entries)
        check("the audit log holds both token attempts", outcomes == ["denied", "success"], body)
        status, headers, body = call("GET", f"{base}/metrics", headers=bearer)
        check("/metrics exposes per-route request counts", status == 200 and 'route="/api/v1/auth/login"' in body, body[:300])
        status, _, body = call("GET", f"{base}/api/openapi.json", headers=bearer)
        paths = json.loads(body).get("paths", {}) if status == 200 else {}
        check("the OpenAPI document lists the routes", "/api/v1/audit" in paths and "/healthz" in paths, body[:300])

        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=10)
        check("SIGTERM stops the server with exit 0", code == 0, f"exit {code}")
    finally:
        if server.poll() is None:
            server.kill()


if __name__ == "__main__":
    main()
