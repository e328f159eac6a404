#!/usr/bin/env python3
"""Loopback HTTP/1.1 link proxy: shapes the link to a GCS emulator and injects faults.

Sits between a client and an upstream HTTP server (fake-gcs-server) on 127.0.0.1. This
kernel has no netem, so link shaping happens here, in user space:

  * a per-connection download cap (token bucket over response-body bytes),
  * added time to first byte per request (before the response headers),
  * faults, each with a probability per request whose target matches --fault-match:
      reset            forward part of the body, then close with SO_LINGER 0 (client gets RST)
      truncate         forward part of the body, then close normally (fewer bytes than
                       Content-Length)
      stall            forward part of the body, send nothing for --stall-seconds, then close
      429, 503         answer that status with a JSON error body without contacting the
                       upstream; a burst: the next 2 matching requests (any connection) get it too
      408              answer 408 Request Timeout (JSON error body), once, without contacting
                       the upstream
      content-range    rewrite Content-Range to claim a different range of the same length
                       (shifted by a nonzero amount, inside the object if possible); body as is
      slow-first-byte  2 s more before the response headers
    The cut point of reset/truncate/stall is uniform in [0, Content-Length) (always fewer
    bytes than announced); for chunked or read-until-close bodies it is uniform in
    [0, 1 MiB) of the raw body stream and the fault does not happen if the body is shorter.
    Kinds' probabilities add up (one uniform draw picks at most one kind per request).

One thread per client connection, one upstream connection per client connection,
keep-alive on both sides, blocking sockets; body bytes move with splice(2) (zero copy) when
available, else recv_into a 1 MiB buffer + sendall.

Control and stats on the same port, path prefix /__proxy/ (never forwarded):
  GET  /__proxy/stats        {requests, media_requests, matched_requests, bytes_down,
                              bytes_up, faults: {kind: n}, connections, active_connections,
                              upstream_connections}
  GET  /__proxy/media-log    [{"path", "range", "cut_after"?, "status"?}] of every media
                             request in arrival order (cut_after: body bytes sent before an
                             injected cut; status: an injected 408/429/503 answer)
                             (the first 100000 since the last reset): what tests assert
                             fetch order and resume offsets on
  POST /__proxy/reset-stats  zero the counters and the media log
  GET  /__proxy/config       current settings
  POST /__proxy/config       JSON {rate, latency_ms, faults: {kind: prob}, match,
                              stall_seconds, hold, hold_from, hold_until}: each key present replaces that
                              setting (faults as a whole); keys absent are kept; pending
                              429/503 bursts clear. hold (a regex, or null): requests whose
                              target matches and whose Range starts at or past hold_from (and
                              before hold_until, when that is not null) wait, unforwarded, until
                              the hold is cleared (counted in held_requests).

Counting: requests = forwarded or fault-answered requests (not /__proxy/); media_requests =
targets with alt=media or under /download/; matched_requests = targets matching the fault
regex; bytes_down = response-body bytes sent to clients; faults[kind] = faults actually
injected (every 429/503 response of a burst counts; content-range counts only responses that
had a Content-Range to rewrite).

Example:
  scripts/linkproxy.py --listen 127.0.0.1:0 --upstream http://127.0.0.1:4443 \
      --rate 100MB --latency-ms 30 --fault reset=0.05 --fault 503=0.01 --seed 1
First stdout line: "LISTENING 127.0.0.1:PORT". Runs until SIGTERM/SIGINT. Python 3 stdlib.
"""

import argparse
import errno
import fcntl
import json
import os
import random
import re
import select
import signal
import socket
import urllib.parse
import struct
import sys
import threading
import time
from urllib.parse import urlsplit

FAULT_KINDS = ("reset", "truncate", "stall", "429", "503", "408", "content-range", "slow-first-byte")
BURST_FOLLOWERS = 2
SLOW_FIRST_BYTE_S = 2.0
RECV_SIZE = 1 << 20
PEEK_SIZE = 64 << 10
MAX_HEAD = 1 << 20
UNKNOWN_LEN_CUT_RANGE = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
HAVE_SPLICE = hasattr(os, "splice") and sys.platform.startswith("linux")
MEDIA_LOG_MAX = 100000
MEDIA_RE = re.compile(r"([?&]alt=media(&|$))|^/download/")


class Drop(Exception):
    """The client connection must be closed now (peer gone, protocol error, injected fault)."""


