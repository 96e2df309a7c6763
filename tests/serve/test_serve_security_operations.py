"""The hostile trial of ``facelearn serve`` (issue 24), continued: revoked keys (5), slow-loris (7),
misconfiguration (8) and the audit log of gallery changes — each against a real served process."""

from __future__ import annotations

import json
import socket
import time

import pytest
from conftest import error_of, image_files, log_size, need, skip_unless_allowed

need("fastapi", "serve")
from facelearn.serve.process import Served  # noqa: E402

pytestmark = pytest.mark.slow  # serves a process (and drives a browser)


# ---------------------------------------------------------------- 5. revoked keys; 8. misconfiguration
@pytest.fixture
def keyed(lfw_people, tmp_path):
    from facelearn.serve.keys import KeyStore

    store = KeyStore(tmp_path / "keys.json")
    keys = {name: store.add(name) for name in ("alice", "bob")}
    options = ("--keys", str(store.path))
    served = Served(lfw_people.model, tmp_path / "g.db", lfw_people.weights, tmp_path, *options).start()
    yield served, store.path, keys
    served.stop()


def status_within(http, key: str, wanted: int, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        status = http.get("/v1/subjects", headers={"X-API-Key": key}).status_code
        if status == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_a_removed_key_stops_working_without_a_restart(keyed, capsys):
    from facelearn.cli import main as facelearn

    served, path, keys = keyed
    with served.client() as http:
        assert status_within(http, keys["alice"], 200) == 200
        assert facelearn(["serve", "keys", "remove", "alice", "--keys", str(path)]) == 0
        started = time.monotonic()
        assert status_within(http, keys["alice"], 403) == 403 and time.monotonic() - started < 2
        assert http.get("/v1/subjects", headers={"X-API-Key": keys["bob"]}).status_code == 200
        assert facelearn(["serve", "keys", "add", "carol", "--keys", str(path)]) == 0
        carol = next(word for word in capsys.readouterr().out.split() if word.startswith("fl_"))
        assert status_within(http, carol, 200) == 200  # a new key works without a restart too
        good = path.read_text()
        before = log_size(served)
        broken = json.loads(good)
        broken["keys"].append({"name": "typo"})  # no sha256: every keyed request was a 500
        path.write_text(json.dumps(broken))
        for _ in range(5):
            answer = http.get("/v1/subjects", headers={"X-API-Key": keys["bob"]})
            assert error_of(answer) == (503, "keys_unavailable")
        assert http.get("/v1/ready").status_code == 200  # the probes stay open
        log = served.log.read_text()[before:]
        assert log.count("entry 3 is not a key") == 1 and "Traceback" not in log  # once, not per request
        path.write_text(good)
        assert status_within(http, keys["bob"], 200) == 200


def test_a_missing_or_malformed_key_file_refuses_to_serve(lfw_people, tmp_path):
    import subprocess
    import sys

    def serve(keys) -> subprocess.CompletedProcess:  # it served with no keys at all: never returned
        command = [sys.executable, "-m", "facelearn.cli", "serve", "--model", str(lfw_people.model)]
        command += ["--gallery", str(tmp_path / "g.db"), "--port", "9", "--keys", str(keys)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    missing = serve(tmp_path / "missing.json")
    assert missing.returncode == 2 and "no such key file" in missing.stderr
    malformed = tmp_path / "keys.json"
    malformed.write_text(json.dumps({"keys": [{"name": "x", "sha256": "abc"}]}))
    malformed.chmod(0o600)
    refused = serve(malformed)
    assert refused.returncode == 2 and "entry 1 is not a key" in refused.stderr


@pytest.fixture
def immutable(tmp_path):
    """chattr +i on a path (even root cannot write it), undone afterwards."""
    import shutil
    import subprocess

    marked = []

    def mark(path):
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode:
            skip_unless_allowed("chattr +i is not available here (needs root on ext4/xfs)")
        marked.append(path)

    yield mark
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_an_immutable_gallery_is_said_so_by_the_cli_and_the_service(lfw_people, tmp_path, immutable, capsys):
    from facelearn.cli import main as facelearn

    folder = tmp_path / "galleries"
    gallery = folder / "g.db"
    model = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights)]
    photos = [str(p) for p in lfw_people.enrolled[next(iter(lfw_people.enrolled))][:2]]
    assert facelearn(["enroll", str(gallery), "alice", *photos, *model]) == 0
    capsys.readouterr()
    immutable(gallery)
    assert facelearn(["enroll", str(gallery), "bob", *photos, *model]) == 2
    assert facelearn(["gallery", "delete", str(gallery), "alice"]) == 2
    errors = capsys.readouterr().err
    assert errors.count("cannot be written (Operation not permitted") == 2 and "Traceback" not in errors
    served = Served(lfw_people.model, gallery, lfw_people.weights, tmp_path)
    with pytest.raises(RuntimeError, match="exited with 2"):  # it once said ready, then every write was a 500
        served.start()
    assert "cannot be written" in served.log.read_text() and "Traceback" not in served.log.read_text()
    immutable(folder)  # the folder where SQLite keeps its journal: "not a facelearn gallery" before
    assert facelearn(["enroll", str(folder / "new.db"), "bob", *photos, *model]) == 2
    errors = capsys.readouterr().err
    assert "cannot be written" in errors and "not a facelearn gallery" not in errors


