"""The BMC's status page in a real headless browser: Debian's Chromium, driven by Selenium
through Debian's chromedriver. Log in, see the nodes, power one on and watch its state change,
open its console, set a boot override; on a phone-sized screen too. Screenshots go to
test-output/."""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path

import pytest
import requests

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOTS = Path(__file__).resolve().parents[2] / "test-output"

pytestmark = pytest.mark.skipif(shutil.which(CHROMEDRIVER) is None,
                                reason="Debian's chromium-driver is not installed")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.accept_insecure_certs = True      # the BMC's own self-signed certificate
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def log_in(driver, user: str, password: str) -> None:
    """The browser's Basic credentials, as its login prompt would give them."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": f"Basic {token}"}})


def wait(driver, script: str, timeout: float = 20, what: str = ""):
    deadline = time.monotonic() + timeout
    while not (value := driver.execute_script(script)):
        assert time.monotonic() < deadline, f"timed out: {what or script}"
        time.sleep(0.1)
    return value


def card(node: str) -> str:
    return f'document.querySelector(\'[data-node="{node}"]\')'


def shot(driver, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"status-page-{name}.png"))


def test_the_status_page_shows_and_drives_the_nodes(console_bmc, browser):
    bmc = console_bmc(nodes=2)
    page = f"{bmc.redfish_url}/status"
    cert = str(bmc.state_dir / "redfish-cert.pem")
    refused = requests.get(f"{page}/nodes", verify=cert, timeout=10)
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers

    log_in(browser, "admin", "password")
    browser.get(page)
    wait(browser, "return document.querySelectorAll('.node').length === 2", what="2 cards")
    assert "2 nodes: 0 on, 2 off" in browser.find_element("id", "counts").text
    wait(browser, "return document.getElementById('live').classList.contains('on')",
         what="the event stream")
    shot(browser, "off")

    # power node-0 on from the page: the state changes without a reload
    browser.execute_script(f"{card('node-0')}.querySelector('[data-reset=On]').click()")
    wait(browser, f"return {card('node-0')}.querySelector('.power').textContent"
                  ".startsWith('On')", what="node-0 on")
    assert requests.get(f"{bmc.redfish_url}/redfish/v1/Systems/node-0", verify=cert,
                        auth=("admin", "password"), timeout=10).json()["PowerState"] == "On"
    # its console: the firmware's output arrives over the WebSocket
    browser.execute_script(f"{card('node-0')}.querySelector('.open-console').click()")
    wait(browser, "return document.getElementById('console').open", what="console dialog")
    wait(browser, "return /SeaBIOS|iPXE/.test("
                  "document.getElementById('console-output').textContent)", timeout=60,
         what="firmware output on the console")
    shot(browser, "console")
    browser.execute_script("document.getElementById('console-close').click()")

    # a boot override from the page, read back over IPMI
    browser.execute_script(f"const c = {card('node-1')}; c.querySelector('.boot-target').value"
                           " = 'Pxe'; c.querySelector('.boot-enabled').value = 'Continuous';"
                           " c.querySelector('.set-boot').click()")
    wait(browser, f"return {card('node-1')}.querySelector('.boot').textContent"
                  ".includes('Pxe, persistent')", what="boot override shown")
    flags = bmc.ipmitool("chassis", "bootparam", "get", "5", node=1).stdout
    assert "Force PXE" in flags and "all future boots" in flags

    browser.execute_script(f"{card('node-0')}.querySelector('[data-reset=ForceOff]').click()")
    wait(browser, f"return {card('node-0')}.querySelector('.power').textContent"
                  ".startsWith('Off')", what="node-0 off")
    shot(browser, "desktop")

    browser.set_window_size(390, 844)       # a phone: no sideways scrolling
    time.sleep(0.5)
    assert browser.execute_script("return document.documentElement.scrollWidth "
                                  "<= window.innerWidth")
    shot(browser, "phone")
    assert "Traceback" not in bmc.log
