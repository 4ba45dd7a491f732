"""``/v1/stream``, the WebSocket endpoint, through a real server on 127.0.0.1 with both backends: answers equal
to the offline forward and to HTTP sessions, errors that keep the connection, auth, back-pressure, TTL."""

import asyncio
import json
import re
import select
import socket
import time

import httpx
import numpy as np
import pytest
from serve_helpers import FEATURES, LABELS, LiveServer, metric, offline_steps
from websockets.client import ClientProtocol
from websockets.sync.client import connect
from websockets.uri import parse_uri

from lstmkit.serve import ServeOptions, create_app, frames, load_backend
from lstmkit.serve.client import AsyncStreamClient, StreamClient, StreamError

KEY = "k" * 24


def ws_url(live):
    return live.url.replace("http://", "ws://") + "/v1/stream"


def recordings(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(3.0, 2.0, size=(n, FEATURES)).astype(np.float32) for n in lengths]


def test_sessions_interleaved_on_one_connection_equal_the_offline_forward(server, reference):
    """Four sessions on one connection, fed in chunks of 1-3 steps, the chunks of all sessions in flight at once
    (so several sessions share binary messages and model calls)."""
    streams = recordings([7, 3, 9, 5])

    async def run():
        client = await AsyncStreamClient.connect(ws_url(server))
        try:
            ids = list(await asyncio.gather(*[client.open() for _ in streams]))
            outputs = [[] for _ in streams]
            position = [0] * len(streams)
            chunk = 1
            while any(p < len(s) for p, s in zip(position, streams)):
                calls, owners = [], []
                for i, s in enumerate(streams):
                    if position[i] < len(s):
                        take = s[position[i]:position[i] + chunk]
                        calls.append(client.step(ids[i], take))
                        owners.append((i, position[i]))
                        position[i] += len(take)
                for (i, start), out in zip(owners, await asyncio.gather(*calls)):
                    assert out.first == start
                    outputs[i].append(out.probabilities)
                chunk = chunk % 3 + 1
            steps = await asyncio.gather(*[client.close_session(i) for i in ids])
            return ids, [np.concatenate(o) for o in outputs], steps
        finally:
            await client.close()

    ids, outputs, steps = asyncio.run(run())
    assert len(set(ids)) == 4 and steps == [7, 3, 9, 5]
    for stream, got in zip(streams, outputs):
        np.testing.assert_allclose(got, offline_steps(reference, stream), atol=1e-5, rtol=0)


def test_json_messages_equal_the_http_session_answers(server, reference):
    stream_a, stream_b = recordings([4, 4], seed=3)
    with httpx.Client(base_url=server.url) as http:
        session = http.post("/v1/sessions").json()["id"]
        http_outputs = [http.post(f"/v1/sessions/{session}/step", json={"inputs": stream_a[t:t + 2].tolist()}).json()
                        for t in (0, 2)]
        http.delete(f"/v1/sessions/{session}")
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"op": "open", "ref": "a"}))
        ws.send(json.dumps({"op": "open", "ref": "b"}))
        opened = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
        assert [o["op"] for o in opened] == ["opened", "opened"] and {o["ref"] for o in opened} == {"a", "b"}
        ids = {o["ref"]: o["id"] for o in opened}
        answers = {"a": [], "b": []}
        for t in (0, 2):  # the two sessions' messages interleaved
            for name, stream in (("a", stream_a), ("b", stream_b)):
                ws.send(json.dumps({"op": "step", "id": ids[name], "inputs": stream[t:t + 2].tolist(), "ref": name}))
            for _ in range(2):
                answer = json.loads(ws.recv(timeout=10))
                assert answer["op"] == "output" and answer["id"] == ids[answer["ref"]]
                answers[answer["ref"]].append(answer)
        ws.send(json.dumps({"op": "close", "id": ids["a"]}))
        assert json.loads(ws.recv(timeout=10)) == {"op": "closed", "id": ids["a"], "steps": 4, "ref": None}
    for got, expected in zip(answers["a"], http_outputs):
        assert got["steps"] == expected["steps"]
        assert [o["step"] for o in got["outputs"]] == [o["step"] for o in expected["outputs"]]
        assert [o["label"] for o in got["outputs"]] == [o["label"] for o in expected["outputs"]]
        np.testing.assert_allclose([[o["probabilities"][label] for label in LABELS] for o in got["outputs"]],
                                   [[o["probabilities"][label] for label in LABELS] for o in expected["outputs"]],
                                   atol=1e-6, rtol=0)
    for name, stream in (("a", stream_a), ("b", stream_b)):
        got = [[o["probabilities"][label] for label in LABELS] for a in answers[name] for o in a["outputs"]]
        np.testing.assert_allclose(got, offline_steps(reference, stream), atol=1e-5, rtol=0)


