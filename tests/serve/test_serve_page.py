"""The service's page in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by Selenium against ``facelearn serve`` on 127.0.0.1 — enroll, identify, verify, delete."""

from __future__ import annotations

import pytest
from conftest import need

need("fastapi", "serve")
need("selenium", "dev")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from facelearn.serve.process import Served  # noqa: E402

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


@pytest.fixture(scope="module")
def page_server(lfw_people, tmp_path_factory):
    work = tmp_path_factory.mktemp("page")
    served = Served(lfw_people.model, work / "g.db", lfw_people.weights, work).start()
    yield served
    served.stop()


def result_of(browser, button: str, output: str) -> str:
    browser.find_element(By.ID, button).click()
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, output).text not in ("", "working…"))
    return browser.find_element(By.ID, output).text


def test_the_page_enrolls_identifies_verifies_and_deletes(browser, page_server, lfw_people):
    browser.get(page_server.url + "/")
    WebDriverWait(browser, 30).until(lambda b: "ready" in b.find_element(By.ID, "status").text)
    person, photos = next(iter(lfw_people.enrolled.items()))
    browser.find_element(By.ID, "enroll-subject").send_keys(person)
    browser.find_element(By.ID, "enroll-photos").send_keys("\n".join(str(p) for p in photos))
    assert result_of(browser, "enroll-go", "enroll-result") == f"enrolled {person}: 5 face(s)"

    browser.find_element(By.ID, "identify-photo").send_keys(str(photos[0]))  # an enrolled photo: found
    identified = result_of(browser, "identify-go", "identify-result")
    assert f"face 1: identified: {person}" in identified and "at FMR 0.001" in identified and "threshold" in identified

    browser.find_element(By.ID, "verify-a").send_keys(str(photos[0]))
    browser.find_element(By.ID, "verify-b").send_keys(str(photos[0]))
    verified = result_of(browser, "verify-go", "verify-result")
    assert verified.startswith("same person — score 1.0") and "FMR 0.001" in verified

    browser.find_element(By.ID, "delete-subject").send_keys(person)
    assert result_of(browser, "delete-go", "delete-result") == f"deleted {person}: 5 face(s) removed"
    browser.find_element(By.ID, "identify-go").click()  # the same photo again: nobody to find
    WebDriverWait(browser, 60).until(lambda b: "unknown" in b.find_element(By.ID, "identify-result").text)
    assert result_of(browser, "list-go", "list-result") == "nobody enrolled"
