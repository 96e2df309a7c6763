"""The hostile trial of ``facelearn serve`` (issue 24), each case against a real served process on
loopback: header-lying JPEGs and memory (1), cross-site writes in Chromium and DNS rebinding (2),
malformed requests, security headers, subject ids and the CLI's edges (9). Revoked keys,
slow-loris, misconfiguration and the audit log: test_serve_security_operations.py."""

from __future__ import annotations

import base64
import contextlib
import socket
import time

import numpy as np
import pytest
from conftest import error_of, header_lying_jpeg, image_files, log_size, memory_mb, need, reset_peak_memory

from facelearn.data.images import encode_image

need("fastapi", "serve")
from facelearn.serve.process import Served  # noqa: E402

pytestmark = pytest.mark.slow  # serves a process (and drives a browser)

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(lfw_people, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    served = Served(lfw_people.model, work / "g.db", lfw_people.weights, work).start()
    yield served
    served.stop()


# ---------------------------------------------------------------- 1. header-lying JPEGs, pixels, image count
def test_sixteen_header_lying_jpegs_are_refused_and_memory_stays_flat(server, lfw_people):
    photo = lfw_people.strangers[0]
    lying = header_lying_jpeg(photo)  # 6 KB saying 9000×4000: 108 MB of grey each when decoded
    with server.client() as http:
        assert http.post("/v1/embed", files=image_files([photo], "image")).status_code == 200  # warm
        idle = memory_mb(server.process.pid)["VmRSS"]
        reset_peak_memory(server.process.pid)
        parts = [("images", (f"{i}.jpg", lying, "image/jpeg")) for i in range(16)]
        answer = http.post("/v1/subjects", data={"subject": "liar"}, files=parts)
        assert error_of(answer) == (400, "bad_image") and "ends early" in answer.json()["error"]["message"]
        one = http.post("/v1/identify", files={"image": ("a.jpg", lying, "image/jpeg")})
        assert error_of(one) == (400, "bad_image")
        encoded = base64.b64encode(lying).decode()
        assert error_of(http.post("/v1/embed", json={"image": encoded})) == (400, "bad_image")
        peak = memory_mb(server.process.pid)["VmHWM"]
        assert error_of(http.get("/v1/subjects/liar")) == (404, "unknown_subject")
    print(f"server RSS: idle {idle:.0f} MB, peak during 16 header-lying JPEGs {peak:.0f} MB")
    assert peak - idle < 200, (idle, peak)


def test_a_request_holds_a_bounded_count_and_pixels_of_images(server, lfw_people):
    photo = lfw_people.strangers[1].read_bytes()
    large = encode_image(np.full((6000, 6000, 3), 90, np.uint8))  # honest, complete: 36 M pixels in 0.4 MB
    with server.client() as http:
        many = [base64.b64encode(photo).decode()] * 300  # JSON had no limit: 300 were accepted
        assert error_of(http.post("/v1/subjects", json={"subject": "many", "images": many})) == (
            413,
            "too_many_images",
        )
        parts = [("images", (f"{i}.jpg", photo, "image/jpeg")) for i in range(33)]
        assert error_of(http.post("/v1/subjects", data={"subject": "many"}, files=parts)) == (413, "too_many_images")
        three = [("images", (f"{i}.jpg", large, "image/jpeg")) for i in range(3)]  # 108 M > 100 M pixels
        assert error_of(http.post("/v1/subjects", data={"subject": "large"}, files=three)) == (413, "too_many_pixels")
        assert error_of(http.get("/v1/subjects/many")) == (404, "unknown_subject")


# ---------------------------------------------------------------- 2. cross-site requests and DNS rebinding
ATTACK = """<!doctype html><meta charset="utf-8"><title>waiting</title><script>
const bytes = Uint8Array.from(atob("PHOTO"), (c) => c.charCodeAt(0));
function photo() { return new Blob([bytes], { type: "image/jpeg" }); }
async function attack() {
  const enroll = new FormData();
  enroll.append("subject", "intruder");
  enroll.append("images", photo(), "x.jpg");
  await fetch("SERVICE/v1/subjects", { mode: "no-cors", method: "POST", body: enroll }).catch(() => null);
  const add = new FormData();
  add.append("images", photo(), "x.jpg");
  await fetch("SERVICE/v1/subjects/VICTIM/faces", { mode: "no-cors", method: "POST", body: add }).catch(() => null);
}
attack().then(() => { document.title = "sent"; }, (e) => { document.title = "failed " + e; });
</script>"""


@pytest.fixture
def attacker_page(server, lfw_people):
    """A page served from another local origin (http://localhost:OTHER) that writes to the service."""
    import http.server
    import threading

    victim = next(iter(lfw_people.enrolled))
    page = (
        ATTACK.replace("PHOTO", base64.b64encode(lfw_people.strangers[4].read_bytes()).decode())
        .replace("SERVICE", server.url)
        .replace("VICTIM", victim)
        .encode()
    )

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server name
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    yield f"http://localhost:{site.server_address[1]}/", victim
    site.shutdown()


def refused_writes(http) -> float:
    metrics = http.get("/metrics").text
    counts = [line for line in metrics.splitlines() if line.startswith("facelearn_requests_total")]
    return sum(float(line.split()[-1]) for line in counts if 'status="403"' in line)


def test_a_page_from_another_origin_cannot_enroll_or_add_faces(server, browser, attacker_page, lfw_people):
    from selenium.webdriver.support.ui import WebDriverWait

    url, victim = attacker_page
    with server.client() as http:
        http.post("/v1/subjects", data={"subject": victim}, files=image_files(lfw_people.enrolled[victim][:2]))
        before, refused = http.get(f"/v1/subjects/{victim}").json()["faces"], refused_writes(http)
        browser.get(url)
        WebDriverWait(browser, 60).until(lambda b: b.title != "waiting")
        assert browser.title == "sent"  # (each fetch fails on the answer's CORP header, after it was sent)
        assert refused_writes(http) == refused + 2  # they reached the service, which refused them
        assert error_of(http.get("/v1/subjects/intruder")) == (404, "unknown_subject")
        assert http.get(f"/v1/subjects/{victim}").json()["faces"] == before
        http.delete(f"/v1/subjects/{victim}")


def test_only_the_names_the_service_is_reached_by_are_answered(server):
    port = server.port
    with server.client() as http:
        for host in ("attacker.example", f"attacker.example:{port}", f"rebound.test.:{port}"):
            for method, path in (("GET", "/v1/subjects"), ("DELETE", "/v1/subjects/x"), ("GET", "/")):
                answer = http.request(method, path, headers={"host": host})
                assert error_of(answer) == (400, "bad_host"), (host, method, path)
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST"):
            assert http.get("/v1/subjects", headers={"host": host}).status_code == 200
        same = {"origin": server.url}
        assert http.post("/v1/identify", json={"k": 1}, headers=same).status_code == 422  # passes the guard
        for origin in ("http://evil.example", f"http://localhost:{port + 1}", "null"):
            answer = http.post("/v1/identify", json={"k": 1}, headers={"origin": origin})
            assert error_of(answer) == (403, "cross_origin"), origin
        assert error_of(http.delete("/v1/subjects/x", headers={"sec-fetch-site": "cross-site"})) == (
            403,
            "cross_origin",
        )


def test_the_allowed_names_and_origins_are_configurable():
    from facelearn.serve.browsers import BrowserPolicy
    from facelearn.serve.problems import Problem

    def answers(policy, method="POST", **headers) -> bool:
        try:
            policy.check(method, {k.replace("_", "-").encode(): v.encode() for k, v in headers.items()})
        except Problem:
            return False
        return True

    loopback = BrowserPolicy("127.0.0.1", ["faces.example"], ["https://app.example"])
    assert answers(loopback, host="faces.example:8000") and answers(loopback, host="[::1]:8000")
    assert not answers(loopback, host="other.example")
    assert answers(loopback, host="faces.example", origin="https://app.example")
    assert not answers(loopback, host="faces.example", origin="https://evil.example")
    everywhere = BrowserPolicy("0.0.0.0")  # bound to every interface (keys required): any name
    assert answers(everywhere, "GET", host="anything.example")
    assert not answers(BrowserPolicy("0.0.0.0", ["faces.example"]), "GET", host="anything.example")


# ---------------------------------------------------------------- 9. security headers, subject ids, malformed bodies
def test_every_answer_carries_the_security_headers(server):
    with server.client() as http:
        for path in ("/", "/v1/health", "/v1/nothing", "/docs", "/openapi.json"):
            headers = http.get(path).headers
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        page = http.get("/").headers["content-security-policy"]
        assert "script-src 'sha256-" in page and "connect-src 'self'" in page and "unsafe-inline" not in page


BAD_IDS = [".", "..", " ", "", "a/b", "zero\u200bwidth", "right\u202eleft", "line\u2028break", "tab\tbed", " alice"]


def test_one_subject_id_rule_for_the_api_the_cli_and_python(server, lfw_people, tmp_path, capsys):
    from facelearn.cli import main as facelearn
    from facelearn.deploy.subject_ids import SubjectIdError, lookup_id, subject_id

    photo = lfw_people.strangers[5]
    with server.client() as http:
        for bad in BAD_IDS:
            answer = http.post("/v1/subjects", data={"subject": bad}, files=image_files([photo]))
            assert error_of(answer) == (422, "invalid_request"), repr(bad)
        decomposed = "Zoe\u0301"  # é as e + combining accent: one subject with the composed é
        created = http.post("/v1/subjects", data={"subject": decomposed}, files=image_files([photo]))
        assert created.status_code == 201 and created.json()["subject"] == "Zo\u00e9"
        assert http.get("/v1/subjects/Zo%C3%A9").status_code == 200
        assert http.get("/v1/subjects/Zoe%CC%81").status_code == 200  # looked up normalised too
        assert http.delete("/v1/subjects/Zoe%CC%81").json()["deleted"] == "Zo\u00e9"
    for bad in BAD_IDS:
        with pytest.raises(SubjectIdError):
            subject_id(bad)
    assert lookup_id("..") == ".." and subject_id("Zoe\u0301 Smith-Jones") == "Zo\u00e9 Smith-Jones"
    model = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights)]
    for bad in ("", "a/b", ".."):
        assert facelearn(["enroll", str(tmp_path / "g.db"), bad, str(photo), *model]) == 2
        assert "subject id" in capsys.readouterr().err
    assert not (tmp_path / "g.db").exists()


