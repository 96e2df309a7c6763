"""``/docs`` renders in a real browser from this machine alone: every resource it loads comes from the
service (no CDN), and the page's policy blocks nothing it needs."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import need

need("fastapi", "serve")
from facelearn.serve.process import free_port  # noqa: E402

pytestmark = pytest.mark.slow  # drives a browser


@pytest.fixture
def docs_server(tmp_path):
    """The app without a model (its load fails at once: the docs and the schema need none)."""
    import uvicorn

    from facelearn.serve.app import create_app
    from facelearn.serve.service import ServeSettings, Service

    service = Service(ServeSettings(str(tmp_path / "no-model.pt"), str(tmp_path / "g.db")))
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=free_port(), log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)


def test_the_docs_render_from_this_machine_alone(browser, docs_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(docs_server + "/docs")
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    paths = {element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/v1/identify" in paths and "/v1/subjects/{subject}" in paths
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(docs_server) for url in loaded), loaded  # no CDN
    refused = [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not refused, refused
