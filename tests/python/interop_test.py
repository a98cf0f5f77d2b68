#!/usr/bin/env python3
"""tests/python/interop_test.py: the C++ peerbus CLI and the Python peer (examples/python) interoperate.

Runs real processes on real multicast, each test on a private bus (a random group in
239.255.0.0/16 and a free port), waiting for conditions with deadlines rather than sleeping:
publishers wait with --wait-subscribers, which works because subscribers announce their patterns
in heartbeats, and output is read line by line with timeouts.

    python3 tests/python/interop_test.py --peerbus build/bin/peerbus [unittest options]
    PEERBUS_BIN=build/bin/peerbus python3 tests/python/interop_test.py -k peers

Prints "N passed, M failed" last; exits 0 only when every test passed.
"""

import argparse
import json
import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY_PEER = os.path.join(ROOT, "examples", "python", "peerbus.py")
PEERBUS = os.environ.get("PEERBUS_BIN") or os.path.join(ROOT, "build", "bin", "peerbus")

DEADLINE = 30.0  # seconds any one step may take before the test fails; runs take far less

# One of each kind of JSON value, including the awkward ones (escapes, non-ASCII, big and
# negative numbers, exponents, empty containers, deep-ish nesting). Each travels as one line.
JSON_KINDS = [
    '{"s":"text","n":1,"f":2.5,"neg":-7,"exp":1e-7,"t":true,"fa":false,"z":null,'
    '"arr":[1,"two",[3]],"obj":{"k":{}}}',
    '[1,2,3]',
    '[]',
    '{}',
    '"a plain string"',
    '"escapes: \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\u0001 \\u00e9 \\ud83d\\ude00"',
    '"unicode: \u00e9 \u00fc \u4e2d\u6587 \U0001F600"',
    '0',
    '-12345678901234567',
    '18446744073709551615',
    '3.141592653589793',
    '-0.0',
    '1E+300',
    'true',
    'false',
    'null',
    '{"deep":[[[[[[[[[[{"x":[[[[[[[[[[1]]]]]]]]]]}]]]]]]]]]]}',
    '{ "spaced" : [ 1 , 2 ] }',
]


def private_url():
    """A bus nobody else uses: a random group other than the default, and a free port."""
    while True:
        a, b = random.randint(0, 255), random.randint(1, 254)
        if (a, b) != (80, 66):
            break
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "udpm://239.255.%d.%d:%d?ttl=0&iface=127.0.0.1" % (a, b, port)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PEERBUS_URL", "PEERBUS_FAULTS")}
    env.update(extra)
    return env