def test_deep_nan_and_odd_bodies_are_refused_without_a_traceback(server, lfw_people):
    photo = base64.b64encode(lfw_people.strangers[6].read_bytes()).decode()
    deep = "[" * 10_000 + "]" * 10_000
    before = log_size(server)
    with server.client() as http:
        json_body = {"content-type": "application/json"}
        assert error_of(http.post("/v1/identify", content=deep, headers=json_body)) == (400, "bad_request")
        nested = '{"subject": "deep", "metadata": {"a": ' + deep + "}}"
        assert error_of(http.post("/v1/subjects", content=nested, headers=json_body)) == (400, "bad_request")
        form = http.post(
            "/v1/subjects", data={"subject": "deep", "metadata": deep}, files=image_files([lfw_people.strangers[6]])
        )
        assert error_of(form) == (400, "bad_request")
        for value in ("NaN", "Infinity", "-Infinity", "1e999"):
            raw = '{"subject": "nan", "metadata": {"x": ' + value + '}, "images": ["' + photo + '"]}'
            assert error_of(http.post("/v1/subjects", content=raw, headers=json_body))[0] in (400, 422), value
            as_form = {"subject": "nan", "metadata": '{"x": ' + value + "}"}
            answer = http.post("/v1/subjects", data=as_form, files=image_files([lfw_people.strangers[6]]))
            assert error_of(answer) == (422, "invalid_request"), value
        assert error_of(http.get("/v1/subjects/nan")) == (404, "unknown_subject")
        strip = encode_image(np.full((1, 5000, 3), 120, np.uint8), ".png")
        answer = http.post("/v1/embed", files={"image": ("s.png", strip)}, data={"aligned": "true"})
        assert error_of(answer) == (422, "invalid_request") and "square" in answer.json()["error"]["message"]
        broken = http.post("/v1/embed", files={"image": ("b.png", b"\x89PNG\r\n\x1a\n" + bytes(64))})
        assert error_of(broken) == (400, "bad_image") and "object at 0x" not in broken.json()["error"]["message"]
    log = server.log.read_text()[before:]
    assert "Traceback" not in log and len(log) < 2000, log[-3000:]


