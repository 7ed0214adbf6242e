"""No message of the CLI holds the token, whatever the server echoes
(issue 13, bug 1): a canned gateway whose result stream ends with an
error line that quotes the request's Authorization header."""

import http.server
import json
import threading

from harness import scriptum
from test_cli_shapes import API, Endpoint

TOKEN = "tok-secret-5a7c9e1b3d"
THREAD = {"threadId": "thr_aaaa", "scriptName": "echo", "status": "THREAD_STATUS_COMPLETED",
          "createdAtMs": "1700000000000", "finishedAtMs": "1700000001000"}
RESULT = {"threadId": "thr_aaaa", "status": "THREAD_STATUS_COMPLETED",
          "outputTotalBytes": "11"}


class EchoingHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        ctype = "application/json"
        if path == f"{API}/threads/thr_aaaa":
            data = json.dumps(THREAD)
        elif path == f"{API}/threads/thr_aaaa/result":
            data = json.dumps(RESULT)
        elif path == f"{API}/threads/thr_aaaa/result/stream":
            ctype = "application/x-ndjson"
            echo = f"bad request: Authorization: {self.headers.get('Authorization')}"
            data = "\n".join(json.dumps(m) for m in [
                {"meta": {"threadId": "thr_aaaa", "outputTotalBytes": "11"}},
                {"chunk": {"chunkIndex": "0", "data": "aGVsbG8=", "isFinal": False}},
                {"error": {"code": 13, "message": echo}}]) + "\n"
        else:
            self.send_error(404)
            return
        body = data.encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_result_save_never_prints_the_token_a_stream_error_line_echoes(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoingHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        res = scriptum(Endpoint(url), "thread", "result", "thr_aaaa", "--save",
                       tmp_path / "out", token=TOKEN)
    finally:
        server.shutdown()
        server.server_close()
    assert res.rc == 10, (res.rc, res.err)
    # the server did echo it: the message is there, the token is not
    assert "Authorization: Bearer <redacted>" in res.err, res.err
    assert TOKEN not in res.err and TOKEN not in res.out.decode(errors="replace"), res.err
