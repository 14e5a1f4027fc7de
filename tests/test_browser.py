"""The dashboard in a real browser: `streamlit run` driven through Debian's chromium by Playwright.

Screenshots of every page land in test-artifacts/screenshots/ (look at them: a page can pass its
checks and still look wrong). The browser is the system's /usr/bin/chromium, never a download;
without it the tests are skipped, except in CI (env CI set), where they fail.
"""

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from appserver import CHROMIUM_FLAGS, PROJECT, AppServer
from conftest import launch_browser

ARTIFACTS = PROJECT / "test-artifacts"
SHOTS = ARTIFACTS / "screenshots"
FLAGS = [
    *CHROMIUM_FLAGS,
    # a fake camera that needs no permission prompt: it streams a test pattern
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser(FLAGS)


@pytest.fixture(scope="module")
def server(trained_run, facemask_dir, tmp_path_factory):
    """`streamlit run streamlit_app.py` on a free port, with the 1-epoch run's model as the active model."""
    models_dir = tmp_path_factory.mktemp("models")
    shutil.copy(trained_run / "model.keras", models_dir / "maskdet.keras")
    env = {
        "MASKDET_DATA": str(facemask_dir),
        "MASKDET_RUNS": str(trained_run.parent),
        "MASKDET_MODELS": str(models_dir),
    }
    with AppServer(env=env, log=tmp_path_factory.mktemp("server") / "streamlit.log") as app_server:
        app_server.models_dir = models_dir
        yield app_server


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, permissions=["camera"])
    p = context.new_page()
    p.set_default_timeout(180_000)  # a cold page scans 11,616 images or imports TensorFlow
    yield p
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:  # what the page and the server showed, for the failure report
        failures = ARTIFACTS / "failures"
        failures.mkdir(parents=True, exist_ok=True)
        p.screenshot(path=str(failures / f"{request.node.name}.png"), full_page=True)
        if "server" in request.fixturenames:
            log = request.getfixturevalue("server").log_text()
            (failures / f"{request.node.name}.log").write_text(log)
            print(f"server log, last lines:\n{log[-4000:]}")
        print(f"page text:\n{main_text(p)[-3000:]}")
    context.close()


def settle(page):
    """Wait until the script run is over and every element and picture has arrived."""
    page.wait_for_timeout(400)
    page.wait_for_selector(IDLE)
    page.wait_for_function("!document.querySelector('[data-testid=stMain] [data-testid=stSkeleton]')")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE)


def shot(page, name: str):
    """Save a screenshot, after checking the page shows no Python exception."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    errors = page.locator("[data-testid=stException]").all_inner_texts()
    assert not errors, f"{name}: {errors[0][:2000]}"


def main_text(page) -> str:
    return page.locator("[data-testid=stMain]").inner_text()


def test_a_fresh_server_answers_an_uploaded_photo_on_the_classify_page(page, server, facemask_dir):
    # A deep link on a fresh server: the page must still get the shared sidebar (no pages/ auto-discovery).
    page.goto(f"{server.url}/classify")
    page.wait_for_selector("h1:has-text('Classify')")
    settle(page)
    assert page.get_by_role("textbox", name="Dataset folder").input_value() == str(facemask_dir)
    face = sorted((facemask_dir / "with_mask").glob("*.jpg"))[0]
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(face))
    # the server's model is the tests' 1-epoch run: its answer may be "uncertain" (P(mask) in the middle)
    verdict = page.locator("[data-testid=stMain] h2").filter(has_text=re.compile("mask|uncertain")).first
    verdict.wait_for()
    answered = time.perf_counter() - server.started
    assert verdict.inner_text().strip() in ("with mask", "without mask", "uncertain")
    page.get_by_text("P(mask) =").first.wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps({"streamlit_run_to_first_classification_s": answered}))
    print(f"streamlit run -> first classification answered: {answered:.1f} s")
    settle(page)
    shot(page, "classify")

    # The fake camera streams a test pattern, not a face: classified whole, it still gets a label (or "uncertain").
    page.get_by_text("Whole image is one face").click()
    settle(page)
    page.get_by_text("Use the camera").click()
    # a click before the camera streams takes no picture: wait for the video to show frames
    page.wait_for_function(
        "Array.from(document.querySelectorAll('video')).some(v => v.readyState >= 2 && v.videoWidth > 0)"
    )
    settle(page)
    page.get_by_role("button", name="Take Photo").click()
    page.locator("[data-testid=stMain] h2").filter(has_text=re.compile("mask|uncertain")).nth(1).wait_for()
    assert "camera photo" in main_text(page)
    settle(page)
    shot(page, "classify-camera")


def test_every_page_draws_in_the_browser(page, server):
    page.goto(server.url)
    page.wait_for_selector("h1:has-text('Dataset')")
    settle(page)
    page.locator("[data-testid=stMetricValue]").first.wait_for()
    assert "11,616" in main_text(page)
    shot(page, "dataset")
    page.get_by_role("tab", name="Data health").click()
    page.get_by_text("image width alone tells").first.wait_for()
    settle(page)
    assert page.locator("[data-testid=stMain] [data-testid=stImage] img").count() == 35  # the first group
    shot(page, "dataset-health")
    page.get_by_role("tab", name="Browse images").click()
    page.get_by_text("showing 1-36 of 11,616").wait_for()
    settle(page)
    assert page.locator("[data-testid=stMain] [data-testid=stImage] img").count() == 36
    shot(page, "dataset-browse")

    for name, expect in (("Train", "Latest run"), ("Evaluate", "Decision threshold"), ("Classify", "Photos")):
        page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=name).click()
        page.wait_for_selector(f"h1:has-text('{name}')")
        page.get_by_text(expect).first.wait_for()
        settle(page)
        shot(page, {"Classify": "classify-start"}.get(name, name.lower()))
    assert page.locator("[data-testid=stSidebarNav] a").count() == 5  # Dataset, Train, Evaluate, Classify, Video


def step_of(page) -> int:
    """The live run's step as the Train page shows it ("step N/M")."""
    text = page.locator("[data-testid=stMain]").inner_text()
    return int(re.search(r"step (\d+)/\d+", text).group(1))


