"""An OpenAI client wrapped by AgentBill: every model call is preflighted,
and charged the usage the model reported.

It starts a stand-in model server on 127.0.0.1 (it answers
POST /v1/chat/completions with the API's documented JSON, usage included,
and counts requests), then calls it through the real `openai` package if
it is installed, else through a few lines of stdlib client with the same
`client.chat.completions.create(...)` shape. Run it against
`agentbill serve --http 127.0.0.1:8080` with an agent key:

    AGENTBILL_API_KEY=agb_... PYTHONPATH=sdk/python python3 examples/python/wrap_openai.py

AGENTBILL_BASE_URL overrides the gateway's address, AGENTBILL_CUSTOMER the
customer (default user_123). It exits 3 if a call is refused.
"""

import itertools
import json
import os
import sys
import threading
import types
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agentbill import AgentBillClient, RefusedError, wrap

CUSTOMER = os.environ.get("AGENTBILL_CUSTOMER", "user_123")
CALLS = 3
PROMPT_TOKENS, COMPLETION_TOKENS = 42, 8  # what the stand-in model reports per call


class StandInModel(BaseHTTPRequestHandler):
    """Answers chat completions as OpenAI documents them."""

    requests = 0
    ids = itertools.count(1)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StandInModel.requests += 1
        answer = json.dumps({
            "id": "chatcmpl-example-%d" % next(StandInModel.ids), "object": "chat.completion",
            "created": 1767225600, "model": body["model"], "service_tier": "default",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Hello from the stand-in model."}}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                      "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class StdlibOpenAI:
    """Just enough of openai.OpenAI for this example: chat.completions.create."""

    def __init__(self, base_url, api_key):
        self.base_url, self.api_key = base_url, api_key
        self.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=self._create))

    def _create(self, **kwargs):
        req = urllib.request.Request(self.base_url + "/chat/completions", data=json.dumps(kwargs).encode(),
                                     headers={"Authorization": "Bearer " + self.api_key,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.loads(res.read(), object_hook=lambda d: types.SimpleNamespace(**d))


def openai_client(base_url):
    try:
        from openai import OpenAI
    except ImportError:
        return StdlibOpenAI(base_url, "sk-standin")
    return OpenAI(base_url=base_url, api_key="sk-standin")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    model_url = "http://127.0.0.1:%d/v1" % server.server_address[1]

    agentbill = AgentBillClient()  # AGENTBILL_API_KEY, AGENTBILL_BASE_URL
    client = wrap(openai_client(model_url), agent_id="support_bot", customer_id=CUSTOMER,
                  task_ref="ticket-42", agentbill=agentbill)
    try:
        for i in range(CALLS):
            reply = client.chat.completions.create(
                model="gpt-4.1-mini", max_completion_tokens=100,
                messages=[{"role": "user", "content": "Say hello (%d)" % (i + 1)}])
            print("answer %d: %s (charged %d tokens)" % (i + 1, reply.choices[0].message.content,
                                                          reply.usage.prompt_tokens + reply.usage.completion_tokens))
    except RefusedError as refused:
        print("refused (%s): %s" % (refused.reason, refused.message))
        return 3
    finally:
        server.shutdown()
    b = agentbill.budget(CUSTOMER)
    print("model requests: %d; budget: %s of %s units left" % (StandInModel.requests, b.remaining_units,
                                                              b.limit_units))
    return 0


if __name__ == "__main__":
    sys.exit(main())
