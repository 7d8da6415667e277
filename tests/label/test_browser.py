"""A person in a real browser: headless Chromium (Debian's chromium + chromedriver) driven by Selenium.

Ana logs in and ranks five items: two by dragging cards with the mouse (one with a tie by the mouse), two with
the keyboard (digits, `t` for a tie, Shift+arrows, Enter), one pairwise with keys (`u` flags it unsafe, `2`
chooses). What she submitted must be exactly what the database holds. Simulated annotators then rank through the
JSON API, the admin's dashboard (with a reward model loaded) updates without a reload, the admin exports with
the link, and `rewardkit train` trains on the downloaded file.

Screenshots of the ranking page and the dashboard go to $REWARDKIT_SCREENSHOTS when set (docs/label/ holds the
committed ones: `REWARDKIT_SCREENSHOTS=docs/label python -m pytest tests/label/test_browser.py`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from rewardkit.cli import main
from rewardkit.label.cli import reward_function
from rewardkit.label.export import export_records
from rewardkit.label.simulate import run_annotators
from rewardkit.label.store import ProjectSettings, parse_item
from rewardkit.model import RewardModel
from tests.label.conftest import PASSWORD, REQUIRED

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
GUIDELINES = """Rank the responses from **best** to **worst** for a curious, non-expert reader.