def parse_rate(text):
    """'0', '1500000', '100MB', '100M', '1.5GB', '64KiB', '100MB/s' -> bytes per second."""
    if isinstance(text, (int, float)):
        v = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        if s.endswith("/s"):
            s = s[:-2]
        m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)([kmgt]?)(i?)(b?)", s)
        if not m:
            raise ValueError("bad rate %r (examples: 0, 1500000, 100MB, 64KiB)" % text)
        num, unit, binary, _ = m.groups()
        power = " kmgt".index(unit) if unit else 0
        v = float(num) * ((1024 if binary else 1000) ** power)
    if v < 0:
        raise ValueError("rate must be >= 0")
    return v


def parse_faults(items):
    faults = {}
    for item in items:
        if "=" not in item:
            raise ValueError("bad --fault %r (want KIND=PROB)" % item)
        kind, prob = item.split("=", 1)
        faults[kind.strip()] = float(prob)
    return check_faults(faults)


def check_faults(faults):
    out = {}
    for kind, prob in dict(faults).items():
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError("unknown fault kind %r (kinds: %s)" % (kind, ", ".join(FAULT_KINDS)))
        prob = float(prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError("fault probability for %s must be in [0, 1], got %r" % (kind, prob))
        if prob > 0:
            out[kind] = prob
    if sum(out.values()) > 1.0 + 1e-9:
        raise ValueError("fault probabilities add up to more than 1")
    return out


class Config:
    """Immutable snapshot of the shaping/fault settings; replaced as a whole."""

    def __init__(self, rate, latency_ms, faults, match, stall_seconds, hold=None, hold_from=0, hold_until=None):
        self.rate = float(rate)
        self.latency_ms = float(latency_ms)
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        self.faults = check_faults(faults)
        self.match = str(match)
        self.match_re = re.compile(self.match)
        self.stall_seconds = float(stall_seconds)
        if self.stall_seconds < 0:
            raise ValueError("stall_seconds must be >= 0")
        self.hold = None if hold is None else str(hold)
        self.hold_re = None if hold is None else re.compile(self.hold)
        self.hold_from = int(hold_from)
        self.hold_until = None if hold_until is None else int(hold_until)
        # token-bucket slice: ~4 ms of data, 16 KiB .. 1 MiB (smaller slices cost CPU: 3 syscalls + a sleep each)
        self.slice = int(min(RECV_SIZE, max(16 << 10, self.rate * 0.004))) if self.rate > 0 else RECV_SIZE
        self.burst = self.slice

    def to_json(self):
        return {"rate": self.rate, "latency_ms": self.latency_ms, "faults": dict(self.faults),
                "match": self.match, "stall_seconds": self.stall_seconds,
                "hold": self.hold, "hold_from": self.hold_from, "hold_until": self.hold_until}

    def updated(self, d):
        if not isinstance(d, dict):
            raise ValueError("config body must be a JSON object")
        unknown = set(d) - {"rate", "latency_ms", "faults", "match", "stall_seconds", "hold", "hold_from", "hold_until"}
        if unknown:
            raise ValueError("unknown config keys: %s" % ", ".join(sorted(unknown)))
        faults = d.get("faults", self.faults)
        if faults is None:
            faults = {}
        if not isinstance(faults, dict):
            raise ValueError("faults must be an object {kind: probability}")
        return Config(parse_rate(d["rate"]) if "rate" in d else self.rate,
                      d.get("latency_ms", self.latency_ms), faults,
                      d.get("match", self.match), d.get("stall_seconds", self.stall_seconds),
                      d.get("hold", self.hold), d.get("hold_from", self.hold_from), d.get("hold_until", self.hold_until))


class Proxy:
    def __init__(self, upstream_host, upstream_port, config, seed, use_splice, verbose):
        self.upstream = (upstream_host, upstream_port)
        self.config = config
        self.seed = seed
        self.lock = threading.Lock()
        self.use_splice = use_splice
        self.verbose = verbose
        self.bursts = {}  # kind -> remaining follower responses
        self.active = set()
        self.stopping = threading.Event()
        self.reset_stats()

    def reset_stats(self):
        with self.lock:
            self.requests = 0
            self.media_requests = 0
            self.matched_requests = 0
            self.held_requests = 0
            self.bytes_down = 0
            self.bytes_up = 0
            self.faults = {k: 0 for k in FAULT_KINDS}
            self.connections = 0
            self.upstream_connections = 0
            self.media_log = []

    def stats(self):
        with self.lock:
            return {"requests": self.requests, "media_requests": self.media_requests,
                    "matched_requests": self.matched_requests, "held_requests": self.held_requests,
                    "bytes_down": self.bytes_down,
                    "bytes_up": self.bytes_up, "faults": dict(self.faults),
                    "connections": self.connections, "active_connections": len(self.active),
                    "upstream_connections": self.upstream_connections}

    def count(self, field, n=1):
        with self.lock:
            setattr(self, field, getattr(self, field) + n)

    def count_fault(self, kind):
        with self.lock:
            self.faults[kind] += 1

    def connection_rng(self, index):
        """One generator per connection, seeded from --seed and the connection's index: with a
        seed, the faults each connection sees repeat run after run, whatever order the threads
        run in (one shared generator handed numbers out in thread order)."""
        return random.Random("%d:%d" % (self.seed, index)) if self.seed is not None else random.Random()

    def set_config(self, cfg):
        with self.lock:
            self.config = cfg
            self.bursts = {}

    def choose_fault(self, cfg, rng):
        """At most one fault kind for a matching request (or None)."""
        with self.lock:
            for kind in ("429", "503"):
                if self.bursts.get(kind, 0) > 0:
                    self.bursts[kind] -= 1
                    return kind
        if not cfg.faults:
            return None
        r = rng.random()
        acc = 0.0
        for kind in FAULT_KINDS:
            p = cfg.faults.get(kind, 0.0)
            if p <= 0:
                continue
            acc += p
            if r < acc:
                if kind in ("429", "503"):
                    with self.lock:
                        self.bursts[kind] = BURST_FOLLOWERS
                return kind
        return None

    def log(self, msg):
        if self.verbose:
            sys.stderr.write("linkproxy: %s\n" % msg)
            sys.stderr.flush()


class Reader:
    """Buffered reads from a socket; leaves body bytes in the kernel when it can (peek)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _recv(self, n, flags=0):
        try:
            return self.sock.recv(n, flags)
        except (ConnectionError, OSError) as e:
            raise Drop("recv: %s" % e)

    def read_head(self, allow_eof=False):
        """Bytes up to and including CRLFCRLF; None on clean EOF before any byte if allow_eof."""
        scanned = 0
        while True:
            i = self.buf.find(b"\r\n\r\n", max(0, scanned - 3))
            if i >= 0:
                head = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return head
            scanned = len(self.buf)
            if len(self.buf) > MAX_HEAD:
                raise Drop("header block too large")
            peek = self._recv(PEEK_SIZE, socket.MSG_PEEK)
            if not peek:
                if allow_eof and not self.buf:
                    return None
                raise Drop("EOF inside header block")
            joined = self.buf[-3:] + peek if self.buf else peek
            j = joined.find(b"\r\n\r\n")
            if j >= 0:
                want = j + 4 - (len(joined) - len(peek))
            else:
                want = len(peek)
            while want > 0:
                got = self._recv(want)
                if not got:
                    raise Drop("EOF inside header block")
                self.buf += got
                want -= len(got)

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > 65536:
                raise Drop("line too long")
            got = self._recv(PEEK_SIZE)
            if not got:
                raise Drop("EOF inside chunked framing")
            self.buf += got


def parse_head(head):
    lines = head[:-4].split(b"\r\n")
    start = lines[0].decode("latin-1")
    headers = []
    for ln in lines[1:]:
        if not ln:
            continue
        if b":" not in ln:
            raise Drop("bad header line %r" % ln[:80])
        k, v = ln.split(b":", 1)
        headers.append((k.strip().decode("latin-1"), v.strip().decode("latin-1")))
    return start, headers


def range_start(headers):
    """The first byte a request's Range header asks for (0 without one)."""
    m = re.match(r"\s*bytes\s*=\s*(\d+)-", header(headers, "range") or "")
    return int(m.group(1)) if m else 0


def header(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def conn_tokens(headers):
    toks = set()
    for k, v in headers:
        if k.lower() == "connection":
            toks.update(t.strip().lower() for t in v.split(","))
    return toks


def body_framing(headers):
    """('chunked', None) | ('length', n) | (None, None)."""
    te = header(headers, "transfer-encoding")
    if te is not None and "chunked" in te.lower():
        return "chunked", None
    cl = header(headers, "content-length")
    if cl is not None:
        vals = {v.strip() for v in cl.split(",")}
        if len(vals) != 1 or not next(iter(vals)).isdigit():
            raise Drop("bad Content-Length %r" % cl)
        return "length", int(next(iter(vals)))
    return None, None


def build_head(start, headers):
    out = [start]
    out.extend("%s: %s" % (k, v) for k, v in headers)
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


class Cut(Exception):
    """The cut point of a reset/truncate/stall fault was reached."""


class Conn:
    """One client connection (and its one upstream connection)."""

    def __init__(self, proxy, csock, addr, index):
        self.p = proxy
        self.rng = proxy.connection_rng(index)
        self.c = csock
        self.addr = addr
        self.cr = Reader(csock)
        self.u = None
        self.ur = None
        self.buf = bytearray(RECV_SIZE)
        self.pipe = None
        self.tb_t = None  # token bucket: virtual time at which sent bytes are paid for

    # ---- plumbing -------------------------------------------------------------------

    def send_client(self, data):
        try:
            self.c.sendall(data)
        except (ConnectionError, OSError) as e:
            raise Drop("send to client: %s" % e)

    def connect_upstream(self):
        self.close_upstream()
        try:
            s = socket.create_connection(self.p.upstream, timeout=10)
        except OSError as e:
            return "cannot connect to upstream %s:%d: %s" % (self.p.upstream + (e,))
        s.settimeout(None)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.u = s
        self.ur = Reader(s)
        self.p.count("upstream_connections")
        return None

    def close_upstream(self):
        if self.u is not None:
            try:
                self.u.close()
            except OSError:
                pass
        self.u = None
        self.ur = None

    def get_pipe(self):
        if self.pipe is None:
            r, w = os.pipe()
            try:
                fcntl.fcntl(w, F_SETPIPE_SZ, RECV_SIZE)
            except OSError:
                pass
            self.pipe = (r, w)
        return self.pipe

    def pace(self, n, cfg):
        """Token bucket per connection: block until n more bytes may go out."""
        rate = self.p.config.rate  # live: a config change applies mid-body
        if rate <= 0:
            self.tb_t = None
            return
        now = time.monotonic()
        t = self.tb_t
        floor = now - cfg.burst / rate
        if t is None or t < floor:
            t = floor
        t += n / rate
        self.tb_t = t
        if t > now:
            time.sleep(t - now)

    def pump(self, src_reader, dst, n, down, limit=None):
        """Move n bytes (n None = until EOF) from src_reader to socket dst.

        down: True = response body (paced, counted in bytes_down), False = request body
        (counted in bytes_up), None = not link traffic (not counted).
        limit: send at most this many bytes, then raise Cut. Returns bytes moved; raises
        Drop on a peer error or a premature EOF of a sized body.
        """
        moved = 0
        cfg = self.p.config
        while n is None or moved < n:
            want = RECV_SIZE if n is None else n - moved
            if limit is not None:
                if moved >= limit:
                    raise Cut()
                want = min(want, limit - moved)
            if down and self.p.config.rate > 0:
                cfg = self.p.config
                want = min(want, cfg.slice)
            if src_reader.buf:
                k = min(want, len(src_reader.buf))
                chunk = bytes(src_reader.buf[:k])
                del src_reader.buf[:k]
                if down:
                    self.pace(k, cfg)
                self._send(dst, chunk, down)
                moved += k
                continue
            if self.p.use_splice and not isinstance(dst, _Sink):
                k = self._splice(src_reader.sock, dst, want, down, cfg)
            else:
                k = self._copy(src_reader.sock, dst, want, down, cfg)
            if k == 0:
                if n is None:
                    return moved
                raise Drop("peer EOF after %d of %d body bytes" % (moved, n))
            moved += k
        return moved

    def _send(self, dst, data, down):
        try:
            dst.sendall(data)
        except (ConnectionError, OSError) as e:
            raise Drop("send: %s" % e)
        if down is not None:
            self.p.count("bytes_down" if down else "bytes_up", len(data))

    def _copy(self, src, dst, want, down, cfg):
        try:
            k = src.recv_into(self.buf, min(want, RECV_SIZE))
        except (ConnectionError, OSError) as e:
            raise Drop("recv: %s" % e)
        if k == 0:
            return 0
        if down:
            self.pace(k, cfg)
        self._send(dst, memoryview(self.buf)[:k], down)
        return k

    def _splice(self, src, dst, want, down, cfg):
        r, w = self.get_pipe()
        try:
            k = os.splice(src.fileno(), w, min(want, RECV_SIZE), flags=os.SPLICE_F_MOVE)
        except OSError as e:
            raise Drop("splice in: %s" % e)
        if k == 0:
            return 0
        if down:
            self.pace(k, cfg)
        left = k
        try:
            while left:
                left -= os.splice(r, dst.fileno(), left, flags=os.SPLICE_F_MOVE)
        except OSError as e:
            # bytes left in the pipe: this connection is finished either way
            raise Drop("splice out: %s" % e)
        if down is not None:
            self.p.count("bytes_down" if down else "bytes_up", k)
        return k

    def pump_chunked(self, src_reader, dst, down, limit=None):
        """Forward a chunked body verbatim (framing included); limit counts raw bytes."""
        sent = 0

        def fwd_bytes(data):
            nonlocal sent
            if limit is not None and sent + len(data) > limit:
                part = data[:max(0, limit - sent)]
                if part:
                    self._send(dst, part, down)
                raise Cut()
            self._send(dst, data, down)
            sent += len(data)

        while True:
            line = src_reader.readline()
            fwd_bytes(line)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise Drop("bad chunk size line %r" % line[:80])
            if size == 0:
                while True:  # trailers up to the empty line
                    t = src_reader.readline()
                    fwd_bytes(t)
                    if t in (b"\r\n", b"\n"):
                        return
            sub_limit = None if limit is None else max(0, limit - sent)
            sent += self.pump(src_reader, dst, size, down, sub_limit)
            fwd_bytes(src_reader.readline())  # CRLF after the data

    def wait_while_held(self, target, headers):
        """A request matching the `hold` regex whose range starts at or past `hold_from` waits
        (not forwarded) until the hold is cleared or changed: a test lets bytes through in an
        order of its choosing."""
        held = False
        while True:
            cfg = self.p.config
            start = range_start(headers)
            if cfg.hold_re is None or not cfg.hold_re.search(target) or start < cfg.hold_from \
                    or (cfg.hold_until is not None and start >= cfg.hold_until):
                break
            if not held:
                held = True
                with self.p.lock:
                    self.p.held_requests += 1
            time.sleep(0.01)

    def discard_request_body(self, framing, length):
        sink = _Sink()
        if framing == "length" and length:
            self.pump(self.cr, sink, length, False)
        elif framing == "chunked":
            self.pump_chunked(self.cr, sink, False)

    # ---- requests -------------------------------------------------------------------

    def run(self):
        try:
            while not self.p.stopping.is_set():
                if not self.handle_one():
                    break
        except Drop as e:
            self.p.log("%s:%d dropped: %s" % (self.addr[0], self.addr[1], e))
        except Exception as e:  # never kill the process for one connection
            self.p.log("%s:%d error: %r" % (self.addr[0], self.addr[1], e))
        finally:
            self.close()

    def close(self, rst=False):
        self.close_upstream()
        if self.pipe is not None:
            for fd in self.pipe:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.pipe = None
        if self.c is not None:
            try:
                if rst:
                    self.c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.c.close()
            except OSError:
                pass
            with self.p.lock:
                self.p.active.discard(self.c)
            self.c = None

    def simple_response(self, status, reason, obj, keep_alive, head_only=False, extra=(), count=True):
        body = (json.dumps(obj, indent=None) + "\n").encode()
        hdrs = [("Content-Type", "application/json; charset=UTF-8"),
                ("Content-Length", str(len(body)))]
        hdrs.extend(extra)
        if not keep_alive:
            hdrs.append(("Connection", "close"))
        self.send_client(build_head("HTTP/1.1 %d %s" % (status, reason), hdrs))
        if not head_only:
            self.send_client(body)
            if count:
                self.p.count("bytes_down", len(body))

    def handle_one(self):
        """Serve one request; False when the client connection must close."""
        head = self.cr.read_head(allow_eof=True)
        if head is None:
            return False
        t0 = time.monotonic()
        start, headers = parse_head(head)
        parts = start.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self.simple_response(400, "Bad Request", {"error": "bad request line"}, False)
            return False
        method, target, version = parts
        if target.startswith("http://") or target.startswith("https://"):
            sp = urlsplit(target)  # absolute-form (client configured us as a proxy)
            target = (sp.path or "/") + ("?" + sp.query if sp.query else "")
        req_framing, req_len = body_framing(headers)
        has_body = req_framing == "chunked" or (req_len or 0) > 0
        toks = conn_tokens(headers)
        client_close = "close" in toks or (version == "HTTP/1.0" and "keep-alive" not in toks)
        expect = header(headers, "expect")
        if expect is not None and expect.lower() == "100-continue" and has_body:
            headers = [(k, v) for k, v in headers if k.lower() != "expect"]
            self.send_client(b"HTTP/1.1 100 Continue\r\n\r\n")

        if target.startswith("/__proxy/"):
            return self.control(method, target, req_framing, req_len, client_close)

        cfg = self.p.config
        log_entry = {}  # this request's media-log entry, if it has one
        matched = bool(cfg.match_re.search(target))
        with self.p.lock:
            self.p.requests += 1
            if MEDIA_RE.search(target):
                self.p.media_requests += 1
                if len(self.p.media_log) < MEDIA_LOG_MAX:
                    log_entry = {"path": urllib.parse.unquote(target.split("?", 1)[0]), "range": header(headers, "range")}
                    self.p.media_log.append(log_entry)
            if matched:
                self.p.matched_requests += 1
        fault = self.p.choose_fault(cfg, self.rng) if matched else None
        head_only = method == "HEAD"

        delay = cfg.latency_ms / 1000.0
        if fault == "slow-first-byte":
            delay += SLOW_FIRST_BYTE_S
            self.p.count_fault(fault)

        if fault in ("429", "503", "408"):
            self.discard_request_body(req_framing, req_len)
            self.p.count_fault(fault)
            with self.p.lock:
                log_entry["status"] = int(fault)
            self.p.log("%s %s -> injected %s" % (method, target, fault))
            self.sleep_until(t0 + delay)
            if fault == "408":
                err = {"error": {"code": 408, "message": "injected by linkproxy: request timeout",
                                 "errors": [{"message": "injected by linkproxy: request timeout",
                                             "domain": "global", "reason": "requestTimeout"}]}}
                self.simple_response(408, "Request Timeout", err, not client_close, head_only)
            elif fault == "429":
                err = {"error": {"code": 429, "message": "injected by linkproxy: rate limit exceeded",
                                 "errors": [{"message": "injected by linkproxy: rate limit exceeded",
                                             "domain": "usageLimits", "reason": "rateLimitExceeded"}]}}
                self.simple_response(429, "Too Many Requests", err, not client_close, head_only)
            else:
                err = {"error": {"code": 503, "message": "injected by linkproxy: backend error",
                                 "errors": [{"message": "injected by linkproxy: backend error",
                                             "domain": "global", "reason": "backendError"}]}}
                self.simple_response(503, "Service Unavailable", err, not client_close, head_only)
            return not client_close

        self.wait_while_held(target, headers)

        # forward the request
        out_head = build_head("%s %s %s" % (method, target, version), headers)
        reused = self.u is not None
        err = None if reused else self.connect_upstream()
        if err is None:
            try:
                self.u.sendall(out_head)
            except OSError as e:
                err = str(e)
                if reused and not has_body:
                    err = self.connect_upstream()
                    if err is None:
                        try:
                            self.u.sendall(out_head)
                        except OSError as e2:
                            err = str(e2)
        if err is not None:
            self.discard_request_body(req_framing, req_len)
            self.close_upstream()
            self.simple_response(502, "Bad Gateway", {"error": {"code": 502, "message": err}}, False, head_only)
            return False
        if req_framing == "length" and req_len:
            self.pump(self.cr, self.u, req_len, False)
        elif req_framing == "chunked":
            self.pump_chunked(self.cr, self.u, False)

        # response head(s)
        while True:
            try:
                rhead = self.ur.read_head(allow_eof=True)
            except Drop as e:
                rhead, why = None, str(e)
            else:
                why = "upstream closed without a response"
            if rhead is None:
                if reused and not has_body and self.connect_upstream() is None:
                    reused = False
                    try:
                        self.u.sendall(out_head)
                        continue
                    except OSError:
                        pass
                self.close_upstream()
                self.simple_response(502, "Bad Gateway", {"error": {"code": 502, "message": why}}, False, head_only)
                return False
            rstart, rheaders = parse_head(rhead)
            rparts = rstart.split(" ", 2)
            try:
                status = int(rparts[1])
            except (IndexError, ValueError):
                raise Drop("bad upstream status line %r" % rstart)
            if 100 <= status < 200 and status != 101:
                self.send_client(rhead)
                continue
            break

        rtoks = conn_tokens(rheaders)
        upstream_close = "close" in rtoks or (rparts[0] == "HTTP/1.0" and "keep-alive" not in rtoks)
        if head_only or status in (204, 304) or 100 <= status < 200:
            framing, length = "length", 0
        else:
            framing, length = body_framing(rheaders)
            if framing is None:
                framing, length = "eof", None
                upstream_close = True

        if fault == "content-range":
            new = self.rewrite_content_range(rheaders)
            if new is not None:
                rheaders = new
                rhead = build_head(rstart, rheaders)
                self.p.count_fault(fault)
            fault = None

        limit = None
        if fault in ("reset", "truncate", "stall") and not head_only:
            if framing == "length":
                limit = self.rng.randrange(0, length) if length > 0 else 0
            else:
                limit = self.rng.randrange(0, UNKNOWN_LEN_CUT_RANGE)

        self.sleep_until(t0 + delay)
        self.send_client(rhead)
        try:
            if framing == "length":
                if length:
                    self.pump(self.ur, self.c, length, True, limit)
                if limit is not None:
                    raise Cut()
            elif framing == "chunked":
                self.pump_chunked(self.ur, self.c, True, limit)
            else:
                self.pump(self.ur, self.c, None, True, limit)
        except Cut:
            self.p.count_fault(fault)
            with self.p.lock:
                log_entry["cut_after"] = limit  # body bytes sent before the cut
            self.p.log("%s %s -> injected %s after %d body bytes" % (method, target, fault, limit))
            self.inject_cut(fault)
            return False
        if self.p.verbose:
            self.p.log("%s %s -> %d" % (method, target, status))
        if upstream_close:
            self.close_upstream()
        return not (upstream_close or client_close)

    def rewrite_content_range(self, rheaders):
        for idx, (k, v) in enumerate(rheaders):
            if k.lower() != "content-range":
                continue
            m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", v)
            if not m:
                return None
            a, b = int(m.group(1)), int(m.group(2))
            total = m.group(3)
            tot = int(total) if total != "*" else None
            lo = -a
            hi = (tot - 1 - b) if tot is not None else 1 << 30
            choices = hi - lo  # nonzero shifts in [lo, hi]
            if choices >= 1:
                d = self.rng.randrange(lo, hi)  # [lo, hi-1]; map 0 -> hi
                if d == 0:
                    d = hi
            else:
                d = 1  # the range is the whole object: claim one byte past the end
            new = list(rheaders)
            new[idx] = (k, "bytes %d-%d/%s" % (a + d, b + d, total))
            self.p.log("content-range %s -> %s" % (v, new[idx][1]))
            return new
        return None

    def inject_cut(self, fault):
        self.close_upstream()
        if fault == "reset":
            self.close(rst=True)
            return
        if fault == "stall":
            secs = self.p.config.stall_seconds
            end = time.monotonic() + secs
            while not self.p.stopping.is_set():
                left = end - time.monotonic()
                if left <= 0:
                    break
                try:
                    r, _, _ = select.select([self.c], [], [], min(left, 0.5))
                except (OSError, ValueError):
                    break
                if r:
                    try:
                        if not self.c.recv(65536):
                            break  # client gave up
                    except OSError:
                        break
        try:
            self.c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.close()

    def sleep_until(self, t):
        d = t - time.monotonic()
        if d > 0:
            self.p.stopping.wait(d)

    # ---- control --------------------------------------------------------------------

    def control(self, method, target, framing, length, client_close):
        body = b""
        if framing == "length" and length:
            if length > (1 << 20):
                raise Drop("control body too large")
            sink = _Sink()
            self.pump(self.cr, sink, length, None)
            body = bytes(sink.data)
        elif framing == "chunked":
            sink = _Sink()
            self.pump_chunked(self.cr, sink, None)
            body = bytes(sink.data)
        path = target.split("?", 1)[0]
        ka = not client_close
        def reply(status, reason, obj, head_only=False):
            self.simple_response(status, reason, obj, ka, head_only, count=False)

        if path == "/__proxy/stats" and method in ("GET", "HEAD"):
            reply(200, "OK", self.p.stats(), method == "HEAD")
        elif path == "/__proxy/media-log" and method in ("GET", "HEAD"):
            with self.p.lock:
                log = list(self.p.media_log)
            reply(200, "OK", log, method == "HEAD")
        elif path == "/__proxy/reset-stats" and method == "POST":
            self.p.reset_stats()
            reply(200, "OK", self.p.stats())
        elif path == "/__proxy/config" and method in ("GET", "HEAD"):
            reply(200, "OK", self.p.config.to_json(), method == "HEAD")
        elif path == "/__proxy/config" and method in ("POST", "PUT"):
            try:
                d = json.loads(body.decode("utf-8") or "{}")
                cfg = self.p.config.updated(d)
            except (ValueError, re.error) as e:
                reply(400, "Bad Request", {"error": str(e)})
                return ka
            self.p.set_config(cfg)
            self.p.log("config: %s" % json.dumps(cfg.to_json()))
            reply(200, "OK", cfg.to_json())
        else:
            reply(404, "Not Found", {"error": "unknown control endpoint %s %s" % (method, path)})
        return ka


class _Sink:
    """A fake socket that collects bytes (request bodies that are not forwarded)."""

    def __init__(self):
        self.data = bytearray()

    def sendall(self, b):
        self.data += b

    def fileno(self):
        raise OSError(errno.EBADF, "sink has no fd")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 = pick a free one)")
    ap.add_argument("--upstream", required=True, help="http://HOST:PORT of the emulator")
    ap.add_argument("--rate", default="0", help="per-connection download cap, bytes/s (0 = none; 100MB = 100e6, 64KiB)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="added before each response's headers")
    ap.add_argument("--fault", action="append", default=[], metavar="KIND=PROB",
                    help="repeatable; kinds: " + ", ".join(FAULT_KINDS))
    ap.add_argument("--fault-match", default="alt=media", help="regex on the request target that faults apply to")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--stall-seconds", type=float, default=30.0)
    ap.add_argument("--port-file", help="write the chosen port here")
    ap.add_argument("--no-splice", action="store_true", help="copy through user space instead of splice(2)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log each request to stderr")
    args = ap.parse_args()

    try:
        up = urlsplit(args.upstream)
        if up.scheme != "http" or not up.hostname or not up.port:
            raise ValueError("--upstream must look like http://127.0.0.1:PORT")
        if up.path not in ("", "/"):
            raise ValueError("--upstream must have no path")
        cfg = Config(parse_rate(args.rate), args.latency_ms, parse_faults(args.fault),
                     args.fault_match, args.stall_seconds)
        host, _, port = args.listen.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("--listen must be HOST:PORT")
    except (ValueError, re.error) as e:
        ap.error(str(e))

    proxy = Proxy(up.hostname, up.port, cfg, args.seed, HAVE_SPLICE and not args.no_splice, args.verbose)

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        ls.bind((host, int(port)))
    except OSError as e:
        sys.exit("linkproxy: cannot listen on %s: %s" % (args.listen, e))
    ls.listen(512)
    ls.settimeout(0.2)
    lhost, lport = ls.getsockname()[:2]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % lport)
        os.replace(tmp, args.port_file)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sys.stdout.write("LISTENING %s:%d\n" % (lhost, lport))
    sys.stdout.flush()
    sys.stderr.write("linkproxy: %s:%d -> %s (rate %s B/s, latency %s ms, faults %s, match %r, splice %s)\n"
                     % (lhost, lport, args.upstream, cfg.rate, cfg.latency_ms, cfg.faults or "none",
                        cfg.match, proxy.use_splice))
    sys.stderr.flush()

    while not stop.is_set():
        try:
            cs, addr = ls.accept()
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        except OSError as e:
            if stop.is_set():
                break
            sys.stderr.write("linkproxy: accept: %s\n" % e)
            time.sleep(0.05)
            continue
        cs.settimeout(None)
        cs.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with proxy.lock:
            proxy.connections += 1
            proxy.active.add(cs)
            index = proxy.connections
        t = threading.Thread(target=Conn(proxy, cs, addr, index).run, daemon=True)
        t.start()

    proxy.stopping.set()
    ls.close()
    with proxy.lock:
        socks = list(proxy.active)
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    sys.stderr.write("linkproxy: stopped; stats %s\n" % json.dumps(proxy.stats()))
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