def _step(session, x, ref=7, width=FEATURES):
    return frames.encode_steps([(session, ref, np.asarray(x, np.float32))], width)


GOOD = [[0.5] * FEATURES]
UNKNOWN = "0" * 32


def _bad_messages(session):
    """(what, message, status, error pattern, ref, id) of malformed or refused messages."""
    no_records = frames.HEADER.pack(frames.MAGIC, frames.VERSION, frames.OP_STEP, 0, FEATURES)
    nan = np.array([[0.5, np.nan, 0.5, 0.5, 0.5]], np.float32)
    big = _step(session, np.zeros((2001, FEATURES)))
    too_many = frames.encode_steps([(session, i, np.zeros((1, FEATURES), np.float32)) for i in range(17)], FEATURES)
    return [
        ("invalid JSON", "{op: open", 400, r"^message: expected a JSON object or a binary STEP message, got invalid JSON",
         None, None),
        ("a JSON array", "[1, 2]", 400, r'^message: expected a JSON object \{"op": \.\.\.\}, got a JSON list$', None, None),
        ("an unknown op", json.dumps({"op": "jump", "ref": 1}), 400,
         r"^message: expected \"op\" to be one of info, open, step, close, got 'jump'$", 1, None),
        ("an unknown key", json.dumps({"op": "open", "ids": 3}), 400,
         r"^message: unknown key 'ids' for op 'open'; expected only op, ref$", None, None),
        ("no session id", json.dumps({"op": "step", "inputs": GOOD}), 400,
         r'^message: expected "id", the session id as a string, got None$', None, None),
        ("an unknown session", json.dumps({"op": "step", "id": UNKNOWN, "inputs": GOOD, "ref": "x"}), 404,
         rf"^session {UNKNOWN}: not found \(unknown or deleted\)$", "x", UNKNOWN),
        ("a wrong feature count", json.dumps({"op": "step", "id": session, "inputs": [[1.0, 2.0]]}), 422,
         rf"^inputs\[0\]: expected {FEATURES} numbers \(one per feature\), got 2 numbers$", None, session),
        ("bad magic bytes", b"XX" + _step(session, GOOD)[2:], 400,
         r"^binary message: expected the magic bytes b'LK', got b'XX'$", None, None),
        ("a cut record", _step(session, GOOD)[:-3], 400, r"^binary message: record 0 is cut short", None, None),
        ("a wrong width", _step(session, [[0.5] * 3], width=3), 400,
         rf"^binary message: expected width {FEATURES} \(the model's inputs per step\), got 3$", None, None),
        ("no records", no_records, 400,
         r"^binary message: expected at least one record, got 0$", None, None),
        ("too many records", too_many, 400, r"^binary message: expected at most 16 records \(--max-batch\), got 17$",
         None, None),
        ("a NaN", _step(session, nan, ref=9), 422, r"^inputs\[0\]\[1\]: expected a finite number, got NaN$", 9, session),
        ("an unknown session, binary", _step(UNKNOWN, GOOD, ref=11), 404, r"not found \(unknown or deleted\)$", 11,
         UNKNOWN),
        ("a message over --max-payload-bytes", big, 413,
         rf"^message: expected at most 40000 bytes \(--max-payload-bytes\), got {len(big)}$", None, None),
    ]


def test_bad_messages_get_an_error_and_the_connection_stays_open(server, reference):
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"op": "open"}))
        session = json.loads(ws.recv(timeout=10))["id"]
        fed = []
        for what, message, status, pattern, ref, session_id in _bad_messages(session):
            ws.send(message)
            answer = json.loads(ws.recv(timeout=10))
            assert answer["op"] == "error" and answer["status"] == status, (what, answer)
            assert answer["ref"] == ref and answer["id"] == session_id, (what, answer)
            assert re.search(pattern, answer["error"]), (what, answer["error"])
            x = np.full((1, FEATURES), len(fed), np.float32)  # then a good step on the same connection
            ws.send(_step(session, x, ref=len(fed)))
            (record,) = frames.decode_outputs(ws.recv(timeout=10))
            assert (record.id, record.ref, record.first) == (session, len(fed), len(fed)), what
            fed.append(x[0])
        np.testing.assert_allclose(record.probabilities[0], offline_steps(reference, np.array(fed))[-1], atol=1e-5)