# ---------------------------------------------------------------- 7. slow-loris
def half_sent(port: int) -> socket.socket | None:
    """A connection that sends the start of a request's headers and never the rest."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(f"GET /v1/ready HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
        return sock
    except OSError:  # refused or reset at once: the server is shedding them
        return None


def test_slow_loris_cannot_starve_the_service_or_flood_its_log(lfw_people, tmp_path):
    served = Served(lfw_people.model, tmp_path / "g.db", lfw_people.weights, tmp_path)
    served.start(open_files=256)  # as under `ulimit -n 256`
    held: list[socket.socket] = []
    try:
        before = log_size(served)
        held = [s for s in (half_sent(served.port) for _ in range(260)) if s is not None]
        started = time.monotonic()
        with served.client() as http:
            assert http.get("/v1/ready", timeout=5).status_code == 200  # answered while 260 half-sent requests wait
        assert time.monotonic() - started < 5
        lone = half_sent(served.port)
        started = time.monotonic()
        lone.settimeout(20)
        try:
            closed = lone.recv(1024) == b""
        except ConnectionResetError:
            closed = True
        assert closed and time.monotonic() - started < 15  # the header deadline (10 s) closed it
        log = served.log.read_text()[before:]
        assert len(log) < 5000 and "Traceback" not in log, log[-2000:]
    finally:
        for sock in held:
            sock.close()
        served.stop()


# ---------------------------------------------------------------- the audit log of gallery changes
def test_every_gallery_change_is_audited_without_images_or_embeddings(keyed, lfw_people, tmp_path, capsys):
    from facelearn.cli import main as facelearn
    from facelearn.deploy.audit import AuditLog

    served, _, keys = keyed
    photos = lfw_people.enrolled[next(iter(lfw_people.enrolled))][:3]
    bob = {"X-API-Key": keys["bob"]}
    with served.client() as http:
        assert http.post("/v1/subjects", data={"subject": "ann"}, files=image_files(photos[:2]), headers=bob).is_success
        assert http.post("/v1/subjects/ann/faces", files=image_files(photos[2:]), headers=bob).is_success
        embedding = http.post("/v1/embed", files=image_files(photos[:1], "image"), headers=bob).json()
        assert http.delete("/v1/subjects/ann", headers=bob).json() == {
            "deleted": "ann",
            "faces": 3,
            "erased": True,
            "erasure": "done",
        }
    log = AuditLog(tmp_path / "g.db.audit.log")
    records = log.records()
    assert [(r["action"], r["subject"], r["faces"], r["who"], r["via"]) for r in records] == [
        ("enroll", "ann", 2, "key:bob", "api"),
        ("add", "ann", 1, "key:bob", "api"),
        ("delete", "ann", 3, "key:bob", "api"),
    ]
    assert all(r["client"] == "127.0.0.1" and r["time"].endswith("Z") for r in records)
    text = log.path.read_text()
    first = f"{embedding['faces'][0]['embedding'][0]:.6f}"[:8]
    assert first not in text and "JFIF" not in text and oct(log.path.stat().st_mode)[-3:] == "600"
    cli_gallery = tmp_path / "cli.db"
    model = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights)]
    assert facelearn(["enroll", str(cli_gallery), "cy", *map(str, photos[:2]), *model]) == 0
    assert facelearn(["gallery", "delete", str(cli_gallery), "cy"]) == 0
    cli = AuditLog(tmp_path / "cli.db.audit.log").records()
    assert [(r["action"], r["faces"], r["via"]) for r in cli] == [("enroll", 2, "cli"), ("delete", 2, "cli")]
    assert all(r["who"].startswith("local:") for r in cli)


def test_the_audit_log_rotates_and_keeps_every_record(tmp_path):
    from facelearn.deploy.audit import AuditLog

    log = AuditLog(tmp_path / "a.log", max_bytes=1024, keep=50)
    for number in range(60):
        log.record("enroll", f"subject {number}", 1, "local:test", "g.db", via="cli")
    assert (tmp_path / "a.log.1").exists() and (tmp_path / "a.log.3").exists()
    assert [r["subject"] for r in log.records()] == [f"subject {n}" for n in range(60)]  # oldest first, none lost
    small = AuditLog(tmp_path / "b.log", max_bytes=1024, keep=1)
    for number in range(60):
        small.record("delete", f"s{number}", 0, "local:test", "g.db")
    assert not (tmp_path / "b.log.2").exists()  # the retention is the operator's