* Prefer answers that are correct and directly useful; brevity beats padding.
* Tie two responses only when you truly cannot prefer one.
* Flag anything unsafe, even when you rank it."""
ITEMS = [
    {"id": "basil", "prompt": "How do I keep a basil plant alive indoors?",
     "responses": ["Put it in your sunniest window (6+ hours of light), water when the top inch of soil is dry, "
                   "and pinch off flower buds so it keeps making leaves.",
                   "Basil likes sun and regular water. Keep it warm.",
                   "Water it every day no matter what, and keep it away from windows so it does not get cold.",
                   "Plants are living things that need care. Many people enjoy growing herbs at home."]},
    {"id": "rm", "prompt": "Explain what a *reward model* is, in two sentences.",
     "responses": ["A reward model is a network trained on human preference comparisons to output a scalar score "
                   "for a response. RL algorithms then optimize a policy to earn high scores from it.",
                   "It is a model that rewards you.",
                   "A reward model predicts which of two responses people prefer, as a number per response; "
                   "RLHF uses that number as the reward for PPO.",
                   "Reward models are used in reinforcement learning from human feedback (RLHF)."]},
    {"id": "haiku", "prompt": "Write a haiku about autumn rain.",
     "responses": ["Cold rain on red leaves /\nthe gutter hums all evening /\na kettle answers",
                   "Rain falls in autumn\nit is wet and it is cold\nleaves are on the ground",
                   "Autumn rain is nice. I like rain.",
                   "Grey threads through maples /\npuddles borrow the last light /\numbrellas bloom black"]},
    {"id": "capital", "prompt": "What is the capital of Australia?",
     "responses": ["Canberra.", "Sydney.", "The capital of Australia is Canberra, chosen in 1908 as a compromise "
                   "between Sydney and Melbourne.", "Melbourne, I think."]},
    {"id": "cat", "prompt": "Suggest a name for a grey cat.", "responses": ["Ash", "Cat"]},
]


@pytest.fixture(params=["sqlite"])
def db_url(request, tmp_path):
    yield f"sqlite:///{tmp_path / 'labels.db'}"


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None or CHROMEDRIVER is None:
        if REQUIRED:
            pytest.fail("chromium / chromedriver missing (CI=true; .ci/system-packages.sh installs them)")
        pytest.skip("headless browser test needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                 "--disable-extensions", "--disable-sync", "--no-first-run", "--mute-audio",
                 "--window-size=1280,1100", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _wait(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _shown_order(driver) -> list[int]:
    return [int(card.get_attribute("data-index")) for card in driver.find_elements("css selector", "#ranking .card")]


def _places(driver) -> dict[int, int]:
    from selenium.webdriver.support.select import Select

    return {int(card.get_attribute("data-index")): int(Select(card.find_element("tag name", "select"))
                                                       .first_selected_option.text)
            for card in driver.find_elements("css selector", "#ranking .card")}


def _drag_above(driver, index: int, target: int) -> None:
    """Drag card `index` by its handle and drop it on the upper part of card `target`."""
    from selenium.webdriver.common.action_chains import ActionChains

    handle = driver.find_element("css selector", f"#card-{index} .handle")
    destination = driver.find_element("id", f"card-{target}")
    offset = -destination.size["height"] // 2 + 4
    ActionChains(driver).click_and_hold(handle).move_to_element_with_offset(destination, 0, offset).pause(0.1) \
        .release().perform()


def _drag_to_bottom(driver, index: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    handle = driver.find_element("css selector", f"#card-{index} .handle")
    last = driver.find_elements("css selector", "#ranking .card")[-1]
    ActionChains(driver).click_and_hold(handle).move_to_element_with_offset(last, 0, last.size["height"] // 2 - 2) \
        .pause(0.1).release().perform()


def _screenshot(driver, name: str, tmp_path: Path) -> None:
    """The whole page, beyond the window's height (Chrome DevTools' captureBeyondViewport)."""
    import base64

    path = tmp_path / name
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000  # a real page, not a blank one
    folder = os.environ.get("REWARDKIT_SCREENSHOTS")
    if folder:
        shutil.copy(path, Path(folder) / name)


def test_a_person_ranks_five_items_and_the_admin_exports_and_trains(store, serve, browser, tmp_path, db_url,
                                                                    tiny_sft):
    from selenium.webdriver.common.keys import Keys

    store.create_project(ProjectSettings("helpfulness", guidelines=GUIDELINES, render_markdown=True,
                                         overlap_fraction=0.5, overlap_annotations=3))
    store.import_items("helpfulness", [parse_item(r, r["id"]) for r in ITEMS])
    more = [{"id": f"extra{i}", "prompt": f"Give one tip for learning topic {i}.",
             "responses": [f"Practice topic {i} a little every day.", f"Read about topic {i}.",
                           f"Topic {i} is hard.", f"Teach topic {i} to a friend."]} for i in range(20)]
    store.import_items("helpfulness", [parse_item(r, r["id"]) for r in more], seed=1)
    for name in ("ana", "bo", "cy", "di"):
        store.add_annotator(name, password=PASSWORD)
    store.add_annotator("boss", admin=True, password=PASSWORD)
    RewardModel.from_sft(tiny_sft).save_pretrained(tmp_path / "tiny-rm")  # untrained: its agreement is chance
    url = serve(store, reward_function=reward_function(str(tmp_path / "tiny-rm")), reward_model_name="tiny-rm")
    driver = browser

    # --- log in
    driver.get(f"{url}/login")
    driver.find_element("name", "name").send_keys("ana")
    driver.find_element("name", "password").send_keys(PASSWORD + Keys.ENTER)
    _wait(lambda: driver.current_url.endswith("/projects"), what="the projects page")
    driver.find_element("link text", "helpfulness").click()

    expected: dict[str, object] = {}

    def on_item(item_id: str):
        """Wait for the page of this item (a click on submit returns before the next page has loaded)."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

        expected_prompt = next(r for r in ITEMS if r["id"] == item_id)["prompt"].replace("*", "")

        def shown() -> bool:
            try:
                return expected_prompt in driver.find_element("css selector", ".prompt").text
            except (NoSuchElementException, StaleElementReferenceException):
                return False

        _wait(shown, what=f"the page of item {item_id}")

    # --- item 1, mouse: drag the cards into the order 0, 2, 1, 3
    on_item("basil")
    for position, index in enumerate([0, 2, 1, 3]):
        order = _shown_order(driver)
        if order[position] != index:
            _drag_above(driver, index, order[position])
    assert _shown_order(driver) == [0, 2, 1, 3] and _places(driver) == {0: 1, 2: 2, 1: 3, 3: 4}
    driver.find_element("id", "submit").click()
    expected["basil"] = [0, 2, 1, 3]

    # --- item 2, mouse: response 1 to the bottom, the rest 0, 2 above with 2 tied to 0 by the tie button
    on_item("rm")
    _drag_to_bottom(driver, 1)
    for position, index in enumerate([0, 2, 3]):
        order = _shown_order(driver)
        if order[position] != index:
            _drag_above(driver, index, order[position])
    driver.find_element("css selector", "#card-2 .tiebutton").click()
    assert _places(driver) == {0: 1, 2: 1, 3: 2, 1: 3}
    _screenshot(driver, "ranking_page.png", tmp_path)
    driver.find_element("id", "submit").click()
    expected["rm"] = [[0, 2], 3, 1]

    # --- item 3, keyboard: digits give places, `t` ties, Enter submits
    on_item("haiku")
    for place, index in enumerate([3, 0, 1, 2], start=1):
        driver.find_element("id", f"card-{index}").send_keys(str(place))
    driver.find_element("id", "card-0").send_keys("t")  # 0 ties with 3 above it
    assert _places(driver) == {3: 1, 0: 1, 1: 2, 2: 3}
    driver.find_element("id", "card-2").send_keys(Keys.ENTER)
    expected["haiku"] = [[0, 3], 1, 2]

    # --- item 4, keyboard: Shift+arrows move the focused card
    on_item("capital")
    for place, index in enumerate([2, 0, 3, 1], start=1):
        driver.find_element("id", f"card-{index}").send_keys(str(place))
    driver.find_element("id", "card-3").send_keys(Keys.SHIFT, Keys.ARROW_DOWN)  # 3 below 1
    assert _shown_order(driver) == [2, 0, 1, 3]
    driver.find_element("id", "card-3").send_keys(Keys.ENTER)
    expected["capital"] = [2, 0, 1, 3]

    # --- item 5, pairwise: `u` flags it unsafe, `2` chooses the second response shown
    on_item("cat")
    second = int(driver.find_elements("css selector", ".pair .card")[1].get_attribute("data-index"))
    body = driver.find_element("tag name", "body")
    body.send_keys("u")
    assert driver.find_element("id", "unsafe").is_selected()
    pair_page = driver.current_url
    body.send_keys("2")
    expected["cat"] = [second, 1 - second]
    _wait(lambda: driver.current_url != pair_page, what="the fifth submission")

    by_external = {item.id: item.external_id for item in store.items("helpfulness")}
    judged = {by_external[j.item_id]: j for j in store.judgements("helpfulness") if j.annotator == "ana"}
    assert {k: v.ranking for k, v in judged.items()} == expected  # exactly what she did, in response indices
    assert judged["cat"].unsafe and not judged["basil"].unsafe

    # --- the admin's dashboard, live while others rank through the API
    driver.find_element("css selector", "form[action='/logout'] button").click()
    _wait(lambda: driver.current_url.endswith("/login"), what="log out")
    driver.find_element("name", "name").send_keys("boss")
    driver.find_element("name", "password").send_keys(PASSWORD + Keys.ENTER)
    _wait(lambda: driver.current_url.endswith("/admin"), what="the admin page")
    driver.find_element("link text", "helpfulness").click()
    rankings = lambda: int(driver.find_element("css selector", "[data-stat=rankings]").text)  # noqa: E731
    assert rankings() == 5

    rng = random.Random(0)

    def labeller(noise: float):
        def rank(prompt, responses):  # the data's own order (response 0 best), with some swaps
            order = sorted(index for index, _ in responses)
            for i in range(len(order) - 1):
                if rng.random() < noise:
                    order[i], order[i + 1] = order[i + 1], order[i]
            return order
        return rank

    logs = run_annotators(url, "helpfulness", [("bo", PASSWORD, labeller(0.15)), ("cy", PASSWORD, labeller(0.3)),
                                               ("di", PASSWORD, labeller(0.5))], max_items=12)
    done = 5 + sum(len(log.submitted) for log in logs)
    _wait(lambda: rankings() == done, what="the dashboard to show the new rankings without a reload")
    assert "–" not in driver.find_element("css selector", "[data-stat=krippendorff_alpha]").text
    assert driver.find_element("css selector", "[data-stat=rm_agreement]").text.endswith("%")
    _wait(lambda: all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
                      for img in driver.find_elements("css selector", "img[data-plot]")), what="the plots")
    time.sleep(0.5)
    _screenshot(driver, "dashboard.png", tmp_path)
    names = driver.execute_script(  # in one go: the poll replaces the table's rows every few seconds
        "return [...document.querySelectorAll('#annotators tbody td:first-child')].map(td => td.textContent)")
    assert names == ["ana", "bo", "cy", "di"]

    # --- export with the link, then train on the file as downloaded
    driver.find_element("id", "export").click()
    path = _wait(lambda: next(iter(driver.downloads.glob("*.jsonl")), None), what="the download")
    _wait(lambda: path.stat().st_size > 0, what="the downloaded file to be written")
    downloaded = [json.loads(line) for line in path.read_text().splitlines()]
    assert downloaded == export_records(store, "helpfulness")
    assert sum(len(r["rankings"]) for r in downloaded) == done
    assert main(["train", "--model", str(tiny_sft), "--data", str(path), "--output", str(tmp_path / "rm"),
                 "--max-steps", "3", "--batch-size", "4", "--eval-fraction", "0.2", "--no-progress"]) == 0
    assert json.loads((tmp_path / "rm" / "train_summary.json").read_text())["steps"] == 3
