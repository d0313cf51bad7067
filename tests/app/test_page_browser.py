"""The page in a real browser: tools/app.py's launch on the micro model at 127.0.0.1, driven by
Debian's headless Chromium through Selenium (tools/setup_env.sh installs both; no browser is
downloaded at run time). A wrong file gets a message, a layout file loads, a clip is generated,
played, and its zip download is a valid CocoVID dataset. The page's screenshot is kept in the
test's tmp folder."""
import io
import json
import shutil
import socket
import time
import urllib.request
import zipfile

import pytest

from mmtrackgen.datasets.tracklets import validate_cocovid
from tests.conftest import MICRO_CONFIG

LAYOUT = {
    'format': 'mmtrackgen-tracklets', 'version': 1, 'clips': [{
        'name': 'crossing', 'image_size': [64, 64], 'num_frames': 4, 'instances': [
            {'id': 1, 'category': 'square',
             'boxes': [[4, 4, 20, 20], [12, 12, 28, 28], [20, 20, 36, 36], [28, 28, 44, 44]]},
            {'id': 2, 'category': 'circle',
             'boxes': [None, [40, 8, 56, 24], [40, 16, 56, 32], [40, 24, 56, 40]]}]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def page_url(checkpoint, tmp_path):
    from mmtrackgen.app.page import launch
    port = free_port()
    page, _ = launch(MICRO_CONFIG, checkpoint, port=port, block=False,
                     out_root=str(tmp_path / 'runs'))
    yield f'http://127.0.0.1:{port}'
    page.close()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which('chromium'), shutil.which('chromedriver')
    assert chromium and driver, ("Debian's chromium and chromium-driver are needed: run "
                                 'tools/setup_env.sh (as root) or apt-get install them')
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                '--window-size=1400,1400', '--autoplay-policy=no-user-gesture-required'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver), options=options)
    yield driver
    driver.quit()


def wait_for(what, condition, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f'the page did not show {what} within {timeout:.0f} s')


def message_of(browser):
    from selenium.webdriver.common.by import By
    return browser.find_element(By.CSS_SELECTOR, '#page-message').text


def test_load_generate_watch_and_download_in_chromium(page_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    started = time.monotonic()
    browser.get(page_url)
    generate = wait_for('the Generate button',
                        lambda: browser.find_elements(By.CSS_SELECTOR, '#generate'))[0]
    tab = [b for b in browser.find_elements(By.CSS_SELECTOR, 'button[role=tab]')
           if b.text.strip() == 'Load'][0]
    tab.click()
    upload = wait_for('the file input', lambda: browser.find_elements(
        By.CSS_SELECTOR, '#layout-file input[type=file]'))[0]

    # A file of the wrong kind: a message on the page, and the page goes on.
    wrong = tmp_path / 'frame.png'
    wrong.write_bytes(b'\x89PNG\r\n\x1a\n')
    upload.send_keys(str(wrong))
    wait_for('the wrong-file message', lambda: 'not a layout file' in message_of(browser))

    # Generating with nothing drawn: a message, no traceback.
    generate.click()
    wait_for('the empty-layout message', lambda: 'the layout has no box' in message_of(browser))

    good = tmp_path / 'crossing.json'
    good.write_text(json.dumps(LAYOUT))
    upload = wait_for('the file input', lambda: browser.find_elements(
        By.CSS_SELECTOR, '#layout-file input[type=file]'))[0]
    upload.send_keys(str(good))
    wait_for('the loaded layout', lambda: "loaded clip 'crossing'" in message_of(browser))
    assert browser.find_elements(By.CSS_SELECTOR, '#strip img'), 'no layout preview strip'

    generate.click()
    video = wait_for('the generated video', lambda: [
        v for v in browser.find_elements(By.CSS_SELECTOR, '#video video')
        if v.get_attribute('src')])[0]
    assert 'generated 4 frames of 16x16' in message_of(browser), message_of(browser)
    # The browser can decode it (H.264 MP4): metadata loaded, no media error.
    wait_for('a playable video', lambda: browser.execute_script(
        'return arguments[0].readyState >= 1 && !arguments[0].error', video), timeout=15)
    assert 'HOTA' in browser.find_element(By.CSS_SELECTOR, '#scores').text

    links = wait_for('the download links', lambda: [
        a.get_attribute('href') for a in browser.find_elements(By.CSS_SELECTOR, '#downloads a')
        if (a.get_attribute('href') or '').endswith('.zip')])
    browser.save_screenshot(str(tmp_path / 'page.png'))
    with urllib.request.urlopen(links[0], timeout=10) as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    ann = json.loads(archive.read('annotations.json'))
    validate_cocovid(ann, file='annotations.json')
    assert [v['name'] for v in ann['videos']] == ['crossing']
    assert len(ann['images']) == 4 and len(ann['annotations']) == 7
    assert 'crossing/img1/000004.jpg' in archive.namelist()
    assert time.monotonic() - started < 60
