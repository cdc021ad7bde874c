"""The lab in a real browser on the embedded model: teach a scenario (Advanced options, the live loss plot), chat,
compare, teach from an uploaded file (its preview in the table), download and delete an adapter; screenshots of each.

Debian's chromium driven by playwright (`pip install -e '.[dev]'`); playwright's own browser download does not work
offline, so the set-up installs the distribution's chromium when it is missing. Screenshots go to docs/ (the README
shows them). Run with `pytest -m slow tests/test_serve_browser.py` (about two minutes on 2 cores).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFUNDS = ROOT / "examples" / "refunds.jsonl"  # 24 hand-written returns/refund messages, 4 labels
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
BASE_QUESTION = "Hi, my parcel has not arrived yet. What can I do?"
PET_MESSAGE = "the bag of kibble arrived ripped open and half the food is on the porch"


def first_row(file: Path) -> str:
    import json

    return json.loads(file.read_text().splitlines()[0])["input"]


PET_EXAMPLE = first_row(ROOT / "examples" / "petshop.jsonl")
REFUND_EXAMPLE = first_row(REFUNDS)
PET_STEPS = 16  # the Advanced panel's step count for the pet-shop teach (the recipe's would be 24)


def find_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (CI runs as root); skip only when that cannot work."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("no chromium and no apt-get to install it: install Chromium and put it on PATH")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and shutil.which("sudo") is None:
        pytest.skip("no chromium, and installing it needs root: run `apt-get install chromium` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [[*sudo, "apt-get", "update", "-qq"], [*sudo, "apt-get", "install", "-y", "-qq", "chromium"]]
    for step in steps:
        result = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.skip(
                f"could not install chromium ({' '.join(step)} exited {result.returncode}: "
                f"{result.stderr.strip()[-300:]})"
            )
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no `chromium` is on PATH")
    return found


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is in the dev extra: pip install -e '.[dev]'"
    )
    chromium = find_chromium()
    with sync_api.sync_playwright() as playwright:
        # A persistent context is how playwright takes a user-data dir: a new empty one, so no profile leaks in.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=VIEWPORT,
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def lab_url(all_threads, tmp_path_factory):
    from adapters import AdapterStore, load_base
    from serve.server import running, server_app
    from serve.engine import Engine

    engine = Engine(load_base(), AdapterStore(tmp_path_factory.mktemp("store")), max_new_tokens=48)
    with running(server_app(engine)) as url:
        yield url
    engine.close()


def settled(locator, quiet: float = 2.0, timeout: float = 180.0) -> str:
    """The locator's text once it has stopped changing for `quiet` seconds (a streamed answer has finished)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if text != last:
            last, since = text, time.monotonic()
        elif text and time.monotonic() - since >= quiet:
            return text
        time.sleep(0.25)
    raise AssertionError(f"the text did not settle within {timeout} s: {last!r}")


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def drive(page, url: str, shots: Path) -> dict[str, str]:
    """Teach the pet-shop scenario (a set step count from the Advanced panel; the loss plot while it trains), chat with
    the base model and with it, compare; a screenshot per tab."""
    page.goto(url)
    page.get_by_role("tab", name="Teach a scenario").click()
    page.locator("#teach-example-petshop").click()
    # The form is filled by a server event: Adapt sends the fields as they are when clicked, so wait for them.
    page.locator("#teach-table").get_by_text(PET_EXAMPLE).first.wait_for(timeout=60_000)
    page.locator("#teach-advanced").get_by_text("Advanced").click()
    page.locator("#teach-steps").get_by_role("spinbutton").fill(str(PET_STEPS))
    page.locator("#teach-adapt").click()
    result = page.locator("#teach-result")
    phases, deadline, shot = set(), time.monotonic() + 1800, False  # minutes when other jobs share the cores
    while True:  # the named phases as they pass; a screenshot with the loss plot growing
        text = result.inner_text()
        if text.startswith("Saved"):
            break
        assert time.monotonic() < deadline, f"adapting did not finish: {text!r}"
        phases.add(text.split(" (")[0].split(":")[0])
        if not shot and re.search(r"Training: step ([4-9]|\d\d) of", text):
            page.locator("#teach-loss").wait_for(timeout=30_000)
            time.sleep(1)  # the plot draws
            page.screenshot(path=str(shots / "lab-teaching.png"), full_page=True)
            shot = True
        time.sleep(0.2)
    teach_text = result.inner_text()
    page.screenshot(path=str(shots / "lab-teach.png"), full_page=True)

    page.get_by_role("tab", name="Chat").click()
    choose(page, "Scenario (adapter)", "base")
    page.locator("#chat-message").get_by_role("textbox").fill(BASE_QUESTION)
    page.locator("#chat-send").click()
    bot = page.locator(".message-row.bot-row, .bot").last
    bot.wait_for(timeout=120_000)
    base_answer = settled(bot)
    choose(page, "Scenario (adapter)", "petshop-intents")
    page.locator("#chat-message").get_by_role("textbox").fill(PET_MESSAGE)
    page.locator("#chat-send").click()
    page.get_by_text("Intent:").or_(page.get_by_text("Handing over to a human")).first.wait_for(timeout=120_000)
    pet_answer = settled(page.locator(".message-row.bot-row, .bot").last)
    page.locator("#chat-confidence").wait_for(timeout=30_000)  # beside the conversation
    page.screenshot(path=str(shots / "lab-chat.png"), full_page=True)

    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-text").get_by_role("textbox").fill(PET_MESSAGE)
    page.locator("#compare-go").click()
    page.get_by_text("Intent:").nth(2).wait_for(timeout=120_000)
    time.sleep(1)  # the bars animate in
    page.screenshot(path=str(shots / "lab-compare.png"), full_page=True)
    return {
        "teach": teach_text,
        "phases": " | ".join(sorted(phases)),
        "base": base_answer,
        "pet": pet_answer,
        "refunds": teach_refunds(page, shots),
        **download_and_delete(page, shots),
    }


