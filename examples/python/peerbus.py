#!/usr/bin/env python3
"""peerbus.py: a standard-library-only Python peer of the peerbus wire protocol (docs/protocol.md).

A compatible peer in one file, meant to be read next to docs/protocol.md: it joins the bus's
UDP multicast group, announces itself with heartbeats, publishes "msg" frames with its own id and
sequence numbers, delivers every sender's messages in order and without duplicates, NACKs gaps
and repairs the NACKs addressed to it from a retransmit window, and says goodbye on close.

As a module:

    import peerbus
    bus = peerbus.Bus(name="py-tool")
    bus.subscribe("file.*", lambda m: print(m.topic, m.data))
    bus.publish("file.saved", {"path": "/tmp/a.txt"})
    bus.close()

As a command (same output as `peerbus sub`: one JSON line per message):

    python3 peerbus.py pub TOPIC JSON [--url URL] [--count N] [--wait-subscribers N]
    python3 peerbus.py sub PATTERN... [--url URL] [--count N] [--timeout S]
    python3 peerbus.py peers [--url URL] [--wait S]
    python3 peerbus.py call TARGET METHOD [JSON] [--timeout S]   # prints the result
    python3 peerbus.py serve METHOD                               # answers with the params

Calls (docs/protocol.md 5.6): bus.handle("open", fn) answers calls to "open" with fn(params);
bus.call("editor", "open", {"path": "/tmp/a"}, timeout=5) calls the one live peer with that name
or id and returns its result (LookupError, TimeoutError, CallError otherwise). No glob targets,
no deferred replies, no early failure when the callee leaves (it times out).

Exit codes as the peerbus CLI: 0 ok, 1 runtime error, 2 usage, 3 timed out.

What this example leaves out (see docs/protocol.md "Implementing a minimal peer"): sealed
datagrams (dropped), and
some decoder bounds the C++ decoder enforces (it checks nesting depth and number length, the
rest it leaves to Python's json module).
"""

import argparse
import errno
import json
import math
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time

# --- protocol constants (src/wire/limits.hpp) --------------------------------------------------

VERSION = 1
DEFAULT_URL = "udpm://239.255.80.66:7780?ttl=0&iface=127.0.0.1"
MAX_DATAGRAM = 65507
MAX_TOPIC = 255
MAX_NAME = 64
MAX_HOST = 255
MAX_METHOD = 128
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 64
MAX_HEARTBEAT_SUBS = 32
MAX_HEARTBEAT_SUB_BYTES = 4096
MAX_NACK_RANGES = 64
MAX_FRAMES_PER_DATAGRAM = 4096
SEALED_MAGIC = b"PBS1"

# Timers and bounds (src/reliability/config.hpp, include/peerbus/options.hpp), in seconds.
HEARTBEAT_INTERVAL = 1.0
EXPIRY_MISSES = 3
MIN_EXPIRY, MAX_EXPIRY = 0.1, 60.0
WELCOME_DELAY = (0.001, 0.030)
TAIL_ADVERT_DELAY = 0.020
NACK_DELAY = (0.001, 0.010)
NACK_RETRY, NACK_BACKOFF, NACK_RETRY_MAX, NACK_MAX_TRIES = 0.030, 2.0, 0.050, 60
REPAIR_HOLDOFF = 0.010
MAX_REPAIRS_PER_NACK = 2048
WINDOW_MESSAGES, WINDOW_BYTES = 16384, 32 << 20
MAX_REORDER = 65536
MAX_ADVANCE = 1 << 22
CLOSE_ADVERT_EVERY = 0.100
# Flow control, receiver side (docs/protocol.md 8.9): report progress every this many in-order
# frames or bytes (or a quarter of our rwin, if less) from an established sender (announced, 16
# frames or more), and answer an advert's "ask" at most this often unless "have" moved.
FLOW_REPORT_FRAMES, FLOW_REPORT_BYTES, FLOW_ANSWER_EVERY = 8192, 4 << 20, 0.002
ESTABLISHED_FRAMES = 16
MAX_DRAIN_TIME = 0.020  # the receive loop reads for at most this long before running its timers
CLOSE_QUIET_IDLE, CLOSE_QUIET_REPAIRING, CLOSE_LINGER_MAX = 0.100, 0.100 + 10 * NACK_RETRY_MAX, 3.0

SEQUENCED = ("msg", "call", "reply")
DROP_REASONS = ("malformed", "wrong_version", "bad_field", "oversized", "unknown_type",
                "unauthenticated", "implausible", "peer_table_full", "injected", "replayed")


def now_us():
    return time.time_ns() // 1000


# --- grammar: names, topics, patterns, ids ------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
_METHOD_RE = re.compile(r"[A-Za-z0-9._/:-]{1,128}\Z")
_HEX16_RE = re.compile(r"[0-9A-Fa-f]{16}\Z")
# One topic segment: printable ASCII 0x21..0x7e except '"', '\', '*', '>' and '.'.
_SEGMENT_RE = re.compile(r"[\x21\x23-\x29\x2b-\x2d\x2f-\x3d\x3f-\x5b\x5d-\x7e]+\Z")


def valid_name(s):
    return bool(_NAME_RE.match(s))


def valid_method(s):
    return bool(_METHOD_RE.match(s))


def _valid_segments(s, wildcards):
    if not s or len(s) > MAX_TOPIC:
        return False
    segs = s.split(".")
    for i, seg in enumerate(segs):
        if wildcards and (seg == "*" or (seg == ">" and i == len(segs) - 1)):
            continue
        if not _SEGMENT_RE.match(seg):
            return False
    return True


def valid_topic(s):
    """1..255 bytes of '.'-separated non-empty segments; no wildcard, quote or backslash."""
    return _valid_segments(s, False)


def valid_pattern(s):
    """As a topic, but a segment may be '*' and the last one may be '>'."""
    return _valid_segments(s, True)


def topic_matches(pattern, topic):
    """NATS-style: '*' matches exactly one segment, a last '>' one or more remaining ones."""
    p = pattern.split(".")
    t = topic.split(".")
    for i, seg in enumerate(p):
        if seg == ">" and i == len(p) - 1:
            return len(t) > i
        if i >= len(t):
            return False
        if seg != "*" and seg != t[i]:
            return False
    return len(t) == len(p)


def format_id(i):
    return "%016x" % i


def random_id():
    while True:
        i = random.SystemRandom().getrandbits(64)
        if i:
            return i


# --- bus URLs -----------------------------------------------------------------------------------