def test_content_length_with_transfer_encoding_is_refused_and_closed(server):
    request = (
        f"POST /v1/identify HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection after its answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"connection: close" in answer.lower()


def test_a_server_that_cannot_load_exits_non_zero_with_the_reason(lfw_people, tmp_path):
    missing = tmp_path / "secret-folder" / "missing-model.pt"
    served = Served(missing, tmp_path / "g.db", lfw_people.weights, tmp_path)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with 2") as exited:  # once: up for ever, the reason in a log
        served.start(timeout=60)
    assert time.monotonic() - started < 60
    said = str(exited.value)
    assert "facelearn: error: facelearn serve stopped: the model or gallery cannot be loaded" in said
    assert "missing-model.pt" in said and "No such file or directory" in said and "Traceback" not in said


def test_a_loading_service_answers_503_without_paths(tmp_path, monkeypatch):
    """A slow load: the service answers at once, /v1/ready 503 (no file named) until the load ends."""
    import threading

    from fastapi.testclient import TestClient

    from facelearn.deploy.recognizer import Recognizer
    from facelearn.serve.app import create_app
    from facelearn.serve.service import ServeSettings, Service

    release, failures = threading.Event(), []

    def slow_then_failing(*_args, **_options):
        release.wait(30)
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "secret-folder" / "m.pt"))

    monkeypatch.setattr(Recognizer, "load", slow_then_failing)
    service = Service(ServeSettings("m.pt", str(tmp_path / "g.db")), on_load_error=failures.append)
    with TestClient(create_app(service), base_url="http://127.0.0.1") as http:
        loading = http.get("/v1/ready")
        assert error_of(loading) == (503, "not_ready") and "still loading" in loading.text
        release.set()
        for _ in range(100):
            if failures:
                break
            time.sleep(0.05)
        failed = http.get("/v1/ready")
    assert len(failures) == 1 and "secret-folder" in service.load_error  # the operator learns why
    assert error_of(failed) == (503, "not_ready") and "secret-folder" not in failed.text  # a caller does not