def teach_refunds(page, shots: Path) -> str:
    """Upload the 24 refund messages (they fill the table), teach them; the Teach tab's text once saved."""
    page.get_by_role("tab", name="Teach a scenario").click()
    page.locator("#teach-name").get_by_role("textbox").fill("acme-refunds")
    page.locator("#teach-labels").get_by_role("textbox").fill(
        "refund_status, return_item, damaged_item, where_is_my_order"
    )
    page.locator("#teach-instruction").get_by_role("textbox").fill("Classify the customer's message.")
    page.locator("#teach-steps").get_by_role("spinbutton").fill("0")  # the recipe's budget again
    page.locator("#teach-upload").locator("input[type=file]").set_input_files(str(REFUNDS))
    page.locator("#teach-upload-note").get_by_text("24 examples from").wait_for(timeout=60_000)
    page.locator("#teach-table").get_by_text(REFUND_EXAMPLE).first.wait_for(timeout=30_000)  # the preview
    page.screenshot(path=str(shots / "lab-preview.png"), full_page=True)
    page.locator("#teach-adapt").click()
    result = page.locator("#teach-result")
    result.get_by_text("Saved acme-refunds").or_(result.get_by_text("Saved **acme-refunds**")).first.wait_for(
        timeout=3_600_000  # two minutes alone on 2 cores; half an hour was seen with other jobs on them
    )
    return result.inner_text()


def download_and_delete(page, shots: Path) -> dict[str, str]:
    """Download the refunds adapter as a zip from the Adapters tab, then delete it."""
    import zipfile

    page.get_by_role("tab", name="Adapters").click()
    page.locator("#adapters-refresh").click()
    page.get_by_label("Adapter", exact=True).click()
    page.get_by_role("option", name="acme-refunds", exact=True).click()
    button = page.locator("#adapters-download")
    button.get_by_text("Download acme-refunds.zip").wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as download:
        button.click()
    with zipfile.ZipFile(download.value.path()) as archive:
        files = " ".join(sorted(archive.namelist()))
    page.screenshot(path=str(shots / "lab-adapters.png"), full_page=True)
    page.locator("#adapters-delete").click()
    page.locator("#adapters-delete-confirm").click()
    page.locator("#adapters-info").get_by_text("Deleted").wait_for(timeout=60_000)
    table = page.locator("#adapters-table")  # its cells are rendered twice, one copy hidden: read its text
    deadline = time.monotonic() + 60
    while "acme-refunds" in table.inner_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    return {"zip": files, "after delete": table.inner_text()}


def held_out_counts(summary: str) -> tuple[int, int]:
    """(right before, right after) from the Teach tab's "| n | 50% (2 of 4) | 75% (3 of 4) |" row."""
    before, after = re.findall(r"\((\d+) of \d+\)", summary)[:2]
    return int(before), int(after)


def test_lab_in_a_browser(browser_context, lab_url):
    DOCS.mkdir(exist_ok=True)
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    seen = drive(page, lab_url, DOCS)
    assert "accuracy before" in seen["teach"] and "petshop-intents" in seen["teach"]
    assert f"{PET_STEPS} steps in" in seen["teach"]  # the Advanced panel's step count ("8 of 16": stopped early)
    assert {"Scoring before", "Training"} <= set(seen["phases"].split(" | ")), seen["phases"]
    assert "acme-refunds/adapter_model.safetensors" in seen["zip"] and "acme-refunds/shoplora.json" in seen["zip"]
    assert "acme-refunds" not in seen["after delete"] and "petshop-intents" in seen["after delete"]
    assert len(seen["base"].strip()) > 10  # the base model's streamed answer
    assert "Intent:" in seen["pet"] or "Handing over" in seen["pet"]
    right_before, right_after = held_out_counts(seen["refunds"])
    assert right_after >= right_before  # the kept weights never do worse on the held-out messages than the init
    # A page error was Gradio's plot reading `null.offsetWidth` when the Teach tab hid its drawn loss plot for a new
    # teach (serve.teach_report.TeachProgress.plot); the lab no longer hides it.
    assert not errors, errors
    # No error reached any tab as a traceback (the lab shows messages: serve.events); where one did, its context is
    # what the failure shows (the earlier `... and not errors` showed the whole page and left unclear which failed).
    html = page.content()
    assert "Traceback" not in html, html[max(0, html.find("Traceback") - 1000) :][:3000]
    for name in ("lab-teaching", "lab-teach", "lab-preview", "lab-chat", "lab-compare", "lab-adapters"):
        assert (DOCS / f"{name}.png").stat().st_size > 10_000
