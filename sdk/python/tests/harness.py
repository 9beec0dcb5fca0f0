"""Starts a real `agentbill serve --http` for the SDK tests.

The binary is $AGENTBILL_BIN (scripts/test.sh builds bin/agentbill once and
exports it), or built here with `go build` into a temporary directory.
Everything listens on 127.0.0.1 only, on free ports, and every wait is
bounded.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(SDK_DIR))
if SDK_DIR not in sys.path:
    sys.path.insert(0, SDK_DIR)

BUILD_TIMEOUT = 300  # seconds; a cold Go build cache compiles nats-server
READY_TIMEOUT = 30  # seconds for serve to answer /healthz
CLI_TIMEOUT = 30  # seconds for one `agentbill keys ...`
STOP_TIMEOUT = 10  # seconds for serve to exit after SIGTERM
POLL_INTERVAL = 0.05


def openapi():
    """The repository's docs/openapi.json: the gateway's contract."""
    with open(os.path.join(REPO, "docs", "openapi.json"), encoding="utf-8") as f:
        return json.load(f)


def gateway_has(path=None, schema=None, field=None):
    """Whether docs/openapi.json documents the route ``path``, or the
    property ``field`` of the request schema ``schema``.

    Tests of a gateway surface another branch adds skip while the contract
    does not have it yet, and run, so they must pass, as soon as it does:
    a skip can never hide a documented route that is missing.
    """
    doc = openapi()
    if path is not None and path not in doc.get("paths", {}):
        return False
    if schema is not None:
        props = doc.get("components", {}).get("schemas", {}).get(schema, {}).get("properties", {})
        if field not in props:
            return False
    return True


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agentbill_binary(tmp):
    env = os.environ.get("AGENTBILL_BIN")
    if env and os.access(env, os.X_OK):
        return env
    out = os.path.join(tmp, "agentbill")
    subprocess.run(["go", "build", "-o", out, "./cmd/agentbill"], cwd=REPO, check=True, timeout=BUILD_TIMEOUT)
    return out


class Server:
    """One `agentbill serve --http` process with its own data directory."""

    def __init__(self, *extra_args):
        self.tmp = tempfile.mkdtemp(prefix="agentbill-py-")
        self.bin = agentbill_binary(self.tmp)
        self.nats_url = "nats://127.0.0.1:%d" % free_port()
        http_port = free_port()
        self.base_url = "http://127.0.0.1:%d" % http_port
        self.data = os.path.join(self.tmp, "data")
        self.log = open(os.path.join(self.tmp, "serve.log"), "w+")
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--data", self.data,
             "--nats-listen", self.nats_url[len("nats://"):],
             "--http", "127.0.0.1:%d" % http_port] + list(extra_args),
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("agentbill serve exited with %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as res:
                    if res.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(POLL_INTERVAL)
        raise RuntimeError("agentbill serve did not answer within %ss:\n%s" % (READY_TIMEOUT, self.output()))

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def cli(self, *args):
        """Runs `agentbill ARGS --nats-url URL` as the local admin (serve's
        data directory holds its credential) and returns its stdout."""
        env = dict(os.environ, AGENTBILL_DATA=self.data)
        res = subprocess.run([self.bin] + list(args) + ["--nats-url", self.nats_url],
                             capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env)
        if res.returncode != 0:
            raise RuntimeError("agentbill %s: exit %d\n%s%s" % (" ".join(args), res.returncode, res.stdout, res.stderr))
        return res.stdout

    def create_key(self, role, customer=None):
        """Returns (key, id) of a new key."""
        args = ["keys", "create", "--role", role, "--json"]
        if customer:
            args += ["--customer", customer]
        out = json.loads(self.cli(*args))
        return out["key"], out["id"]

    def revoke(self, key_id):
        self.cli("keys", "revoke", key_id)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
