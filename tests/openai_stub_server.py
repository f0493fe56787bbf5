"""A small OpenAI-compatible chat-completions server for the judge tests (loopback only, no network).

It judges by content, so the right verdict is known whatever A/B order the client chose: the response that
contains ``GOOD`` wins over the one containing ``BAD``. Markers inside a response text script failures, counted
per distinct request (so they are deterministic under concurrency):

``[429]`` first attempt answers 429 (with ``Retry-After: 0``), ``[500]`` first attempt answers 500,
``[slow]`` first attempt sleeps ``slow_s`` before answering (longer than the client's timeout),
``[drop]`` first attempt closes the connection without a response, ``[garbage]`` always answers text without a
verdict, ``[tie]`` always answers "Preferred: a tie" (the article, not option A), ``[fatal]`` always answers 400
(not retryable), ``[biasA]`` always prefers the first-shown response; ``[nochoices]`` / ``[nullchoices]`` /
``[badjson]`` first attempt answers 200 with ``"choices": []`` / ``"choices": null`` / a body that is not JSON,
``[alwaysnochoices]`` always answers 200 with ``"choices": []``.

The server records every request (``requests``), answered requests per request body (``answered``), the
``Authorization`` headers it saw, and the largest number of requests in flight at once (``max_in_flight``).
``delay_s`` makes every answer wait (to measure concurrency); ``fail_after`` makes every request after that many
successful answers fail with 400 (a crash in the middle of a run).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _slots(content: str) -> tuple[str, str]:
    """(first shown, second shown) response texts of a paper-template or AlpacaEval prompt."""
    m = re.search(r"Summary A:\n(.*?)\nSummary B:\n(.*?)\n\nFIRST provide", content, re.S)
    if m:
        return m.group(1), m.group(2)
    outs = re.findall(r'"output": """(.*?)"""', content, re.S)
    if len(outs) == 2:
        return outs[0], outs[1]
    raise ValueError("stub server: cannot find the two responses in the prompt")


class StubState:
    def __init__(self, slow_s: float = 1.0, delay_s: float = 0.0):
        self.lock = threading.Lock()
        self.slow_s, self.delay_s = slow_s, delay_s
        self.fail_after: int | None = None
        self.requests: list[dict] = []
        self.attempts: Counter = Counter()
        self.answered: Counter = Counter()
        self.auth_headers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def n_answered(self) -> int:
        return sum(self.answered.values())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: StubState  # set on the subclass made per server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        st = self.state
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw)
        key = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
        with st.lock:
            st.requests.append(body)
            st.auth_headers.append(self.headers.get("Authorization", ""))
            st.attempts[key] += 1
            attempt = st.attempts[key]
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            self._answer(st, body, key, attempt)
        finally:
            with st.lock:
                st.in_flight -= 1

    def _answer(self, st: StubState, body: dict, key: str, attempt: int) -> None:
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found"}})
            return
        content = "\n".join(m["content"] for m in body["messages"])
        first, second = _slots(content)
        both = first + second
        if st.delay_s:
            time.sleep(st.delay_s)
        if "[fatal]" in both or (st.fail_after is not None and st.n_answered >= st.fail_after):
            self._send(400, {"error": {"message": "bad request", "type": "invalid_request_error"}})
            return
        if "[alwaysnochoices]" in both:
            self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"], "choices": []})
            return
        if attempt == 1:
            if "[nochoices]" in both or "[nullchoices]" in both:
                self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                                 "choices": [] if "[nochoices]" in both else None})
                return
            if "[badjson]" in both:
                payload = b'{"choices": [ not json'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if "[429]" in both:
                self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
                return
            if "[500]" in both:
                self._send(500, {"error": {"message": "server error"}})
                return
            if "[drop]" in both:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if "[slow]" in both:
                time.sleep(st.slow_s)
        alpaca = '"model_identifier"' in content
        if "[garbage]" in both:
            text = "Both summaries are fine, I cannot choose."
            letter = None
        elif "[tie]" in both:
            text = "Comparison: Both summaries are equally precise and concise.\nPreferred: a tie"
            letter = None
        else:
            letter = "A" if "[biasA]" in both or "GOOD" in first else "B" if "GOOD" in second else "A"
            text = ({"A": "m", "B": "M"}[letter] if alpaca
                    else f"Comparison: Summary {letter} is more precise.\nPreferred: {letter}")
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                  "logprobs": None}
        if alpaca and body.get("logprobs") and letter is not None:
            win, lose = ("m", "M") if letter == "A" else ("M", "m")
            top = [{"token": win, "logprob": math.log(0.8), "bytes": list(win.encode())},
                   {"token": lose, "logprob": math.log(0.2), "bytes": list(lose.encode())}]
            choice["logprobs"] = {"content": [{"token": win, "logprob": math.log(0.8), "bytes": list(win.encode()),
                                               "top_logprobs": top}]}
        with st.lock:
            st.answered[key] += 1
        self._send(200, {"id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "created": 0,
                         "model": body["model"], "choices": [choice],
                         "usage": {"prompt_tokens": len(content) // 4, "completion_tokens": 12,
                                   "total_tokens": len(content) // 4 + 12}})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that timed out and hung up: expected
        pass


class StubServer:
    """``with StubServer() as srv:`` → ``srv.base_url`` (``http://127.0.0.1:<free port>/v1``), ``srv.state``."""

    def __init__(self, **state_kwargs):
        self.state = StubState(**state_kwargs)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "StubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def alternating_pairs(n: int, marker: str = ""):
    """``n`` pairs for the stub's judge whose better response (the one containing ``GOOD``) alternates between a and
    b; ``marker`` (appended to every response) scripts the stub's failures. Returns prompts, a, b, references and
    the true winners."""
    prompts = [f"Post number {i}: something happened." for i in range(n)]
    a = [("GOOD" if i % 2 == 0 else "BAD") + f" summary a{i} {marker}" for i in range(n)]
    b = [("BAD" if i % 2 == 0 else "GOOD") + f" summary b{i} {marker}" for i in range(n)]
    refs = [f"human summary {i}" for i in range(n)]
    return prompts, a, b, refs, ["a" if i % 2 == 0 else "b" for i in range(n)]