def test_a_run_started_in_the_app_survives_an_app_restart_and_the_new_app_follows_it(browser, tmp_path):
    from conftest import make_dataset
    from maskdet import runs

    data_dir = make_dataset(tmp_path / "data", per_class=40)
    runs_dir = tmp_path / "runs"
    env = {"MASKDET_DATA": str(data_dir), "MASKDET_RUNS": str(runs_dir), "MASKDET_MODELS": str(tmp_path / "models")}
    first = AppServer(env=env, log=tmp_path / "first.log").start()
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1800})
        page = context.new_page()
        page.set_default_timeout(180_000)
        page.goto(f"{first.url}/train")
        page.wait_for_selector("h1:has-text('Train')")
        settle(page)
        # far longer than the test: it is cancelled below
        page.get_by_role("spinbutton", name="Epochs", exact=True).fill("400")
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Current run:").wait_for()
        run_dir = runs.list_runs(runs_dir)[0]["path"]
        deadline = time.time() + 240
        while runs.status(run_dir)["state"] != "running" or not runs.status(run_dir).get("completed_epochs"):
            assert time.time() < deadline and runs.status(run_dir)["state"] in ("queued", "running"), runs.status(
                run_dir
            )
            time.sleep(1)
        context.close()
    finally:
        first.kill()  # the app dies as a crash would end it (SIGKILL), with the run going

    status = runs.status(run_dir)
    assert status["state"] == "running", status  # the run is its own process: it goes on without the app
    step = status["step"]
    deadline = time.time() + 60
    while runs.status(run_dir)["step"] == step:
        assert time.time() < deadline, "the run stopped making progress when the app died"
        time.sleep(1)

    with AppServer(env=env, log=tmp_path / "second.log") as second:
        context = browser.new_context(viewport={"width": 1400, "height": 1800})
        page = context.new_page()
        page.set_default_timeout(180_000)
        page.goto(f"{second.url}/train")
        page.get_by_text(f"Current run: {Path(run_dir).name}").wait_for()
        page.get_by_text("running").first.wait_for()
        seen = step_of(page)
        page.wait_for_function(  # the page follows the live run: its step moves on without a reload
            f"(() => {{ const m = document.querySelector('[data-testid=stMain]').innerText.match(/step (\\d+)\\//);"
            f" return m && Number(m[1]) > {seen}; }})()",
            timeout=90_000,
        )
        settle(page)
        shot(page, "train-after-restart")
        page.get_by_role("button", name="Cancel run").click()
        page.get_by_text("cancelled").first.wait_for(timeout=120_000)
        settle(page)
        context.close()
    status = runs.status(run_dir)
    assert status["state"] == "cancelled" and status["has_model"], status


def test_an_oversized_upload_is_refused_next_to_the_uploader_and_the_next_photo_still_works(
    page, server, facemask_dir, tmp_path
):
    big = tmp_path / "huge-photo.jpg"
    big.write_bytes(os.urandom(25 * 1024 * 1024))  # over the 20 MB limit
    page.goto(f"{server.url}/classify")
    page.wait_for_selector("h1:has-text('Classify')")
    settle(page)
    uploader = page.locator("[data-testid=stFileUploaderDropzoneInput]")
    uploader.set_input_files(str(big))
    refusal = page.locator("[data-testid=stFileUploader]").get_by_text("File must be 20.0MB or smaller")
    refusal.wait_for()
    settle(page)
    shot(page, "classify-too-large")
    face = sorted((facemask_dir / "without_mask").glob("*.jpg"))[0]
    uploader.set_input_files(str(face))
    page.locator("[data-testid=stMain] h2").filter(has_text=re.compile("mask|uncertain")).first.wait_for()
    assert refusal.is_visible()  # the refusal stays next to its file