class Url:
    """udpm://GROUP:PORT?ttl=N&iface=ADDRESS&rcvbuf=BYTES; missing parts take the defaults."""

    def __init__(self, text=None):
        text = text or os.environ.get("PEERBUS_URL") or DEFAULT_URL
        self.group, self.port, self.ttl, self.iface, self.rcvbuf = "239.255.80.66", 7780, 0, "127.0.0.1", 8 << 20
        if not text.startswith("udpm://"):
            raise ValueError("bad bus URL %r: it must start with udpm://" % text)
        rest, _, query = text[len("udpm://"):].partition("?")
        host, colon, port = rest.rpartition(":")
        if not colon:
            host, port = rest, ""
        if port:
            self.port = int(port)
            if not 1 <= self.port <= 65535:
                raise ValueError("bad bus URL %r: port out of range 1..65535" % text)
        if host:
            first = int(socket.inet_aton(host)[0])
            if not 224 <= first <= 239:
                raise ValueError("bad bus URL %r: %s is not a multicast group" % (text, host))
            self.group = host
        for kv in filter(None, query.split("&")):
            key, eq, val = kv.partition("=")
            if not eq:
                raise ValueError("bad bus URL %r: parameter %r has no value" % (text, kv))
            if key == "ttl":
                self.ttl = int(val)
                if not 0 <= self.ttl <= 255:
                    raise ValueError("bad bus URL %r: ttl out of range 0..255" % text)
            elif key == "iface":
                socket.inet_aton(val)
                self.iface = val
            elif key == "rcvbuf":
                self.rcvbuf = int(val)
            else:
                raise ValueError("bad bus URL %r: unknown parameter %r (known: ttl, iface, rcvbuf)"
                                 % (text, key))

    def __str__(self):
        return "udpm://%s:%d?ttl=%d&iface=%s" % (self.group, self.port, self.ttl, self.iface)


# --- JSON: validation the way the C++ decoder does it -------------------------------------------

class _Refused(ValueError):
    pass


def _parse_int(s):
    if len(s) > MAX_NUMBER_CHARS:
        raise _Refused("number too long")
    return int(s)


def _parse_float(s):
    if len(s) > MAX_NUMBER_CHARS:
        raise _Refused("number too long")
    f = float(s)
    if not math.isfinite(f):
        raise _Refused("number out of range")
    return f


def _parse_constant(s):
    raise _Refused("%s is not JSON" % s)


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float,
                            parse_constant=_parse_constant)
_WS = " \t\r\n"


def _skip_ws(s, i):
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


def json_depth(text):
    """Deepest nesting of objects and arrays in valid JSON text (strings skipped)."""
    if text.count("{") + text.count("[") < MAX_DEPTH:
        return 0  # cannot be too deep: skip the scan
    depth = deepest = 0
    in_str = esc = False
    for c in text:
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "}]":
            depth -= 1
    return deepest


def valid_json(text, max_depth=MAX_DEPTH - 1):
    """Is `text` exactly one JSON value the C++ peers accept (finite numbers, bounded depth)?"""
    try:
        i = _skip_ws(text, 0)
        _, end = _DECODER.raw_decode(text, i)
        if _skip_ws(text, end) != len(text):
            return False
    except (ValueError, RecursionError):
        return False
    return json_depth(text) <= max_depth


# --- frames: decode -----------------------------------------------------------------------------

class Drop(Exception):
    """A frame (or datagram) that is not used; `reason` is one of DROP_REASONS."""

    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_REQUIRED = {
    "msg": ("seq", "topic", "data"),
    "hb": ("seq", "name"),
    "bye": (),
    "nack": ("to", "ranges"),
    "adv": ("seq",),
    "call": ("seq", "to", "method", "cid"),
    "reply": ("seq", "to", "cid"),
}
_U64 = (1 << 64) - 1
_I64 = (-(1 << 63), (1 << 63) - 1)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def decode_frame(text, has_body=False):
    """Decodes one frame (str, no newline) into a dict; raises Drop with the C++ decoder's verdict.

    The dict holds the known fields as parsed values, plus "_raw_data" (the payload's JSON text
    exactly as it travelled) and "_frame" (the whole frame's text). Unknown fields are ignored.
    """
    field_error = None
    version_error = None

    def bad(reason, detail):
        nonlocal field_error
        if field_error is None:
            field_error = Drop(reason, detail)

    env = {"_frame": text}
    seen = set()
    if json_depth(text) > MAX_DEPTH:  # the envelope counts as one level
        raise Drop("malformed", "JSON nested too deep")
    try:
        i = _skip_ws(text, 0)
        if i >= len(text) or text[i] != "{":
            raise Drop("malformed", "frame is not a JSON object")
        i = _skip_ws(text, i + 1)
        if i < len(text) and text[i] == "}":
            i += 1
        else:
            while True:
                i = _skip_ws(text, i)
                if i >= len(text) or text[i] != '"':
                    raise Drop("malformed", "expected a string")
                key, kend = _DECODER.raw_decode(text, i)
                key_escaped = "\\" in text[i:kend]
                i = _skip_ws(text, kend)
                if i >= len(text) or text[i] != ":":
                    raise Drop("malformed", "expected ':'")
                vstart = _skip_ws(text, i + 1)
                value, i = _DECODER.raw_decode(text, vstart)
                raw = text[vstart:i]
                escaped = "\\" in raw
                k = None if key_escaped else key
                if k in seen:
                    bad("bad_field", "duplicate field")
                if k in _KNOWN:
                    seen.add(k)
                    _check_field(k, value, raw, escaped, env, bad)
                    if k == "v" and not (_is_int(value) and value >= 0 and raw[0].isdigit()):
                        version_error = Drop("wrong_version", "field 'v' is not a version number")
                i = _skip_ws(text, i)
                if i < len(text) and text[i] == "}":
                    i += 1
                    break
                if i >= len(text) or text[i] != ",":
                    raise Drop("malformed", "expected ',' or '}'")
                i += 1
        if _skip_ws(text, i) != len(text):
            raise Drop("malformed", "trailing characters after the envelope")
    except Drop:
        raise
    except RecursionError:
        raise Drop("malformed", "JSON nested too deep")
    except ValueError as e:
        raise Drop("malformed", str(e))

    if "v" not in seen:
        raise Drop("bad_field", "missing field 'v'")
    if version_error:
        raise version_error
    if env.get("v") != VERSION:
        raise Drop("wrong_version", "unsupported protocol version")
    if "type" not in seen:
        raise Drop("bad_field", "missing field 'type'")
    if field_error:
        raise field_error
    if env.get("type") not in _REQUIRED:
        raise Drop("unknown_type", "unknown frame type")
    if "from" not in seen:
        raise Drop("bad_field", "missing field 'from'")
    for f in _REQUIRED[env["type"]]:
        if f not in seen and not (has_body and f == "data"):
            raise Drop("bad_field", "missing field '%s'" % f)
    if has_body:
        # Binary payloads and fragments of large messages: this peer takes their seq (so the
        # stream has no gap) but delivers nothing (docs/protocol.md section 15).
        if env["type"] != "msg":
            raise Drop("bad_field", "only a msg may have a body")
        if "data" in seen:
            raise Drop("bad_field", "a msg with a body has no 'data'")
        env["_body"] = True
    if env["type"] in SEQUENCED and env["seq"] == 0:
        raise Drop("bad_field", "seq must start at 1")
    if env["type"] == "reply" and "_raw_data" not in env and env.get("error") is None:
        raise Drop("bad_field", "reply has neither data nor error")
    return env


