"""Request-size limits (issue #18, item 9): bodies over the cap are refused with 413 before
anything parses them, whether they declare a `Content-Length` or stream chunks without one, and
a flood of oversized uploads leaves the server's memory where it was."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from pathlib import Path

import pytest
from assembly_helpers import ADMIN_HEADERS, client, create, server_process
from starlette.types import Message, Receive, Scope, Send

from charter.assembly.body_limit import BodyLimit

CAP = 64 * 1024
FLOOD_BYTES = 50 * 1024 * 1024  # each oversized request; 20 of them
PROC = Path("/proc")


def test_oversized_json_and_forms_get_413_before_parsing(tmp_path: Path) -> None:
    c = client(tmp_path)
    cid = create(c, ["x"])
    url = f"/api/conversations/{cid}/participants"
    big = json.dumps({"invite_code": "x" * CAP}).encode()
    r = c.post(url, content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json() == {"detail": f"request body too large: at most {CAP} bytes"}
    assert r.headers["connection"] == "close"
    assert "content-security-policy" in r.headers

    def stream() -> object:  # no Content-Length: the bytes are counted as they arrive
        yield big[: CAP // 2]
        yield big[CAP // 2 :]

    r = c.post(url, content=stream(), headers={"Content-Type": "application/json"})  # type: ignore[arg-type]
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    # the participant page's forms: the same cap, a small page instead of JSON
    r = c.post(f"/c/{cid}/statements", data={"csrf": "x", "text": "y" * CAP})
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
    # just under the cap: parsed and refused for what it says, not for its size
    small = json.dumps({"invite_code": "x" * (CAP - 100)}).encode()
    r = c.post(url, content=small, headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_creating_a_conversation_with_500_long_arabic_seeds_fits(tmp_path: Path) -> None:
    c = client(tmp_path)
    seeds = [f"{i} " + "ب" * 290 for i in range(500)]  # JSON spells each letter as \u0628
    body = json.dumps({"topic": "t", "seed_statements": seeds}).encode()
    assert len(body) > 8 * CAP
    r = c.post("/api/conversations", content=body,
               headers={**ADMIN_HEADERS, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 201, r.text[:200]
    # the larger cap is for that route only
    r = c.post(f"/api/conversations/{r.json()['id']}/participants", content=body,
               headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413


def test_body_limit_stops_reading_a_stream_past_the_cap() -> None:
    """An endless chunked upload: the middleware pulls a few chunks past the cap, no more."""
    pulled = 0
    sent: list[Message] = []

    async def endless() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 16384, "more_body": True}

    async def record(message: Message) -> None:
        sent.append(message)

    async def reads_everything(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass

    scope: Scope = {"type": "http", "method": "POST", "path": "/api/x", "headers": []}
    asyncio.run(BodyLimit(reads_everything, lambda _: CAP)(scope, endless, record))
    assert pulled == CAP // 16384 + 1
    assert sent[0]["status"] == 413


def _memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (the most it ever was), from /proc/PID/status."""
    text = (PROC / str(pid) / "status").read_text()
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}


def _status(sock: socket.socket, wait: float) -> int | None:
    """The status code of the answer on `sock`, or None when none comes within `wait` s."""
    sock.settimeout(wait)
    data = b""
    try:
        while b"\r\n" not in data:
            more = sock.recv(4096)
            if not more:
                break
            data += more
    except OSError:
        pass
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return int(match.group(1)) if match else None


def _push(port: int, path: str, size: int, *, chunked: bool) -> tuple[int | None, int]:
    """POST `size` bytes to `path` like a client that does not stop when told to: (status read
    back, or None when the server cut the connection first; bytes of body it managed to send)."""
    kind = "application/json" if path.startswith("/api/") else "application/x-www-form-urlencoded"
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    piece = b"x" * 65536
    sent = 0
    status = None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head.encode() + b"\r\n")
            if not chunked:  # a capped server answers from the headers alone
                status = _status(sock, wait=1.0)
            if status is None:
                sock.settimeout(10)
                while sent < size:
                    data = piece[: size - sent]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                    sent += len(data)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
                status = _status(sock, wait=30)
        except OSError:  # the server closed the connection mid-upload
            status = status or _status(sock, wait=0.5)
    return status, sent


@pytest.mark.skipif(not (PROC / "self" / "status").exists(), reason="needs Linux's /proc")
def test_a_flood_of_oversized_posts_leaves_the_servers_memory_flat(tmp_path: Path) -> None:
    """20 unauthenticated 50 MB uploads (1 GB in all) to a real `charter assembly serve`:
    half declare their length, half stream chunks without one. Before the cap, one 200 MB
    POST took the server from 100 MB to 1.06 GB."""
    with server_process(tmp_path / "a.db", "--join-rate", "1000000") as server:
        import httpx

        with httpx.Client(base_url=server.base, headers=ADMIN_HEADERS) as http:
            cid = http.post("/api/conversations", json={"topic": "t", "seed_statements": ["s"]})
            cid = cid.json()["id"]
            for _ in range(3):  # warm up both routes (imports, caches) before measuring
                assert http.post(f"/api/conversations/{cid}/participants").status_code == 201
                http.post(f"/c/{cid}/statements", data={"csrf": "x", "text": "y"})
        before = _memory_kib(server.proc.pid)
        results: list[tuple[bool, int | None, int]] = []
        lock = threading.Lock()

        def flood(i: int) -> None:
            chunked = i % 2 == 1
            path = f"/api/conversations/{cid}/participants" if i % 4 < 2 else f"/c/{cid}/vote"
            status, sent = _push(server.port, path, FLOOD_BYTES, chunked=chunked)
            with lock:
                results.append((chunked, status, sent))

        for round_ in range(5):  # four at a time, as a small botnet would
            threads = [threading.Thread(target=flood, args=(4 * round_ + i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        # just over the cap, sent whole: the 413 itself can always be read back
        just_over = [_push(server.port, f"/c/{cid}/vote", CAP + 1024, chunked=True)[0]
                     for _ in range(3)]  # fmt: skip
        after = _memory_kib(server.proc.pid)
        alive = httpx.get(f"{server.base}/api/conversations/{cid}").status_code

    grew_mib = (after["VmHWM"] - before["VmRSS"]) / 1024
    most_sent_mib = max(sent for _, _, sent in results) / 2**20
    print(f"assembly flood: RSS {before['VmRSS'] / 1024:.1f} MiB before, "
          f"{after['VmRSS'] / 1024:.1f} MiB after, peak {after['VmHWM'] / 1024:.1f} MiB; "
          f"the most one upload got in before the cut: {most_sent_mib:.1f} MiB")  # fmt: skip
    assert alive == 200
    assert just_over == [413, 413, 413]
    # declared lengths are refused from the headers: not one byte of body was sent
    assert all(status == 413 and sent == 0 for chunked, status, sent in results if not chunked)
    # chunked uploads are cut off: a 413, or a closed connection, long before 50 MB got through
    assert all(status in (413, None) for chunked, status, _ in results if chunked)
    assert most_sent_mib < 25
    assert grew_mib < 10, (before, after)
