"""An OpenAI-compatible chat server on 127.0.0.1 that answers from a script: no model needed.

For tests and throughput benchmarks of the evolution loop, and for a dry run of a config
before paying for a real endpoint. Each request to ``/v1/chat/completions`` takes the next
reply of the script (the last one repeats), or the reply a function makes of the request::

    {"content": "...", "delay_s": 5.0}               # an answer, after 5 s
    {"status": 429, "retry_after": 1}                # rate limited, retry after 1 s
    {"status": 503}                                  # a server error
    {"content": None}                                # an answer with null content

Requests are served in threads, so concurrent calls overlap as at a real server;
:attr:`ScriptedChatServer.requests` records each one (arrival time, model, messages) and
:attr:`ScriptedChatServer.max_in_flight` the most served at once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = dict
Script = list[Reply] | Callable[[dict, int], Reply]


class ScriptedChatServer:
    """``with ScriptedChatServer(script) as server:`` serves ``server.url`` (a ``base_url``) until the block ends."""

    def __init__(self, script: Script, port: int = 0):
        self.script = script
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def __enter__(self) -> ScriptedChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reply_to(self, body: dict) -> Reply:
        with self._lock:
            index = len(self.requests)
            self.requests.append({"at": time.monotonic(), "model": body.get("model"), "messages": body.get("messages"),
                                  "max_tokens": body.get("max_tokens"), "temperature": body.get("temperature")})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if callable(self.script):
            return self.script(body, index)
        return self.script[min(index, len(self.script) - 1)]

    def done(self) -> None:
        with self._lock:
            self.in_flight -= 1


def _handler(server: ScriptedChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (the http.server API)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            try:
                reply = server.reply_to(body)
                time.sleep(reply.get("delay_s", 0.0))
                status = reply.get("status", 200)
                if status != 200:
                    payload = {"error": {"message": reply.get("message", f"scripted status {status}"),
                                         "type": "scripted"}}
                else:
                    content = reply.get("content")
                    words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                    usage = reply.get("usage") or {"prompt_tokens": words,
                                                   "completion_tokens": len(str(content or "").split())}
                    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                    payload = {"id": "scripted", "object": "chat.completion", "created": int(time.time()),
                               "model": body.get("model", "scripted"), "usage": usage,
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}]}
                data = json.dumps(payload).encode()
                self.send_response(status)
                if reply.get("retry_after") is not None:
                    self.send_header("Retry-After", str(reply["retry_after"]))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout under test)
            finally:
                server.done()

        def log_message(self, *args):
            pass

    return Handler


def parent_code(body: dict) -> str:
    """The parent program of a harness prompt (the first ```python block of the first user message)."""
    user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
    found = re.search(r"```python\n(.*?)```", user, re.S)
    return found.group(1) if found else ""


def knob_tweak(body: dict, index: int) -> Reply:
    """A scripted "model" whose answers always apply: it moves one ``NAME = number`` line of the parent.

    Each request moves a different line or by a different step, so answers rarely repeat.
    """
    lines = [line for line in parent_code(body).split("\n")
             if re.fullmatch(r"_?[A-Z][A-Z0-9_]* = -?\d+(\.\d+)?(e-?\d+)?", line)]
    if not lines:
        return {"content": "I see nothing to change."}
    line = lines[index % len(lines)]
    name, value = line.split(" = ")
    step = 1 + index // len(lines)
    new = str(int(value) + step) if value.lstrip("-").isdigit() else f"{float(value) * (1 + 0.01 * step):.6g}"
    return {"content": f"Try {name} = {new}.\n<<<<<<< SEARCH\n{line}\n=======\n{name} = {new}\n>>>>>>> REPLACE\n"}


def main(argv: list[str] | None = None) -> None:
    """``python -m harness.llm.scripted_server [--port P] [--latency S]``: serve :func:`knob_tweak` until ^C."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    with ScriptedChatServer(lambda body, index: knob_tweak(body, index) | {"delay_s": args.latency},
                            port=args.port) as server:
        print(f"serving {server.url} (scripted answers, {args.latency:g} s each); ^C stops", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