def same_json(a, b):
    """Equal as JSON values, types included (1 is not 1.0, true is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return a == b


class Proc:
    """A child process whose stdout is read line by line with deadlines."""

    def __init__(self, args, stdin_text=None, env=None):
        self.args = args
        self.p = subprocess.Popen(
            args, stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or clean_env(),
            text=True, encoding="utf-8")
        self.pid = self.p.pid
        self._lines = queue.Queue()
        self._stderr = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.p.stdout, self._lines.put, True),
                             daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr, self._stderr.append, False),
                             daemon=True)]
        for t in self._pumps:
            t.start()
        if stdin_text is not None:
            self.p.stdin.write(stdin_text)
            self.p.stdin.close()

    @staticmethod
    def _pump(stream, put, mark_end):
        with stream:
            for line in stream:
                put(line.rstrip("\n"))
        if mark_end:
            put(None)  # readline() returns None at end of output rather than waiting

    def readline(self, deadline):
        """The next stdout line; None at end of output or when the deadline passes."""
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def lines(self, n, deadline):
        out = []
        while len(out) < n:
            line = self.readline(deadline)
            if line is None:
                break
            out.append(line)
        return out

    def wait(self, deadline):
        try:
            return self.p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None

    def stderr(self):
        return "\n".join(self._stderr)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for t in self._pumps:
            t.join(timeout=5)  # they close the pipes at end of output

    def describe(self):
        return "%s (rc=%s)\nstderr:\n%s" % (" ".join(self.args), self.p.poll(), self.stderr())


class InteropTest(unittest.TestCase):
    def setUp(self):
        self.url = private_url()
        self.procs = []
        self.deadline = time.monotonic() + DEADLINE

    def tearDown(self):
        for p in self.procs:
            p.stop()

    # -- helpers --

    def cpp(self, *args, stdin_text=None, env=None):
        p = Proc([PEERBUS, *args, "--url", self.url], stdin_text, env)
        self.procs.append(p)
        return p

    def py(self, *args, stdin_text=None, env=None, url_suffix=""):
        p = Proc([sys.executable, PY_PEER, *args, "--url", self.url + url_suffix], stdin_text, env)
        self.procs.append(p)
        return p

    def finished(self, proc, rc=0):
        got = proc.wait(self.deadline)
        self.assertEqual(got, rc, "unexpected exit: " + proc.describe())

    def last_json(self, text):
        """The last line of `text` that is a JSON object (a --stats line)."""
        for line in reversed(text.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        self.fail("no JSON line in:\n" + text)

    def check_messages(self, lines, topic, name, payloads, *procs):
        """Lines as `peerbus sub` prints them: one sender, seqs 1..N in order, payloads as sent."""
        if len(lines) != len(payloads):
            for p in procs:
                p.stop()  # so that their --stats and goodbyes are in the report
            self.fail("%d of %d messages arrived\n%s" % (
                len(lines), len(payloads), "\n".join(p.describe() for p in procs)))
        sender = None
        now_us = time.time() * 1e6
        for i, (line, payload) in enumerate(zip(lines, payloads)):
            m = json.loads(line)
            self.assertEqual(set(m), {"topic", "name", "from", "seq", "ts", "data"}, line)
            self.assertEqual(m["topic"], topic)
            self.assertEqual(m["name"], name)
            self.assertRegex(m["from"], r"^[0-9a-f]{16}$")
            sender = sender or m["from"]
            self.assertEqual(m["from"], sender, "one sender expected")
            self.assertEqual(m["seq"], i + 1, "out of order or duplicated at line %d" % i)
            self.assertIsInstance(m["ts"], int)
            self.assertLess(abs(m["ts"] - now_us), 120e6, "ts is not µs since the epoch")
            self.assertTrue(same_json(m["data"], json.loads(payload)),
                            "payload changed: sent %s, got %s" % (payload, line))
            # Both implementations pass the payload's text through untouched.
            self.assertTrue(line.endswith(',"data":' + payload + "}"),
                            "payload text changed: sent %s, got %s" % (payload, line))

    # -- C++ publisher, Python subscriber --

    def test_cpp_pub_to_python_sub_1000_in_order(self):
        sub = self.py("sub", "interop.bulk.>", "--count", "1000", "--timeout", "20")
        pub = self.cpp("pub", "--name", "cpp-pub", "interop.bulk.x", '{"n":1,"s":"x"}',
                       "--count", "1000", "--wait-subscribers", "1", "--wait-timeout", "20")
        lines = sub.lines(1000, self.deadline)
        self.check_messages(lines, "interop.bulk.x", "cpp-pub", ['{"n":1,"s":"x"}'] * 1000, sub, pub)
        self.finished(sub)
        self.finished(pub)

    def test_cpp_pub_to_python_sub_json_kinds(self):
        sub = self.py("sub", "interop.kinds", "--count", str(len(JSON_KINDS)), "--timeout", "20")
        pub = self.cpp("pub", "--name", "cpp-pub", "interop.kinds", "--wait-subscribers", "1",
                       "--wait-timeout", "20", stdin_text="\n".join(JSON_KINDS) + "\n")
        lines = sub.lines(len(JSON_KINDS), self.deadline)
        self.check_messages(lines, "interop.kinds", "cpp-pub", JSON_KINDS, sub, pub)
        self.finished(sub)
        self.finished(pub)

    def test_cpp_pub_to_python_sub_repairs_loss(self):
        # The Python subscriber drops 20% of what it receives: its NACKs must get repairs from
        # the C++ publisher. (A fixed seed: with some seeds the drops hit the publisher's
        # announce and first messages, and the subscriber, by the late-joiner rule, starts later.)
        sub = self.py("sub", "interop.loss", "--count", "1000", "--timeout", "20", "--stats",
                      env=clean_env(PEERBUS_FAULTS="rx=0.2,seed=1"))
        # Paced, so the messages travel in many datagrams (a publisher that is ahead batches
        # them, and a burst of 1000 fits in a few datagrams that 20% loss might all spare).
        pub = self.cpp("pub", "--name", "cpp-pub", "interop.loss", "[1]", "--count", "1000",
                       "--rate", "4000", "--wait-subscribers", "1", "--wait-timeout", "20",
                       "--stats")
        lines = sub.lines(1000, self.deadline)
        self.check_messages(lines, "interop.loss", "cpp-pub", ["[1]"] * 1000, sub, pub)
        self.finished(sub)
        self.finished(pub)
        sub_stats, pub_stats = self.last_json(sub.stderr()), self.last_json(pub.stderr())
        self.assertGreater(sub_stats["nacks_sent"], 0, sub.describe())
        self.assertGreater(pub_stats["repairs_sent"], 0, pub.describe())
        self.assertEqual(sub_stats["lost"], 0)

    def test_cpp_pub_flat_out_waits_for_a_slow_python_sub(self):
        # Flow control (protocol.md 8.9): the Python subscriber says "fc" and its receive window
        # (half its 256 KiB buffer: a quarter of what the kernel holds for it) and reports its progress,
        # so a C++ publisher running flat out waits for it instead of overflowing its socket.
        n = 30000
        sub = self.py("sub", "interop.flow", "--count", str(n), "--timeout", "20", "--stats",
                      url_suffix="&rcvbuf=262144")
        pub = self.cpp("pub", "--name", "cpp-pub", "interop.flow", "[1]", "--count", str(n),
                       "--wait-subscribers", "1", "--wait-timeout", "20", "--stats")
        lines = sub.lines(n, self.deadline)
        self.check_messages(lines, "interop.flow", "cpp-pub", ["[1]"] * n, sub, pub)
        self.finished(sub)
        self.finished(pub)
        sub_stats, pub_stats = self.last_json(sub.stderr()), self.last_json(pub.stderr())
        self.assertEqual(sub_stats["lost"], 0)
        # (flow_receivers is 0 by now: the sub said goodbye once it had its count.)
        self.assertGreater(pub_stats["flow_reports"], 0, pub.describe())
        self.assertGreater(pub_stats["flow_waits"], 0, pub.describe())
        self.assertEqual(pub_stats["flow_stalls"], 0, pub.describe())

    def test_cpp_bodies_are_skipped_by_python_sub(self):
        # Binary messages and the fragments of a large one carry bodies (protocol.md 3.1): the
        # Python peer takes their seqs (no gap, nothing lost) but delivers none of them, and a
        # frame line inside a body is never read as a frame.
        sub = self.py("sub", "interop.body.>", "--count", "1", "--timeout", "20", "--stats")
        forged = '{"v":1,"type":"msg","from":"0123456789abcdef","seq":1,"topic":"interop.body.x","data":6}'
        pub = self.cpp("pub", "interop.body.bin", "--binary", "--wait-subscribers", "1",
                       "--wait-timeout", "20", stdin_text="a\n" + forged + "\nb")
        self.finished(pub)
        pub = self.cpp("pub", "interop.body.big", "--wait-subscribers", "1", "--wait-timeout", "20",
                       stdin_text='"' + "x" * 100000 + '"\n')
        self.finished(pub)
        pub = self.cpp("pub", "--name", "cpp-pub", "interop.body.x", "[1]", "--wait-subscribers",
                       "1", "--wait-timeout", "20")
        lines = sub.lines(1, self.deadline)
        self.check_messages(lines, "interop.body.x", "cpp-pub", ["[1]"], sub, pub)
        self.finished(sub)
        self.finished(pub)
        stats = self.last_json(sub.stderr())
        self.assertGreaterEqual(stats["skipped_bodies"], 3, sub.describe())  # 1 + 2 fragments
        self.assertEqual(stats["lost"], 0, sub.describe())

    # -- Python publisher, C++ subscriber --

    def test_python_pub_to_cpp_sub_1000_in_order(self):
        sub = self.cpp("sub", "interop.bulk.>", "--count", "1000", "--timeout", "20")
        pub = self.py("pub", "--name", "py-pub", "interop.bulk.x", '{"n":1,"s":"x"}',
                      "--count", "1000", "--wait-subscribers", "1", "--wait-timeout", "20")
        lines = sub.lines(1000, self.deadline)
        self.check_messages(lines, "interop.bulk.x", "py-pub", ['{"n":1,"s":"x"}'] * 1000, sub, pub)
        self.finished(sub)
        self.finished(pub)

    def test_python_pub_to_cpp_sub_json_kinds(self):
        sub = self.cpp("sub", "interop.kinds", "--count", str(len(JSON_KINDS)), "--timeout", "20")
        pub = self.py("pub", "--name", "py-pub", "interop.kinds", "--wait-subscribers", "1",
                      "--wait-timeout", "20", stdin_text="\n".join(JSON_KINDS) + "\n")
        lines = sub.lines(len(JSON_KINDS), self.deadline)
        self.check_messages(lines, "interop.kinds", "py-pub", JSON_KINDS, sub, pub)
        self.finished(sub)
        self.finished(pub)

    def test_python_pub_to_cpp_sub_repairs_loss(self):
        # The C++ subscriber drops 20% of what it receives: the Python publisher must answer
        # its NACKs from its retransmit window.
        sub = self.cpp("sub", "interop.loss", "--count", "1000", "--timeout", "20", "--stats",
                       "--faults", "rx=0.2,seed=1")
        pub = self.py("pub", "--name", "py-pub", "interop.loss", "[1]", "--count", "1000",
                      "--wait-subscribers", "1", "--wait-timeout", "20", "--stats")
        lines = sub.lines(1000, self.deadline)
        self.check_messages(lines, "interop.loss", "py-pub", ["[1]"] * 1000, sub, pub)
        self.finished(sub)
        self.finished(pub)
        sub_stats, pub_stats = self.last_json(sub.stderr()), self.last_json(pub.stderr())
        self.assertGreater(sub_stats["nacks_sent"], 0, sub.describe())
        self.assertGreater(pub_stats["nacks_received"], 0, pub.describe())
        self.assertGreater(pub_stats["repairs_sent"], 0, pub.describe())
        self.assertEqual(sub_stats["lost"], 0)

    # -- presence --

    def test_cpp_peers_lists_python_peer(self):
        name = "py-interop-%d" % random.randint(0, 99999)
        sub = self.py("sub", "--name", name, "interop.a", "interop.b.>")
        found = None
        while found is None and time.monotonic() < self.deadline:
            peers = self.cpp("peers", "--json")
            self.finished(peers)
            for line in peers.lines(1000, self.deadline):
                p = json.loads(line)
                if p["name"] == name:
                    found = p
        self.assertIsNotNone(found, "peerbus peers never listed " + name)
        self.assertEqual(found["pid"], sub.pid)
        self.assertEqual(found["host"], socket.gethostname())
        self.assertEqual(found["subscriptions"], ["interop.a", "interop.b.>"])
        self.assertFalse(found["subscriptions_truncated"])
        self.assertRegex(found["id"], r"^[0-9a-f]{16}$")
        self.assertEqual(found["display"], name + "@" + found["id"][:4])
        self.assertEqual(found["highest_seq"], 0)

    def test_python_peers_lists_cpp_peer(self):
        sub = self.cpp("sub", "--name", "cpp-sub", "interop.c.*")
        found = None
        while found is None and time.monotonic() < self.deadline:
            peers = self.py("peers")
            self.finished(peers)
            for line in peers.lines(1000, self.deadline):
                p = json.loads(line)
                if p["name"] == "cpp-sub":
                    found = p
        self.assertIsNotNone(found, "peerbus.py peers never listed cpp-sub")
        self.assertEqual(found["pid"], sub.pid)
        self.assertEqual(found["subscriptions"], ["interop.c.*"])

    def test_python_peer_joins_and_says_goodbye(self):
        # `peers --watch` sees the Python peer join, and leave ("left", from its bye) rather than
        # expire when it is stopped with SIGTERM.
        watch = self.cpp("peers", "--watch", "--json")
        name = "py-bye-%d" % random.randint(0, 99999)
        sub = self.py("sub", "--name", name, "interop.bye")
        events = []
        while time.monotonic() < self.deadline:
            line = watch.readline(self.deadline)
            if line is None:
                break
            ev = json.loads(line)
            if ev["peer"]["name"] != name:
                continue
            events.append(ev["event"])
            if ev["event"] == "joined":
                sub.p.terminate()  # SIGTERM: the Python peer closes and says bye
            else:
                break
        self.assertEqual(events, ["joined", "left"], watch.describe())
        self.finished(sub)

    # -- calls (docs/protocol.md 5.6) in both directions --

    def test_python_calls_cpp_serve(self):
        name = "cpp-echo-%d" % random.randint(0, 99999)
        # Built by hand: the helper appends --url last, which after "--" would go to `cat`.
        srv = Proc([PEERBUS, "serve", "echo", "--name", name, "--url", self.url, "--", "cat"])
        self.procs.append(srv)
        call = self.py("call", name, "echo", '{"a":[1,"two"],"b":null}', "--timeout", "10")
        self.finished(call)
        self.assertEqual(json.loads(call.readline(self.deadline)), {"a": [1, "two"], "b": None},
                         call.describe() + "\n" + srv.describe())

    def test_cpp_calls_python_serve(self):
        name = "py-echo-%d" % random.randint(0, 99999)
        srv = self.py("serve", "echo", "--name", name)
        self.assertEqual(srv.readline(self.deadline), "serving echo", srv.describe())
        call = self.cpp("call", name, "echo", '{"x":"\u00e9","n":-7}', "--timeout", "10")
        self.finished(call)
        self.assertEqual(json.loads(call.readline(self.deadline)), {"x": "\u00e9", "n": -7},
                         call.describe() + "\n" + srv.describe())
        # A method the Python peer does not have: its error comes back, the call fails with 1.
        nope = self.cpp("call", name, "nope", "--timeout", "10")
        self.finished(nope, rc=1)
        self.assertIn("has no handler for method 'nope'", nope.stderr(), nope.describe())


def main():
    global PEERBUS
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--peerbus", default=PEERBUS, help="the peerbus binary (default $PEERBUS_BIN)")
    args, rest = ap.parse_known_args()
    PEERBUS = os.path.abspath(args.peerbus)
    if not os.access(PEERBUS, os.X_OK):
        print("interop_test: %s is not an executable; pass --peerbus PATH or set PEERBUS_BIN"
              % PEERBUS, file=sys.stderr)
        return 2
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(getattr(r, "unexpectedSuccesses", []))
    passed = r.testsRun - failed - len(r.skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