def test_a_wrong_or_missing_key_is_refused_at_the_handshake(model_dir):
    with LiveServer(create_app(load_backend(model_dir), ServeOptions(api_key=KEY))) as live:
        for key, message in ((None, "expected the header 'Authorization: Bearer KEY', got none"),
                             ("x" * 24, "invalid API key")):
            with pytest.raises(StreamError) as refused:
                StreamClient(ws_url(live), api_key=key)
            assert refused.value.status == 401
            assert refused.value.message == f"WebSocket /v1/stream: {message}"
        with StreamClient(ws_url(live), api_key=KEY) as client:
            session = client.open()
            assert client.step(session, GOOD).steps == 1


def test_a_model_that_cannot_stream_is_refused_at_the_handshake(tmp_path):
    from serve_helpers import make_folder

    folder = make_folder(tmp_path / "model", bidirectional=True)
    with LiveServer(create_app(load_backend(folder))) as live:
        with pytest.raises(StreamError) as refused:
            StreamClient(ws_url(live))
        assert refused.value.status == 409
        assert refused.value.message.startswith("sessions are not supported for this model: it is bidirectional")


class _NeverReads:
    """A WebSocket client on a raw socket that sends binary messages and never reads a byte after the handshake."""

    def __init__(self, url):
        uri = parse_uri(url)
        self.sock = socket.create_connection((uri.host, uri.port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.protocol = ClientProtocol(uri)
        self.protocol.send_request(self.protocol.connect())
        self.sock.sendall(b"".join(self.protocol.data_to_send()))
        while self.protocol.handshake_exc is None and not self.protocol.events_received():
            self.protocol.receive_data(self.sock.recv(4096))  # the 101 response only
        self.sock.setblocking(False)
        self.pending = b""

    def send_until_stalled(self, message, count, stall_seconds=1.0):
        """Send ``message`` up to ``count`` times; returns how many went out before the socket stayed full."""
        sent = 0
        while sent < count:
            if not self.pending:
                self.protocol.send_binary(message)
                self.pending = b"".join(self.protocol.data_to_send())
            _, writable, _ = select.select([], [self.sock], [], stall_seconds)
            if not writable:
                return sent
            self.pending = self.pending[self.sock.send(self.pending):]
            sent += not self.pending
        return sent


def test_a_client_that_never_reads_holds_a_bounded_number_of_messages(model_dir):
    options = ServeOptions(stream_max_pending=4, max_batch=16, max_sequence_length=40, max_sessions=64)
    with LiveServer(create_app(load_backend(model_dir), options)) as live, httpx.Client(base_url=live.url) as http:
        ids = [http.post("/v1/sessions").json()["id"] for _ in range(16)]
        x = np.zeros((40, FEATURES), np.float32)
        message = frames.encode_steps([(i, n, x) for n, i in enumerate(ids)], FEATURES)  # 13 kB in, 11 kB out
        client = _NeverReads(ws_url(live))
        try:
            sent = client.send_until_stalled(message, 5000)
            assert sent < 5000, "the server kept reading from a client that reads nothing"
            text = http.get("/metrics").text
            answered = metric(text, 'lstmkit_stream_messages_total{kind="binary",status="200"}')
            assert metric(text, "lstmkit_stream_pending_messages") == 4  # read, not answered: the bound, reached
            time.sleep(0.5)
            text = http.get("/metrics").text
            assert metric(text, 'lstmkit_stream_messages_total{kind="binary",status="200"}') == answered  # stalled
            assert answered + 4 <= sent
            assert http.get("/healthz").json()["status"] == "ok"  # the server serves others meanwhile
        finally:
            client.sock.close()
        deadline = time.monotonic() + 10
        while metric(http.get("/metrics").text, "lstmkit_stream_connections") != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        text = http.get("/metrics").text
        assert metric(text, "lstmkit_stream_connections") == 0 and metric(text, "lstmkit_stream_pending_messages") == 0


def test_a_closed_connection_leaves_its_sessions_to_the_ttl(model_dir, reference):
    options = ServeOptions(session_ttl=0.5, batch_wait_ms=1)
    stream = recordings([3], seed=5)[0]
    with LiveServer(create_app(load_backend(model_dir), options)) as live, httpx.Client(base_url=live.url) as http:
        with StreamClient(ws_url(live)) as client:
            session = client.open()
            first = client.step(session, stream[:2])
        info = http.get(f"/v1/sessions/{session}")
        assert info.status_code == 200 and info.json()["steps"] == 2  # the connection is gone, the session is not
        rest = http.post(f"/v1/sessions/{session}/step", json={"inputs": stream[2:].tolist()}).json()
        got = np.concatenate([first.probabilities, [[rest["outputs"][0]["probabilities"][k] for k in LABELS]]])
        np.testing.assert_allclose(got, offline_steps(reference, stream), atol=1e-5, rtol=0)
        time.sleep(1.2)  # idle past the TTL
        expired = http.get(f"/v1/sessions/{session}")
        assert expired.status_code == 404
        assert expired.json()["error"] == (f"session {session}: expired (idle for more than 0.5 s, --session-ttl); "
                                           "open a new one")
        with StreamClient(ws_url(live)) as client, pytest.raises(StreamError, match="expired") as gone:
            client.step(session, stream[:1])
        assert gone.value.status == 404


def test_frames_round_trip_with_mixed_step_counts():
    records = [("ab" * 16, 1, np.ones((2, 3), np.float32)), ("cd" * 16, 2, np.arange(3, dtype=np.float32)[None])]
    decoded = frames.decode_steps(frames.encode_steps(records, 3), 3, max_records=4, max_steps=8)
    assert decoded.ids == ["ab" * 16, "cd" * 16] and decoded.refs == [1, 2] and decoded.block is None
    for (_, _, x), got in zip(records, decoded.inputs):
        np.testing.assert_array_equal(got, x)
    outputs = [(i, r, 5, x) for i, r, x in records]
    for (i, r, first, x), got in zip(outputs, frames.decode_outputs(frames.encode_outputs(outputs, 3))):
        assert (got.id, got.ref, got.first) == (i, r, first)
        np.testing.assert_array_equal(got.probabilities, x)
    with pytest.raises(frames.FrameError, match=r"record 1: expected 1 to 1 steps \(--max-sequence-length\), got 2"):
        frames.decode_steps(frames.encode_steps(records[::-1], 3), 3, max_records=4, max_steps=1)


def test_lstmkit_serve_closes_a_connection_whose_message_is_over_the_payload_limit(model_dir):
    """Under ``server_config`` (what ``lstmkit serve`` runs) the WebSocket layer refuses to hold a message over
    --max-payload-bytes: close code 1009; smaller messages are answered."""
    from test_serve_hardening import ServeServer
    from websockets.exceptions import ConnectionClosed

    with ServeServer(load_backend(model_dir), ServeOptions(max_payload_bytes=2000)) as live:
        with connect(ws_url(live)) as ws:
            ws.send(json.dumps({"op": "open"}))
            session = json.loads(ws.recv(timeout=10))["id"]
            ws.send(_step(session, np.zeros((4, FEATURES))))
            assert frames.decode_outputs(ws.recv(timeout=10))[0].first == 0
            ws.send(_step(session, np.zeros((200, FEATURES))))  # 4036 bytes
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1009


def test_the_rate_limit_counts_the_handshake_and_every_message(model_dir):
    options = ServeOptions(rate_limit=0.5, rate_burst=3)
    with LiveServer(create_app(load_backend(model_dir), options)) as live, connect(ws_url(live)) as ws:
        ws.send(json.dumps({"op": "open", "ref": 1}))  # the handshake took the first token, this the second
        session = json.loads(ws.recv(timeout=10))["id"]
        ws.send(_step(session, GOOD, ref=2))  # the third
        assert frames.decode_outputs(ws.recv(timeout=10))[0].ref == 2
        ws.send(_step(session, GOOD, ref=3))
        refused = json.loads(ws.recv(timeout=10))
        assert (refused["status"], refused["ref"], refused["id"]) == (429, 3, session)
        assert refused["error"].startswith("too many requests: more than 0.5 per second from this client "
                                           "(--rate-limit); retry after")
        ws.send(json.dumps({"op": "info", "ref": 4}))
        assert json.loads(ws.recv(timeout=10))["status"] == 429  # still refused, the connection still open