def _check_field(k, value, raw, escaped, env, bad):
    if k == "v":
        env["v"] = value
    elif k == "type":
        if isinstance(value, str) and not escaped:
            env["type"] = value
        else:
            bad("bad_field", "field 'type' is not a plain string")
    elif k in ("from", "to"):
        if isinstance(value, str) and not escaped and _HEX16_RE.match(value):
            env[k] = int(value, 16)
        else:
            bad("bad_field", "peer id is not 16 hex digits")
    elif k in ("name", "topic", "method", "host"):
        limit, check = {"name": (MAX_NAME, valid_name), "topic": (MAX_TOPIC, valid_topic),
                        "method": (MAX_METHOD, valid_method), "host": (MAX_HOST, None)}[k]
        if not isinstance(value, str):
            bad("bad_field", "field '%s' is not a string" % k)
        elif len(raw) - 2 > limit:  # the limit counts the string's bytes as written
            bad("oversized", "%s too long" % k)
        elif check and (escaped or not check(value)):
            bad("bad_field", "field '%s' is not valid" % k)
        else:
            env[k] = value
    elif k in ("seq", "lo", "ivl", "cid"):
        if _is_int(value) and 0 <= value <= _U64:
            env[k] = value
        else:
            bad("bad_field", "a sequence/counter field is not a non-negative integer")
    elif k in ("ts", "pid", "start"):
        if _is_int(value) and _I64[0] <= value <= _I64[1]:
            env[k] = value
        else:
            bad("bad_field", "a time/pid field is not an integer")
    elif k in ("trunc", "ask", "fc"):
        if isinstance(value, bool):
            env[k] = value
        else:
            bad("bad_field", "a flag field (trunc, ask, fc) is not a boolean")
    elif k in ("have", "rwin"):
        if _is_int(value) and 0 <= value <= _U64 and raw[0].isdigit():
            env[k] = value
        else:
            bad("bad_field", "field '%s' is not a non-negative integer" % k)
    elif k == "data":
        env["data"] = value
        env["_raw_data"] = raw
    elif k == "error":
        if isinstance(value, dict):
            env["error"] = value
        elif value is not None:
            bad("bad_field", "field 'error' is not an object")
    elif k == "subs":
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            bad("bad_field", "field 'subs' is not an array of strings")
            return
        if any("\\" in p or not valid_pattern(p) for p in value) or "\\" in raw:
            bad("bad_field", "subs holds an invalid pattern")
        if len(value) > MAX_HEARTBEAT_SUBS:
            bad("oversized", "too many subscriptions in heartbeat")
        if len(raw) > MAX_HEARTBEAT_SUB_BYTES:
            bad("oversized", "subscriptions too long")
        env["subs"] = value
    elif k == "ranges":
        ok = isinstance(value, list) and all(
            isinstance(r, list) and len(r) == 2 and _is_int(r[0]) and _is_int(r[1])
            and 0 <= r[0] <= _U64 and 0 <= r[1] <= _U64 for r in value)
        if not ok:
            bad("bad_field", "field 'ranges' is not an array of [first,last]")
            return
        if any(r[0] == 0 or r[0] > r[1] for r in value):
            bad("bad_field", "NACK range is empty or starts at 0")
        if len(value) > MAX_NACK_RANGES:
            bad("oversized", "too many NACK ranges")
        env["ranges"] = [tuple(r) for r in value[:MAX_NACK_RANGES]]


_KNOWN = frozenset(("v", "type", "from", "name", "seq", "lo", "ts", "topic", "data", "host", "pid",
                    "start", "ivl", "subs", "trunc", "to", "ranges", "method", "cid", "error",
                    "have", "ask", "fc", "rwin"))


def _body_line(data, tilde):
    """(start, n) of the body whose "~N" line starts at `tilde`, or None when the line is broken."""
    nl = data.find(b"\n", tilde + 1)
    digits = data[tilde + 1:nl] if nl >= 0 else b""
    if (data[tilde:tilde + 1] != b"~" or not digits or len(digits) > 5 or not digits.isdigit()
            or (len(digits) > 1 and digits[:1] == b"0") or int(digits) > MAX_DATAGRAM):
        return None
    return nl + 1, int(digits)


def _frame_end(data, pos):
    """Where the frame at `pos` ends: at its newline, or after its body (a "~N" line and N bytes)."""
    if pos >= len(data) or data[pos:pos + 1] == b"\n":
        return pos
    tilde = pos
    if data[pos:pos + 1] != b"~":
        nl = data.find(b"\n", pos)
        if nl < 0:
            return len(data)
        if data[nl + 1:nl + 2] != b"~":
            return nl
        tilde = nl + 1
    body = _body_line(data, tilde)
    if body is None or body[0] + body[1] > len(data):
        return len(data)
    return body[0] + body[1]


def split_datagram(data):
    """The frames of a datagram (bytes), each with its body if it has one. Raises Drop when the
    datagram as a whole is unusable."""
    if not data:
        raise Drop("malformed", "empty datagram")
    if len(data) > MAX_DATAGRAM:
        raise Drop("oversized", "datagram too large")
    if data.startswith(SEALED_MAGIC):
        raise Drop("unauthenticated", "sealed datagram on an open bus")
    frames, pos = [], 0
    while pos < len(data):
        end = _frame_end(data, pos)
        if end > pos:
            frames.append(data[pos:end])
            pos = end
        else:
            pos = end + 1
    if not frames:
        raise Drop("malformed", "datagram holds no frame")
    if len(frames) > MAX_FRAMES_PER_DATAGRAM:
        raise Drop("oversized", "too many frames in one datagram")
    return frames


def split_body(frame):
    """(JSON text, body bytes or None) of one frame; raises Drop when its body line is broken."""
    if frame[:1] == b"~":
        raise Drop("malformed", "a body without a frame before it")
    nl = frame.find(b"\n")
    if nl < 0 or frame[nl + 1:nl + 2] != b"~":
        return frame, None
    body = _body_line(frame, nl + 1)
    if body is None or body[0] + body[1] != len(frame):
        raise Drop("malformed", "bad body line (expected ~LENGTH and that many bytes)")
    return frame[:nl], frame[body[0]:]


# --- frames: encode -----------------------------------------------------------------------------