def test_identify_on_a_missing_gallery_is_an_error_not_unknown(lfw_people, tmp_path, capsys):
    from facelearn.cli import main as facelearn

    model = ["--model", str(lfw_people.model), "--weights", str(lfw_people.weights)]
    typo = tmp_path / "missing.db"
    assert facelearn(["identify", str(typo), str(lfw_people.strangers[0]), *model]) == 2
    assert (
        "does not exist (no such gallery)" in capsys.readouterr().err and not typo.exists()
    )  # not created, no "unknown"


def test_serve_keys_add_into_a_closed_pipe_is_still_a_success(tmp_path, capsys):
    import os
    import subprocess
    import sys

    from facelearn.cli import main as facelearn

    keys = tmp_path / "keys.json"
    shell = f"set -o pipefail; {sys.executable} -m facelearn.cli serve keys add alice --keys {keys} | head -1"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("fl_") and "Broken pipe" not in done.stderr
    reader, writer = os.pipe()
    os.close(reader)  # a reader that has gone already
    saved = os.dup(1)
    try:
        os.dup2(writer, 1)
        # line-buffered, as a terminal or PYTHONUNBUFFERED would make it: the key's line meets the closed pipe
        sys.stdout, original = open(1, "w", buffering=1, closefd=False), sys.stdout  # noqa: SIM115
        try:
            code = facelearn(["serve", "keys", "add", "bob", "--keys", str(keys)])
        finally:
            with contextlib.suppress(OSError):
                sys.stdout.close()  # what it still holds goes where fd 1 points now, not to the real stdout
            sys.stdout = original
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(writer)
    assert code == 0 and "Broken pipe" not in capsys.readouterr().err