def test_run_details_follow_a_run_from_queued_to_running_to_done(browser, tmp_path):
    """The run details must not keep saying "(queued)" once the run trains or has finished: they lie outside
    the live fragment, and the browser kept the run picker's first label even after the page was redrawn."""
    from maskdet import files

    run_dir = tmp_path / "runs" / "20260101-000000-beef"
    run_dir.mkdir(parents=True)
    files.write_json_atomic(run_dir / "params.json", {"data": str(tmp_path), "epochs": 1})
    status = {"run_id": run_dir.name, "state": "queued", "epochs": 1, "pid": os.getpid()}  # a live process
    files.write_json_atomic(run_dir / "status.json", status)
    env = {
        "MASKDET_DATA": str(tmp_path),
        "MASKDET_RUNS": str(tmp_path / "runs"),
        "MASKDET_MODELS": str(tmp_path / "models"),
    }
    with AppServer(env=env, log=tmp_path / "server.log") as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1800})
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{server.url}/train")
        page.get_by_role("heading", name="Run details").wait_for()
        settle(page)
        details = page.get_by_role("combobox", name="Run", exact=True)
        main = page.locator("[data-testid=stMain]")
        assert details.input_value() == run_dir.name and f"Run {run_dir.name}: queued" in main.inner_text()

        def shows(state: str) -> bool:  # the fragment looks every 2 s: give it a few turns
            for _ in range(20):
                if f"Run {run_dir.name}: {state}" in main.inner_text():
                    return "(queued)" not in details.input_value()
                page.wait_for_timeout(500)
            return False

        files.write_json_atomic(
            run_dir / "status.json", {**status, "state": "running", "step": 1, "steps_per_epoch": 9}
        )
        assert shows("running"), details.input_value()
        files.write_json_atomic(run_dir / "status.json", {**status, "state": "done", "completed_epochs": 1})
        assert shows("done"), details.input_value()
        context.close()


def test_evaluate_shows_each_error_as_its_own_file_beside_its_heat_map_with_its_whole_name(browser, tmp_path):
    """Issue 16, item 12: not a 70 px thumbnail with a cut name, whose fullscreen view is a blurry enlargement
    of the 100 px model input, but the file itself at its own size, its Grad-CAM at that size beside it."""
    from PIL import Image

    from conftest import make_dataset
    from maskdet import backbones, model, train

    data = make_dataset(tmp_path / "faces", per_class=60)  # both classes in validation: an untrained model errs
    for i, f in enumerate(sorted(data.rglob("*.jpg"))):  # names as long as facemask-12k's, sizes of their own
        Image.open(f).resize((90 + i % 7 * 5, 110)).save(f.with_name(f"validation_Augmented_{i:03d}_4470985.jpg"))
        f.unlink()
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    train.save_serving_model(model.make_model(backbones.SCRATCH, alpha=0.25), models_dir / "maskdet.keras")
    env = {"MASKDET_DATA": str(data), "MASKDET_RUNS": str(tmp_path / "runs"), "MASKDET_MODELS": str(models_dir)}
    with AppServer(env=env, log=tmp_path / "server.log") as server:
        context = browser.new_context(viewport={"width": 1600, "height": 1400})
        page = context.new_page()
        page.set_default_timeout(180_000)
        page.goto(f"{server.url}/evaluate")
        page.get_by_text("Errors (").first.wait_for()
        settle(page)
        shot(page, "evaluate-errors")
        errors = main_text(page).split("Errors (", 1)[1]
        name = re.search(r"validation_Augmented_\d{3}_4470985\.jpg", errors).group(0)  # the first card's, whole
        original = next(data.rglob(name))
        main = page.locator("[data-testid=stMain]")
        picture = main.locator("[data-testid=stImage]").filter(has_text="the file").first.locator("img")
        heat_map = main.locator("[data-testid=stImage]").filter(has_text="Grad-CAM").first.locator("img")
        served = page.request.get(picture.get_attribute("src")).body()
        assert served == original.read_bytes()  # the file itself, nothing resampled
        width, height = Image.open(original).size
        for shown in (picture, heat_map):  # at the file's own size, the heat map too
            assert shown.evaluate("i => [i.naturalWidth, i.naturalHeight, i.clientWidth]") == [width, height, width]
        context.close()
