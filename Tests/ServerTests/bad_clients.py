"""Hostile and careless clients against `weightfs serve` (ServerTests runs it).

    python bad_clients.py PORT MODEL_NAME API_KEY

Raw sockets, so nothing is fixed up on the way: malformed JSON, wrong types, a missing key, a
client gone mid-stream, a slowloris connection that never finishes its headers. Prints one JSON
object with what each got.
"""
import http.client
import json
import socket
import sys
import time

port, model, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = {}


def post(path, body, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    h.update(headers or {})
    c.request("POST", path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data.decode("utf-8", "replace")


# A slowloris connection: headers trickle in and never end. It must not stop anyone else.
slow = socket.create_connection(("127.0.0.1", port))
slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")

out["malformed"] = post("/v1/completions", b'{"model": "' + model.encode() + b'", "prompt": ')
out["not_object"] = post("/v1/completions", b"[1, 2]")
out["wrong_type"] = post("/v1/completions", json.dumps({"model": model, "prompt": "hi", "max_tokens": "many"}))
out["wrong_temperature"] = post("/v1/completions", json.dumps({"model": model, "prompt": "hi", "temperature": "hot"}))
out["no_prompt"] = post("/v1/completions", json.dumps({"model": model}))
out["bad_messages"] = post("/v1/chat/completions", json.dumps({"model": model, "messages": [{"role": "wizard", "content": "x"}]}))
out["out_of_vocab"] = post("/v1/completions", json.dumps({"model": model, "prompt": [1, 2, 99999999], "max_tokens": 2}))
out["missing_key"] = post("/v1/completions", json.dumps({"model": model, "prompt": "hi"}), {"Authorization": ""})
slow.sendall(b"X-Slow: 1\r\n")

# A client that reads two events of a stream and goes away.
s = socket.create_connection(("127.0.0.1", port))
body = json.dumps({"model": model, "prompt": "gone", "max_tokens": 400, "temperature": 0, "stream": True, "ignore_eos": True}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + key.encode() +
          b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
got = b""
while got.count(b"data: ") < 2:
    chunk = s.recv(4096)
    if not chunk:
        break
    got += chunk
s.close()
out["gone_saw_events"] = got.count(b"data: ")
time.sleep(0.5)

# A client that sends a long non-streaming request and leaves at once, reading nothing.
s = socket.create_connection(("127.0.0.1", port))
body = json.dumps({"model": model, "prompt": "gone too", "max_tokens": 500, "temperature": 0, "ignore_eos": True}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + key.encode() +
          b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
s.close()
time.sleep(0.5)

# Two requests pipelined on one keep-alive connection: the first is answered with Connection:
# close and the server then closes the connection (RFC 9112 9.3.2: the client sends the second
# again on a new one) instead of leaving it waiting. (The timeout only guards a hang.)
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(60)
body = json.dumps({"model": model, "prompt": "keep", "max_tokens": 2, "temperature": 0}).encode()
one = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + key.encode() +
       b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
s.sendall(one + one)
got = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    out["pipelined"] = {"responses": got.count(b"HTTP/1.1 200"), "closed": True, "connection_close": b"connection: close" in got.lower()}
except socket.timeout:
    out["pipelined"] = {"responses": got.count(b"HTTP/1.1 200"), "closed": False, "connection_close": b"connection: close" in got.lower()}
s.close()

# Others are served all along, the slowloris still hanging.
out["after"] = post("/v1/completions", json.dumps({"model": model, "prompt": "still here", "max_tokens": 3, "temperature": 0}))
slow.sendall(b"X-Slow: 2\r\n")
slow.close()
print(json.dumps(out))
