"""The hostile trial of ``facelearn serve`` (issue 24), each case against a real served process on
loopback: header-lying JPEGs and memory, cross-site writes (in Chromium) and DNS rebinding, revoked
keys, slow-loris, misconfiguration, malformed requests, the CLI's edges and the audit log."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from conftest import error_of, header_lying_jpeg, image_files, memory_mb, need, reset_peak_memory

from facelearn.data.images import encode_image

need("fastapi", "serve")
from facelearn.serve.process import Served  # noqa: E402

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(lfw_people, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    served = Served(lfw_people.model, work / "g.db", lfw_people.weights, work).start()
    yield served
    served.stop()


def log_size(served: Served) -> int:
    return served.log.stat().st_size


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