def encode_frame(ftype, sender, fields):
    """One frame as bytes: {"v":1,"type":..,"from":..} then `fields` in order.

    `fields` is a list of (key, value); a value that is a RawJson is written as is, anything
    else with json.dumps (compact). Names, topics and patterns never need escaping.
    """
    parts = ['{"v":1,"type":"', ftype, '","from":"', format_id(sender), '"']
    for key, value in fields:
        parts.append(',"%s":' % key)
        parts.append(value.text if isinstance(value, RawJson)
                     else json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    parts.append("}")
    return "".join(parts).encode("utf-8")


class RawJson:
    """JSON text inserted into a frame unchanged (a payload as the user gave it)."""

    def __init__(self, text):
        self.text = text


# --- messages, peers ----------------------------------------------------------------------------

class Message:
    """One delivered message. `data` is parsed; `data_json` is the payload's text as it travelled."""

    def __init__(self, env):
        self.topic = env["topic"]
        self.sender = env["from"]
        self.sender_name = env.get("name", "")
        self.seq = env["seq"]
        self.ts = env.get("ts", 0)
        self.data = env["data"]
        self.data_json = env["_raw_data"]

    def json_line(self):
        """The line `peerbus sub` prints for this message (without the newline)."""
        return ('{"topic":%s,"name":"%s","from":"%s","seq":%d,"ts":%d,"data":%s}'
                % (json.dumps(self.topic), self.sender_name, format_id(self.sender), self.seq,
                   self.ts, self.data_json))


class Peer:
    def __init__(self, env, now):
        self.id = env["from"]
        self.first_seen = now
        self.update(env, now)

    def update(self, env, now):
        self.name = env["name"]
        self.host = env.get("host", "")
        self.pid = env.get("pid", 0)
        self.start = env.get("start", 0)
        self.ivl = env.get("ivl", 0) or int(HEARTBEAT_INTERVAL * 1000)
        self.subs = list(env.get("subs", []))
        self.trunc = env.get("trunc", False)
        self.highest_seq = max(getattr(self, "highest_seq", 0), env.get("seq", 0))
        self.heard(now)

    def heard(self, now):
        window = min(max(EXPIRY_MISSES * self.ivl / 1000.0, MIN_EXPIRY), MAX_EXPIRY)
        self.last_heard = now
        self.expires_at = max(getattr(self, "expires_at", 0.0), now + window)

    def as_json(self):
        return json.dumps({"name": self.name, "id": format_id(self.id), "pid": self.pid,
                           "host": self.host, "subscriptions": self.subs,
                           "subscriptions_truncated": self.trunc,
                           "highest_seq": self.highest_seq}, separators=(",", ":"))


# --- receive side: one sender's stream ----------------------------------------------------------

class Stream:
    """In-order, exactly-once delivery of one sender's sequenced frames, with NACK timing.

    A simpler shape than the C++ core (one NACK timer per stream rather than per gap) with the
    same wire behaviour: the first NACK of a gap after a random 1-10 ms, repeats after 30 ms
    doubling to a cap of 50 ms, and after 60 unanswered NACKs the oldest missing seqs are reported lost
    and delivery moves on.
    """

    def __init__(self, first_seq, name=""):
        self.name = name
        self.next = max(first_seq, 1)  # next seq to deliver
        self.highest = self.next - 1   # highest seq known to exist (heard or advertised)
        self.buffer = {}               # seq -> env, received ahead of a gap
        self.lost_below = 0            # missing seqs below this are lost (sender's lowest held)
        self.nack_at = None            # when to NACK next (monotonic); None: nothing missing
        self.tries = 0                 # NACKs sent since delivery last moved on
        self.interval = NACK_RETRY     # wait after the next NACK
        self.received = 0              # frames that arrived (established after 16)
        self.reported_have = 0         # "have" of our last progress report (8.9)
        self.reported_at = -1e9        # when we sent it (monotonic)
        self.unreported_bytes = 0      # frame bytes since then

    def missing(self, limit=MAX_NACK_RANGES):
        """Missing ranges (first, last) from next to highest, oldest first, at most `limit`."""
        out = []
        s = self.next
        while s <= self.highest and len(out) < limit:
            if s in self.buffer:
                s += 1
                continue
            first = s
            while s <= self.highest and s not in self.buffer:
                s += 1
            out.append((first, s - 1))
        return out

    def _arm(self, now):
        """Something new is missing at the front: NACK it after a fresh random delay."""
        at = now + random.uniform(*NACK_DELAY)
        self.nack_at = at if self.nack_at is None else min(self.nack_at, at)
        self.tries = 0
        self.interval = NACK_RETRY

    def offer(self, env, now):
        """A sequenced frame arrived; returns the ready items: ("frame", env) or ("loss", a, b)."""
        seq = env["seq"]
        if seq < self.next or seq in self.buffer:
            return []  # duplicate
        if seq > self.highest and seq - self.highest > MAX_ADVANCE:
            return []  # implausible: never NACK a forged jump
        if env.get("name"):
            self.name = env["name"]
        if seq > self.highest + 1 and self.nack_at is None:
            self._arm(now)
        self.highest = max(self.highest, seq)
        self.buffer[seq] = env
        if len(self.buffer) > MAX_REORDER:
            self.lost_below = max(self.lost_below, min(self.buffer))  # memory bound: give up
        return self.drain(now)

    def advert(self, highest, lowest, now):
        """A heartbeat or advert: highest seq sent, lowest still held (0: none)."""
        if highest > self.highest and highest - self.highest > MAX_ADVANCE:
            return []
        if lowest and lowest > highest:
            return []
        if highest > self.highest:
            self.highest = highest  # tail loss: NACK what we never heard
            if self.nack_at is None:
                self._arm(now)
        self.lost_below = max(self.lost_below, lowest)
        return self.drain(now)

    def foreign_nack(self, ranges, now):
        """Another receiver NACKed the same sender: its repair will serve us, hold ours back."""
        if self.nack_at is None:
            return
        for first, last in ranges:
            if first <= self.highest and last >= self.next and self.nack_at < now + self.interval:
                self.nack_at = now + self.interval
                return

    def due(self, now):
        """If the NACK timer fired: (ranges to NACK now, ready items after a give-up)."""
        if self.nack_at is None or now < self.nack_at:
            return [], []
        if self.tries >= NACK_MAX_TRIES:
            # Nobody answered: everything missing before the first buffered frame is lost.
            self.lost_below = max(self.lost_below,
                                  min(self.buffer) if self.buffer else self.highest + 1)
            self.nack_at = None
            return [], self.drain(now)
        ranges = self.missing()
        if not ranges:
            self.nack_at = None
            return [], []
        self.tries += 1
        self.nack_at = now + self.interval
        self.interval = min(self.interval * NACK_BACKOFF, NACK_RETRY_MAX)
        return ranges, []

    def drain(self, now, finish=False):
        """Pops whatever is ready, in order. finish: the sender left, everything missing is lost."""
        out = []
        moved = False
        while self.next <= self.highest:
            if self.next in self.buffer:
                out.append(("frame", self.buffer.pop(self.next)))
                self.next += 1
                moved = True
                continue
            limit = self.highest + 1 if finish else self.lost_below
            if self.next >= limit:
                break
            stop = min(min(self.buffer) if self.buffer else self.highest + 1, limit)
            out.append(("loss", self.next, stop - 1))
            self.next = stop
            moved = True
        if self.next > self.highest:
            self.nack_at = None
        elif moved or self.nack_at is None:
            self._arm(now)  # a new oldest gap: it gets its own delay and tries
        return out


# --- fault injection ----------------------------------------------------------------------------

def parse_faults(spec):
    """$PEERBUS_FAULTS, e.g. "rx=0.1,tx=0.05,seed=7": (rx rate, tx rate, seed)."""
    rx, tx, seed = 0.0, 0.0, 1
    for item in filter(None, (i.strip() for i in (spec or "").split(","))):
        key, eq, val = (x.strip() for x in item.partition("="))
        if not eq or key not in ("rx", "tx", "seed"):
            raise ValueError("fault spec item %r: expected rx=R, tx=R or seed=N" % item)
        if key == "seed":
            seed = int(val)
        else:
            rate = float(val)
            if not 0.0 <= rate <= 1.0:
                raise ValueError("fault spec item %r: rate must be between 0 and 1" % item)
            rx, tx = (rate, tx) if key == "rx" else (rx, rate)
    return rx, tx, seed


class _Faults:
    """Drops a fraction of datagrams, seeded (the same rates as the C++ peer; not its sequence)."""

    def __init__(self, rate, seed):
        self.rate = rate
        self.rng = random.Random(seed)

    def drop(self):
        return self.rate > 0 and self.rng.random() < self.rate


# --- the bus ------------------------------------------------------------------------------------

class CallError(Exception):
    """The called peer answered with an error: `code` (no_such_method, handler_failed, ...) and
    its message."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code


class Bus:
    """One peer on a bus. Handlers run on the bus's receive thread, one at a time.

    url: a bus URL (default $PEERBUS_URL, else DEFAULT_URL). name: 1..64 of [A-Za-z0-9._-].
    on_loss(sender_id, sender_name, first, last) is called for seqs that can no longer come.
    """

    def __init__(self, url=None, name="peerbus-py", heartbeat_interval=HEARTBEAT_INTERVAL,
                 on_loss=None):
        if not valid_name(name):
            raise ValueError("name %r is not valid: use 1..64 characters of [A-Za-z0-9._-]" % name)
        self.url = Url(url)
        self.name = name
        self.id = random_id()
        self.start_us = now_us()
        self.host = socket.gethostname() or "localhost"
        self.pid = os.getpid()
        self.heartbeat_interval = heartbeat_interval
        self.on_loss = on_loss
        self.drops = dict.fromkeys(DROP_REASONS, 0)
        self.stats = {"published": 0, "delivered": 0, "nacks_sent": 0, "nacks_received": 0,
                      "repairs_sent": 0, "lost": 0, "skipped_bodies": 0}
        rx, tx, seed = parse_faults(os.environ.get("PEERBUS_FAULTS"))
        self._rx_faults = _Faults(rx, seed)
        self._tx_faults = _Faults(tx, seed + 0x9E3779B97F4A7C15)

        # Send side (guarded by _send_lock): seq, retransmit window, adverts.
        self._send_lock = threading.Lock()
        self._next_seq = 1
        self._window = {}          # seq -> frame bytes, seqs consecutive from _window_lo
        self._window_lo = 1
        self._window_bytes = 0
        self._last_repair = {}     # seq -> monotonic time of its last repair
        self._advertised = 0
        self._first_sent_us = 0    # when seq 1 left: "since" in heartbeats and adverts (8.1)
        self._tail_at = None
        self._last_nack = 0.0

        # Receive side (the receive thread; peers also read under _cond).
        self._cond = threading.Condition()
        self._subs = []            # [pattern, handler]
        self._peers = {}           # id -> Peer
        self._streams = {}         # id -> Stream
        self._departed = {}        # id -> monotonic time until which its heartbeats are ignored
        self._welcome_at = None
        self._next_hb = 0.0
        self._closed = False

        # Calls (docs/protocol.md 5.6): methods this peer answers, and its calls awaiting a reply.
        self._methods = {}         # method -> handler(params) returning the result
        self._next_cid = 1
        self._pending = {}         # cid -> [target id, threading.Event, reply env or None]

        self._sock = self._open_socket()
        # Flow control (8.9): senders may be this many frame bytes ahead of what we reported: a
        # quarter of what the kernel holds for our buffer (Linux reports that, twice the size
        # set; other systems report the size set, which is what they hold).
        held = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.rwin = held // 4 if sys.platform.startswith("linux") else held // 2
        self._report_bytes = min(FLOW_REPORT_BYTES, self.rwin // 4) if self.rwin >= 4 else FLOW_REPORT_BYTES
        self._thread = threading.Thread(target=self._run, name="peerbus-rx", daemon=True)
        self._thread.start()

    # -- socket --

    def _open_socket(self):
        u = self.url
        try:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind((u.iface, 0))
            probe.close()
        except OSError:
            raise ValueError("interface %s is not on this machine; pass iface=ADDRESS in the bus URL"
                             % u.iface)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sys.platform.startswith("linux"):
            # IP_MULTICAST_ALL off: hear only the groups this socket joined.
            s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MULTICAST_ALL", 49), 0)
        s.bind(("" if sys.platform == "win32" else u.group, u.port))
        mreq = struct.pack("4s4s", socket.inet_aton(u.group), socket.inet_aton(u.iface))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(u.iface))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("B", u.ttl))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, struct.pack("B", 1))
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, u.rcvbuf)
        except OSError:
            pass
        s.setblocking(False)
        return s

    def _send(self, datagram):
        if self._tx_faults.drop():
            return
        for _ in range(1000):
            try:
                self._sock.sendto(datagram, (self.url.group, self.url.port))
                return
            except (BlockingIOError, InterruptedError):
                select.select([], [self._sock], [], 0.01)  # socket buffer full: wait for room
            except OSError as e:
                if e.errno != errno.ENOBUFS:  # the kernel is short of buffers: wait too
                    raise
                time.sleep(0.001)

    # -- public API --

    def publish(self, topic, data=None, raw=None):
        """Publishes `data` (any JSON-serialisable value) or `raw` (JSON text, sent as is)."""
        if not valid_topic(topic):
            raise ValueError("invalid topic %r" % topic)
        if raw is None:
            raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        elif not valid_json(raw):
            raise ValueError("payload is not valid JSON")
        # A raw newline can only be white space outside strings in valid JSON, but it would split
        # the frame: make it a space.
        raw = raw.strip(_WS).replace("\n", " ").replace("\r", " ")
        seq = self._send_sequenced("msg", [("topic", RawJson('"%s"' % topic)),
                                           ("data", RawJson(raw))])
        self.stats["published"] += 1
        return seq

    def _send_sequenced(self, ftype, fields):
        """Sends a msg/call/reply frame with the next seq, kept in the window for repairs."""
        with self._send_lock:
            if self._closed:
                raise RuntimeError("the bus is closed")
            seq = self._next_seq
            ts = now_us()
            frame = encode_frame(ftype, self.id, [("name", RawJson('"%s"' % self.name)),
                                                  ("seq", seq), ("ts", ts)] + fields)
            if len(frame) > MAX_DATAGRAM:
                raise ValueError("message too large for one datagram (65507 bytes)")
            self._next_seq += 1
            self._window_push(seq, frame)
            self._send(frame)
            if not self._first_sent_us:
                self._first_sent_us = ts
            if self._tail_at is None:
                self._tail_at = time.monotonic() + TAIL_ADVERT_DELAY
        return seq

    # -- calls --

    def handle(self, method, handler):
        """Answers calls to `method`: handler(params) returns the result (any JSON value) or
        raises (the caller gets code handler_failed with the exception's text). Runs on the
        receive thread."""
        if not valid_method(method):
            raise ValueError("invalid method %r" % method)
        self._methods[method] = handler

    def call(self, target, method, params=None, timeout=5.0):
        """Calls `method` on the one live peer whose id (16 hex digits) or name is `target`.
        Returns the result; raises LookupError (no such peer, or ambiguous), TimeoutError, or
        CallError (the peer answered with an error)."""
        if not valid_method(method):
            raise ValueError("invalid method %r" % method)
        peers = [p for p in self.peers() if format_id(p.id) == target or p.name == target]
        if not peers:
            raise LookupError("no live peer named %r" % target)
        if len(peers) > 1:
            raise LookupError("%r is ambiguous: %s" % (
                target, ", ".join(format_id(p.id) for p in peers)))
        to = peers[0].id
        raw = json.dumps(params, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        done = threading.Event()
        with self._cond:
            cid = self._next_cid
            self._next_cid += 1
            self._pending[cid] = [to, done, None]
        try:
            self._send_sequenced("call", [("to", RawJson('"%s"' % format_id(to))), ("cid", cid),
                                          ("method", RawJson('"%s"' % method)),
                                          ("data", RawJson(raw))])
            if not done.wait(timeout):
                raise TimeoutError("no reply from %s within %d ms" % (target, timeout * 1000))
        finally:
            with self._cond:
                reply = self._pending.pop(cid)[2]
        if reply.get("error") is not None:
            raise CallError(reply["error"].get("code", ""), reply["error"].get("message", ""))
        return reply.get("data")

    def _answer_call(self, env):
        handler = self._methods.get(env["method"])
        fields = [("to", RawJson('"%s"' % format_id(env["from"]))), ("cid", env["cid"])]
        if handler is None:
            error = {"code": "no_such_method",
                     "message": "%s has no handler for method '%s'" % (self.name, env["method"])}
        else:
            try:
                result = handler(env.get("data"))
                fields.append(("data", RawJson(json.dumps(result, separators=(",", ":"),
                                                          ensure_ascii=False, allow_nan=False))))
                error = None
            except Exception as e:  # the caller gets the handler's failure, the bus goes on
                error = {"code": "handler_failed", "message": str(e)}
        if error is not None:
            fields.append(("error", RawJson(json.dumps(error, separators=(",", ":")))))
        self._send_sequenced("reply", fields)

    def _take_reply(self, env):
        with self._cond:
            pending = self._pending.get(env["cid"])
            if pending is None or pending[0] != env["from"] or pending[2] is not None:
                return  # late, duplicate or another peer's: ignored
            pending[2] = env
            pending[1].set()

    def subscribe(self, pattern, handler):
        """Calls handler(Message) for each message whose topic matches `pattern`."""
        if not valid_pattern(pattern):
            raise ValueError("invalid topic pattern %r" % pattern)
        with self._cond:
            self._subs.append([pattern, handler])
        self._heartbeat()  # tell the bus at once: publishers may be waiting for us

    def peers(self):
        with self._cond:
            return sorted(self._peers.values(), key=lambda p: (p.name, p.first_seen, p.id))

    def wait_for_subscribers(self, topic, n=1, timeout=5.0, cancel=None):
        """Blocks until `n` live peers subscribe to a pattern matching `topic` (as their
        heartbeats say), `timeout` seconds pass, or the threading.Event `cancel` is set."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                count = sum(1 for p in self._peers.values()
                            if any(topic_matches(s, topic) for s in p.subs))
                left = deadline - time.monotonic()
                if count >= n:
                    return True
                if left <= 0 or (cancel is not None and cancel.is_set()):
                    return False
                self._cond.wait(min(left, 0.05))

    def close(self):
        """Lingers while receivers may still NACK, then says goodbye and stops."""
        if self._closed:
            return
        if self.stats["published"]:
            start = next_advert = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= next_advert:
                    with self._send_lock:
                        self._advert()
                    next_advert = now + CLOSE_ADVERT_EVERY
                quiet = CLOSE_QUIET_REPAIRING if self.stats["nacks_received"] else CLOSE_QUIET_IDLE
                if now - max(start, self._last_nack) >= quiet or now - start >= CLOSE_LINGER_MAX:
                    break
                time.sleep(0.005)
        with self._send_lock:
            self._send(encode_frame("bye", self.id, [("name", RawJson('"%s"' % self.name)),
                                                     ("seq", self._next_seq - 1)]))
            self._closed = True
        self._thread.join()
        self._sock.close()

    def stats_json(self):
        """Counters as one JSON object (as `--stats` prints them)."""
        return json.dumps(dict(self.stats, dropped=self.drops), separators=(",", ":"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- send side --

    def _window_push(self, seq, frame):
        self._window[seq] = frame
        self._window_bytes += len(frame)
        while len(self._window) > WINDOW_MESSAGES or self._window_bytes > WINDOW_BYTES:
            old = self._window.pop(self._window_lo)
            self._window_bytes -= len(old)
            self._last_repair.pop(self._window_lo, None)
            self._window_lo += 1

    def _lowest_held(self):
        return self._window_lo if self._window else 0

    def _advert(self):
        hi = self._next_seq - 1
        self._advertised = hi
        since = [("since", self._first_sent_us)] if self._first_sent_us else []
        self._send(encode_frame("adv", self.id, [("seq", hi), ("lo", self._lowest_held())] + since))

    def _heartbeat(self):
        with self._cond:
            pats, size, trunc = [], 0, False
            for p, _ in self._subs:
                if p in pats:
                    continue
                if len(pats) >= MAX_HEARTBEAT_SUBS or size + len(p) + 3 > MAX_HEARTBEAT_SUB_BYTES - 64:
                    trunc = True
                    break
                size += len(p) + 3
                pats.append(p)
        subs = RawJson("[" + ",".join('"%s"' % p for p in pats) + "]")
        with self._send_lock:
            if self._closed:
                return
            hi = self._next_seq - 1
            self._advertised = hi
            since = [("since", self._first_sent_us)] if self._first_sent_us else []
            self._send(encode_frame("hb", self.id, [
                ("name", RawJson('"%s"' % self.name)), ("seq", hi), ("lo", self._lowest_held()),
                ("host", self.host), ("pid", self.pid), ("start", self.start_us)] + since + [
                ("ivl", int(self.heartbeat_interval * 1000)), ("subs", subs), ("trunc", trunc),
                ("ts", now_us()), ("fc", True), ("rwin", self.rwin)]))

    def _answer_nack(self, env, now):
        self.stats["nacks_received"] += len(env["ranges"])
        self._last_nack = now
        with self._send_lock:
            budget = MAX_REPAIRS_PER_NACK
            unavailable = False
            batch = b""
            hi = self._next_seq - 1
            lo = self._lowest_held()
            for first, last in env["ranges"]:
                last = min(last, hi)
                if first < lo or lo == 0:
                    if first <= min(last, lo - 1 if lo else last):
                        unavailable = True
                    if lo == 0:
                        continue
                    first = max(first, lo)
                s = first
                while s <= last and budget > 0:
                    frame = self._window.get(s)
                    if frame is not None and now - self._last_repair.get(s, -1e9) >= REPAIR_HOLDOFF:
                        self._last_repair[s] = now
                        if batch and len(batch) + 1 + len(frame) > MAX_DATAGRAM:
                            self._send(batch)
                            batch = b""
                        batch = batch + b"\n" + frame if batch else frame
                        self.stats["repairs_sent"] += 1
                    s += 1
                    budget -= 1
            if batch:
                self._send(batch)
            if unavailable:
                self._advert()  # "I no longer hold those": receivers report the loss at once

    # -- receive side --

    def _run(self):
        while not self._closed:
            now = time.monotonic()
            timeout = max(0.0, min(self._timers(now) - now, 0.05))
            try:
                readable, _, _ = select.select([self._sock], [], [], timeout)
            except (OSError, ValueError):
                return
            if readable:
                # Bounded by count and time, so timers run during a flood: heartbeats (a sender
                # waiting for our progress takes us for gone without them), NACKs, adverts.
                until = time.monotonic() + MAX_DRAIN_TIME
                for _ in range(256):
                    if time.monotonic() >= until:
                        break
                    try:
                        data = self._sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        return
                    self._on_datagram(data, time.monotonic())

    def _timers(self, now):
        """Runs what is due; returns when to wake next."""
        if now >= self._next_hb:
            self._heartbeat()
            self._next_hb = now + self.heartbeat_interval
        if self._welcome_at is not None and now >= self._welcome_at:
            self._welcome_at = None
            self._heartbeat()
        with self._send_lock:
            if self._tail_at is not None and now >= self._tail_at:
                self._tail_at = None
                if self._next_seq - 1 != self._advertised:
                    self._advert()
        wake = min(self._next_hb, self._welcome_at or self._next_hb, self._tail_at or self._next_hb)
        for sender, st in list(self._streams.items()):
            if st.nack_at is not None and now >= st.nack_at:
                ranges, ready = st.due(now)
                if ranges:
                    self._send(encode_frame("nack", self.id, [("to", format_id(sender)),
                                                              ("ranges", [list(r) for r in ranges]),
                                                              ("have", st.next - 1)]))
                    self.stats["nacks_sent"] += len(ranges)
                self._dispatch(sender, ready)
            if st.nack_at is not None:
                wake = min(wake, st.nack_at)
        expired = []
        with self._cond:
            for pid_, p in list(self._peers.items()):
                if p.expires_at <= now:
                    expired.append(pid_)
                    del self._peers[pid_]
            if expired:
                self._cond.notify_all()
        for pid_ in expired:
            self._streams.pop(pid_, None)
        return wake

    def _on_datagram(self, data, now):
        if self._rx_faults.drop():
            self.drops["injected"] += 1
            return
        try:
            frames = split_datagram(data)
        except Drop as d:
            self.drops[d.reason] += 1
            return
        for raw in frames:
            try:
                header, body = split_body(raw)
                env = decode_frame(header.decode("utf-8"), body is not None)
            except UnicodeDecodeError:
                self.drops["malformed"] += 1
                continue
            except Drop as d:
                self.drops[d.reason] += 1
                continue
            env["_size"] = len(raw)  # the whole frame's bytes, body included (flow control)
            self._on_frame(env, now)

    def _stream(self, env, now):
        st = self._streams.get(env["from"])
        if st is None:
            # A late joiner starts at the first sequenced frame it hears, or after the highest
            # seq a heartbeat/advert announces.
            first = env["seq"] if env["type"] in SEQUENCED else env.get("seq", 0) + 1
            st = self._streams[env["from"]] = Stream(first, env.get("name", ""))
        return st

    def _on_frame(self, env, now):
        t, sender = env["type"], env["from"]
        if sender == self.id:
            return  # our own frames come back through the multicast loop
        if t in SEQUENCED:
            with self._cond:
                announced = sender in self._peers
                if announced:
                    self._peers[sender].heard(now)
            st = self._stream(env, now)
            st.received += 1
            self._dispatch(sender, st.offer(env, now))
            st.unreported_bytes += env["_size"]
            if (announced and st.received >= ESTABLISHED_FRAMES
                    and (st.next - 1 - st.reported_have >= FLOW_REPORT_FRAMES
                         or st.unreported_bytes >= self._report_bytes)):
                self._report_progress(sender, st, now)
        elif t == "hb":
            with self._cond:
                until = self._departed.get(sender)
                if until is not None and now < until:
                    return  # a heartbeat reordered behind its goodbye
                p = self._peers.get(sender)
                if p is None:
                    self._peers[sender] = Peer(env, now)
                    if self._welcome_at is None:
                        self._welcome_at = now + random.uniform(*WELCOME_DELAY)
                else:
                    p.update(env, now)
                self._cond.notify_all()
            self._dispatch(sender, self._stream(env, now).advert(env["seq"], env.get("lo", 0), now))
        elif t == "adv":
            with self._cond:
                announced = sender in self._peers
                if announced:
                    self._peers[sender].heard(now)
            st = self._stream(env, now)
            self._dispatch(sender, st.advert(env["seq"], env.get("lo", 0), now))
            if env.get("ask") and announced and (
                    st.next - 1 != st.reported_have or now - st.reported_at >= FLOW_ANSWER_EVERY):
                self._report_progress(sender, st, now)
        elif t == "bye":
            with self._cond:
                p = self._peers.pop(sender, None)
                if p is not None:
                    self._departed[sender] = now + min(max(EXPIRY_MISSES * p.ivl / 1000.0, MIN_EXPIRY), MAX_EXPIRY)
                self._cond.notify_all()
            st = self._streams.get(sender)
            if st is not None:
                # The sender is gone: what we still miss can no longer come. Report it lost,
                # in order, after delivering what we hold.
                st.highest = max(st.highest, env.get("seq", 0))
                self._dispatch(sender, st.drain(now, finish=True))
                del self._streams[sender]
        elif t == "nack":
            if env["to"] == self.id:
                self._answer_nack(env, now)
            else:
                st = self._streams.get(env["to"])
                if st is not None:
                    st.foreign_nack(env["ranges"], now)

    def _report_progress(self, sender, st, now):
        """Flow control (docs/protocol.md 8.9): a NACK that asks for nothing and says how far we
        got with this sender's stream, so that it does not evict from its window what we lack."""
        st.reported_have = st.next - 1
        st.reported_at = now
        st.unreported_bytes = 0
        self._send(encode_frame("nack", self.id, [("to", format_id(sender)), ("ranges", RawJson("[]")),
                                                  ("have", st.reported_have)]))

    def _dispatch(self, sender, items):
        for item in items:
            if item[0] == "loss":
                self.stats["lost"] += item[2] - item[1] + 1
                if self.on_loss:
                    st = self._streams.get(sender)
                    self.on_loss(sender, st.name if st else "", item[1], item[2])
                continue
            env = item[1]
            if env["type"] == "call":
                if env["to"] == self.id:
                    self._answer_call(env)
                continue
            if env["type"] == "reply":
                if env["to"] == self.id:
                    self._take_reply(env)
                continue
            if env.get("_body"):
                self.stats["skipped_bodies"] += 1
                continue
            msg = Message(env)
            for pattern, handler in list(self._subs):
                if topic_matches(pattern, msg.topic):
                    self.stats["delivered"] += 1
                    try:
                        handler(msg)
                    except Exception as e:  # a handler's bug must not stop the bus
                        print("peerbus.py: handler for %r raised %r" % (pattern, e), file=sys.stderr)


# --- command line -------------------------------------------------------------------------------

# Set by SIGINT/SIGTERM. A flag polled by the loops rather than an exception, so that the bus is
# always closed through close() (goodbye included) wherever the signal lands.
_stop = threading.Event()


def _on_signal(signum, frame):
    _stop.set()


def _cmd_pub(a):
    payloads = [a.json] if a.json is not None else [l for l in sys.stdin.read().splitlines() if l.strip(_WS)]
    for p in payloads:
        if not valid_json(p):
            print("peerbus.py pub: payload is not valid JSON: %s" % p, file=sys.stderr)
            return 2
    if not valid_topic(a.topic):
        print("peerbus.py pub: invalid topic %r" % a.topic, file=sys.stderr)
        return 2
    with Bus(a.url, a.name or "peerbus-py-pub") as bus:
        if a.wait_subscribers and not bus.wait_for_subscribers(
                a.topic, a.wait_subscribers, a.wait_timeout, cancel=_stop):
            if _stop.is_set():
                return 0
            print("peerbus.py pub: fewer than %d subscriber(s) to '%s' after %g s"
                  % (a.wait_subscribers, a.topic, a.wait_timeout), file=sys.stderr)
            return 3
        for p in payloads:
            for _ in range(a.count):
                if _stop.is_set():
                    break
                bus.publish(a.topic, raw=p)
    if a.stats:
        print(bus.stats_json(), file=sys.stderr)
    return 0


def _cmd_sub(a):
    patterns = a.pattern or [">"]
    for p in patterns:
        if not valid_pattern(p):
            print("peerbus.py sub: invalid topic pattern %r" % p, file=sys.stderr)
            return 2
    cond = threading.Condition()
    state = {"n": 0, "last": time.monotonic()}
    out = sys.stdout

    def on_message(m):
        with cond:
            if a.count and state["n"] >= a.count:
                return
            out.write(m.json_line() + "\n")
            out.flush()
            state["n"] += 1
            state["last"] = time.monotonic()
            cond.notify_all()

    def on_loss(sender, name, first, last):
        print(json.dumps({"lost": last - first + 1, "from": format_id(sender), "name": name,
                          "first": first, "last": last}, separators=(",", ":")), file=sys.stderr)

    rc = 0
    with Bus(a.url, a.name or "peerbus-py-sub", on_loss=on_loss) as bus:
        for p in patterns:
            bus.subscribe(p, on_message)
        with cond:
            while not (a.count and state["n"] >= a.count) and not _stop.is_set():
                if a.timeout and time.monotonic() - state["last"] >= a.timeout:
                    if a.count:
                        print("peerbus.py sub: timed out after %g s without a message (%d of %d "
                              "received)" % (a.timeout, state["n"], a.count), file=sys.stderr)
                        rc = 3
                    break
                cond.wait(0.05)
    if a.stats:
        print(bus.stats_json(), file=sys.stderr)
    return rc


def _cmd_peers(a):
    with Bus(a.url, a.name or "peerbus-py-peers") as bus:
        _stop.wait(a.wait)  # peers answer our announce within ~30 ms
        for p in bus.peers():
            print(p.as_json())
    return 0


def _cmd_call(a):
    params = json.loads(a.json) if a.json is not None else None
    with Bus(a.url, a.name or "peerbus-py-call") as bus:
        # Peers answer our announce within ~30 ms; wait until the target is known.
        deadline = time.monotonic() + min(2.0, a.timeout)
        while not any(format_id(p.id) == a.target or p.name == a.target for p in bus.peers()):
            if time.monotonic() >= deadline or _stop.wait(0.02):
                break
        try:
            result = bus.call(a.target, a.method, params, a.timeout)
        except TimeoutError as e:
            print("peerbus.py call: %s" % e, file=sys.stderr)
            return 3
        except (LookupError, CallError) as e:
            print("peerbus.py call: %s" % e, file=sys.stderr)
            return 1
        print(json.dumps(result, separators=(",", ":"), ensure_ascii=False))
    return 0


def _cmd_serve(a):
    # Answers METHOD with its params (an echo): enough to show the other side of a call.
    with Bus(a.url, a.name or "peerbus-py-serve") as bus:
        bus.handle(a.method, lambda params: params)
        print("serving %s" % a.method, flush=True)
        _stop.wait()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="peerbus.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--url", help="bus URL (default: $PEERBUS_URL, else %s)" % DEFAULT_URL)
        p.add_argument("--name", help="this peer's name on the bus ([A-Za-z0-9._-], 1..64)")
        p.add_argument("--stats", action="store_true",
                       help="print the counters as JSON to stderr on exit")

    p = sub.add_parser("pub", help="publish a JSON message (argument, or one per stdin line)")
    common(p)
    p.add_argument("topic")
    p.add_argument("json", nargs="?")
    p.add_argument("-c", "--count", type=int, default=1, help="publish each message N times")
    p.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                   help="first wait until N peers subscribe to the topic")
    p.add_argument("--wait-timeout", type=float, default=5.0, metavar="S")
    p.set_defaults(run=_cmd_pub)

    p = sub.add_parser("sub", help="print matching messages, one JSON line each")
    common(p)
    p.add_argument("pattern", nargs="*")
    p.add_argument("-c", "--count", type=int, default=0, help="exit after N messages")
    p.add_argument("-t", "--timeout", type=float, default=0.0,
                   help="exit after S seconds without a message (code 3 if --count not reached)")
    p.set_defaults(run=_cmd_sub)

    p = sub.add_parser("call", help="call METHOD on one peer (id or name), print the result")
    common(p)
    p.add_argument("target")
    p.add_argument("method")
    p.add_argument("json", nargs="?")
    p.add_argument("-t", "--timeout", type=float, default=5.0)
    p.set_defaults(run=_cmd_call)

    p = sub.add_parser("serve", help="answer calls to METHOD with their params (echo)")
    common(p)
    p.add_argument("method")
    p.set_defaults(run=_cmd_serve)

    p = sub.add_parser("peers", help="list the live peers as JSON lines")
    common(p)
    p.add_argument("-w", "--wait", type=float, default=0.5)
    p.set_defaults(run=_cmd_peers)

    a = ap.parse_args(argv)
    # SIGINT and SIGTERM leave through close(), so the others see "bye" at once.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        return a.run(a)
    except ValueError as e:
        print("peerbus.py %s: %s" % (a.cmd, e), file=sys.stderr)
        return 2
    except OSError as e:
        print("peerbus.py %s: %s" % (a.cmd, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
