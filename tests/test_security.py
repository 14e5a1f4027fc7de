"""Only its user drives the workbench (docs/security.md): the server listens on loopback unless told
otherwise, a shared server asks for the access token or serves Classify only, folders stay under the
allowed roots, run ids are names, and one visitor cannot take the classifier from the others.

Real servers (`streamlit run`, checked through /proc/net/tcp and by connecting to this machine's own
addresses only), real AppTest sessions of the app, and the core's functions."""

import fcntl
import hmac
import ipaddress
import shutil
import socket
import struct
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from appserver import CHROMIUM_FLAGS, PROJECT, AppServer
from conftest import cli, launch_browser, make_dataset, synthetic_face
from maskdet import access, config, files, models, runs

APP = "../streamlit_app.py"  # AppTest resolves it against this file
TIMEOUT = 120  # a page imports TensorFlow on its first run
TOKEN = "correct-horse-battery-staple-42"


# ---------------------------------------------------------------- helpers


def listening(port: int) -> list[ipaddress._BaseAddress]:
    """The local addresses of the sockets listening on TCP `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state != "0A" or int(hexport, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr)  # the kernel writes each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            found.append(ipaddress.ip_address(raw))
    return found


def own_addresses() -> list[str]:
    """This machine's own non-loopback IPv4 addresses (from its interfaces; nothing is sent anywhere)."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
            except OSError:
                continue
            ip = socket.inet_ntoa(packed[20:24])
            if not ipaddress.ip_address(ip).is_loopback:
                out.append(ip)
    return out


def answers(host: str, port: int) -> bool:
    """Whether the app's health endpoint answers at host:port."""
    try:
        return urllib.request.urlopen(f"http://{host}:{port}/_stcore/health", timeout=5).read() == b"ok"
    except OSError:
        return False


def everything(at: AppTest) -> str:
    """All an AppTest session was sent (every element's message), as one string."""

    def walk(node):
        yield node
        for child in (getattr(node, "children", None) or {}).values():
            yield from walk(child)

    return "\n".join(str(getattr(n, "proto", "")) for root in (at.main, at.sidebar) for n in walk(root))


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "caption", "error", "warning", "info", "success", "title")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def no_exceptions(at: AppTest):
    assert not at.exception, "\n".join(e.value + "\n" + "\n".join(e.stack_trace) for e in at.exception)


@pytest.fixture(autouse=True, scope="module")
def fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def shared(monkeypatch):
    """The app as a server started with `--server.address 0.0.0.0` sees it (AppTest runs in this process)."""
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    monkeypatch.delenv("MASKDET_TOKEN", raising=False)
    monkeypatch.delenv("MASKDET_SHARED", raising=False)
    yield
    st_config.set_option("server.address", before)


@pytest.fixture
def models_dir(no_models):
    """An empty models folder as the active-model location."""
    return no_models


def fake_run(runs_dir: Path, run_id: str, model: bytes = b"model") -> Path:
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    files.write_json_atomic(run_dir / "params.json", {"data": "x", "epochs": 1, "alpha": 0.25})
    files.write_json_atomic(run_dir / "status.json", {"run_id": run_id, "state": "done", "completed_epochs": 1})
    (run_dir / "model.keras").write_bytes(model)
    return run_dir


def app(page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(f"app_pages/{page}.py")
    for key, value in state.items():
        at.session_state[key] = value
    return at


# ---------------------------------------------------------------- the server listens on loopback by default


@pytest.mark.slow
def test_the_server_started_as_the_readme_says_listens_on_loopback_only(tmp_path):
    env = {"MASKDET_MODELS": str(tmp_path / "models")}
    with AppServer(env=env, address=None, log=tmp_path / "local.log") as server:  # `streamlit run streamlit_app.py`
        bound = listening(server.port)
        assert bound and all(a.is_loopback for a in bound), bound
        assert answers("127.0.0.1", server.port) and answers("localhost", server.port)  # http://localhost:8501
        for ip in own_addresses():  # this machine's own network address: nobody else's
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((ip, server.port), timeout=5).close()
        assert "Network URL" not in server.log_text()
    # the check above tells the difference: the README's way to share listens on every interface
    with AppServer(env={**env, "MASKDET_TOKEN": TOKEN}, address="0.0.0.0", log=tmp_path / "shared.log") as server:
        bound = listening(server.port)
        assert any(a.is_unspecified for a in bound), bound
        for ip in own_addresses():
            assert answers(ip, server.port)


# ---------------------------------------------------------------- the mode


@pytest.mark.parametrize(
    "address, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        (None, False),
        ("", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.2", False),
        ("unix:///tmp/maskdet.sock", False),
        ("workbench.example.org", False),
    ],
)
def test_the_mode_is_decided_from_the_servers_configured_address(address, loopback, monkeypatch):
    monkeypatch.delenv("MASKDET_SHARED", raising=False)
    assert access.is_loopback(address) is loopback
    assert access.decide(address).mode == ("local" if loopback else "classify-only")
    assert access.decide(address, TOKEN).mode == ("local" if loopback else "token")
    monkeypatch.setenv("MASKDET_SHARED", "1")  # behind a reverse proxy: shared although on loopback
    assert access.decide(address).mode == "classify-only"


def test_the_token_comes_from_the_environment_or_secrets_and_is_compared_in_constant_time(monkeypatch):
    assert access.token_from({"MASKDET_TOKEN": " env-token "}, {"MASKDET_TOKEN": "secret-token"}) == "env-token"
    assert access.token_from({}, {"MASKDET_TOKEN": "secret-token"}) == "secret-token"
    assert access.token_from({"MASKDET_TOKEN": "  "}, {}) is None  # blank is no token: classify-only
    acc = access.decide("0.0.0.0", TOKEN)
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(access.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    assert acc.check_token(TOKEN) and not acc.check_token(TOKEN[:-1]) and not acc.check_token("")
    assert not acc.check_token(None) and len(compared) == 3
    assert acc.signed_in(access.fingerprint(TOKEN)) and not acc.signed_in(None)
    assert not acc.signed_in(access.fingerprint("an old token"))  # a new token signs everybody out
    assert TOKEN not in repr(acc) and TOKEN not in access.fingerprint(TOKEN)


def test_classify_only_refuses_everything_but_classifying():
    acc = access.decide("0.0.0.0", None)
    acc.require("classify")
    for action in ("browse", "train", "evaluate", "promote", "choose_folders"):
        assert not acc.allows(action)
        with pytest.raises(access.AccessDenied, match="Classify page only"):
            acc.require(action)
    local = access.decide("127.0.0.1", None)
    assert all(local.allows(a) for a in access.ACTIONS)


# ---------------------------------------------------------------- the token in the app


def test_a_shared_server_with_a_token_shows_only_the_token_form_until_it_is_given(
    shared, monkeypatch, tmp_path, models_dir
):
    monkeypatch.setenv("MASKDET_TOKEN", TOKEN)
    data_dir = make_dataset(tmp_path / "private-faces", per_class=4)
    fake_run(tmp_path / "runs", "20260101-000000-beef")
    for page in ("dataset", "train", "evaluate", "classify"):  # a deep link to any page
        at = app(page, data_dir=str(data_dir), runs_dir=str(tmp_path / "runs")).run()
        no_exceptions(at)
        sent = everything(at)
        assert [t.label for t in at.text_input] == ["Access token"] and at.text_input[0].proto.type == 1  # password
        assert [t.value for t in at.title] == ["maskdet"] and "access token" in texts(at)
        assert not at.sidebar.children or all(not c.children for c in at.sidebar.children.values())
        for secret in (str(data_dir), "private-faces", "20260101-000000-beef", str(models_dir), "with_mask"):
            assert secret not in sent, (page, secret)

    at.text_input(key="access_token_input").input("guess")
    at.button[0].click().run()
    assert "not the access token" in texts(at) and [t.value for t in at.title] == ["maskdet"]

    at.text_input(key="access_token_input").input(TOKEN)
    at.button[0].click().run()
    no_exceptions(at)
    assert [t.value for t in at.title] == ["Classify"]  # the page the deep link asked for
    assert "every visitor needs the access token" in texts(at)
    assert "Dataset folder" in [t.label for t in at.text_input]  # the whole workbench
    assert TOKEN not in everything(at) and TOKEN not in repr(at.session_state)
    at.switch_page("app_pages/train.py").run()
    no_exceptions(at)
    assert "Start training" in [b.label for b in at.button] and "20260101-000000-beef" in everything(at)

    at.button(key="sign_out").click().run()
    assert [t.label for t in at.text_input] == ["Access token"] and "20260101-000000-beef" not in everything(at)


def test_the_token_can_come_from_streamlit_secrets(shared, models_dir):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.secrets["MASKDET_TOKEN"] = TOKEN
    at.switch_page("app_pages/classify.py")
    at.run()
    assert [t.label for t in at.text_input] == ["Access token"]
    at.text_input(key="access_token_input").input(TOKEN)
    at.button[0].click().run()
    no_exceptions(at)
    assert [t.value for t in at.title] == ["Classify"]


# ---------------------------------------------------------------- classify-only


def test_a_shared_server_without_a_token_serves_classify_only(shared, tmp_path, models_dir):
    data_dir = make_dataset(tmp_path / "private-faces", per_class=4)
    run_dir = fake_run(tmp_path / "runs", "20260101-000000-beef")
    for page in ("dataset", "train", "evaluate", "classify"):  # deep links land on Classify
        at = app(
            page, data_dir=str(data_dir), runs_dir=str(tmp_path / "runs"), model_path=str(run_dir / "model.keras")
        ).run()
        no_exceptions(at)
        assert [t.value for t in at.title] == ["Classify"], page
        assert "Classify only, read-only" in texts(at)
        assert not at.text_input  # no dataset or runs folder to type
        assert "Start training" not in [b.label for b in at.button]
        sent = everything(at)
        for secret in (str(data_dir), "private-faces", "20260101-000000-beef"):  # no dataset, no runs listed
            assert secret not in sent, (page, secret)
        assert "owner has to put one in place" in texts(at)  # the model picker offers the models folder only
    for page in ("dataset", "train", "evaluate"):  # not pages of this server at all
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"app_pages/{page}.py")


def _page_helpers(folder: str):
    """Runs as an AppTest script: the pages' own guards called directly, as a page not in the menu would."""
    import streamlit as st

    from app_pages import loaders, permissions
    from maskdet import dataset

    try:
        loaders.load_table(folder)
        st.success("dataset read")
    except dataset.DatasetError as exc:
        st.error(f"dataset: {exc}")
    for action in ("promote", "train"):
        permissions.require(action)  # stops the script with its message
        st.success(f"{action} allowed")


@pytest.mark.parametrize("address, allowed", [("0.0.0.0", False), ("127.0.0.1", True)])
def test_the_pages_own_guards_refuse_browsing_training_and_promotion(address, allowed, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT))
    monkeypatch.delenv("MASKDET_TOKEN", raising=False)
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", address)
    try:
        data_dir = make_dataset(tmp_path / "faces", per_class=4)
        at = AppTest.from_function(_page_helpers, args=(str(data_dir),), default_timeout=TIMEOUT).run()
    finally:
        st_config.set_option("server.address", before)
    no_exceptions(at)
    said = texts(at)
    if allowed:
        assert "dataset read" in said and "promote allowed" in said and "train allowed" in said
    else:
        assert "dataset: Browsing datasets is switched off" in said
        assert "Promoting or rolling back models is switched off" in said
        assert "promote allowed" not in said and "train allowed" not in said


# ---------------------------------------------------------------- folders


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """One allowed root with a dataset in it, and a private folder beside it."""
    allowed, private = tmp_path / "allowed", tmp_path / "private"
    make_dataset(allowed / "faces", per_class=2)
    make_dataset(private / "faces", per_class=2)
    monkeypatch.setenv("MASKDET_DATA_ROOTS", str(allowed))
    for name in ("DATA_DIR", "RUNS_DIR", "MODELS_DIR"):  # the configured folders are roots too: keep them inside
        monkeypatch.setattr(config, name, allowed / name.lower())
    return allowed, private


def test_folders_outside_the_roots_through_dotdot_or_a_symlink_are_refused(roots, tmp_path, monkeypatch):
    allowed, private = roots
    assert access.data_roots() == [allowed.resolve()]
    assert access.confine(allowed / "faces") == (allowed / "faces").resolve()
    assert access.confine(allowed / "not-yet") == (allowed / "not-yet").resolve()  # the reader says it is missing
    assert access.confine(allowed / "faces" / ".." / "faces") == (allowed / "faces").resolve()
    (allowed / "inside-link").symlink_to(allowed / "faces")
    assert access.confine(allowed / "inside-link") == (allowed / "faces").resolve()

    with pytest.raises(access.PathRefused, match="outside the folders this app may read"):
        access.confine(private / "faces")
    with pytest.raises(access.PathRefused, match=r"through '\.\.'"):
        access.confine(f"{allowed}/../private/faces")
    (allowed / "escape").symlink_to(private)
    with pytest.raises(access.PathRefused, match="through a symlink"):
        access.confine(allowed / "escape" / "faces")
    (allowed / "loop").symlink_to(allowed / "loop")
    with pytest.raises(access.PathRefused):
        access.confine(allowed / "loop")
    for bad in ("/", "/etc", "~", "", "\0"):
        with pytest.raises(access.PathRefused):
            access.confine(bad)

    monkeypatch.setattr(config, "DATA_DIR", private / "faces")  # MASKDET_DATA is always readable
    assert access.confine(private / "faces") == (private / "faces").resolve()


def test_the_app_refuses_a_dataset_or_runs_folder_outside_the_roots(roots, tmp_path):
    allowed, private = roots
    fake_run(private / "runs", "20260101-000000-beef")
    for folder in (private / "faces", f"{allowed}/../private/faces", allowed / "escape" / "faces"):
        if not (allowed / "escape").exists():
            (allowed / "escape").symlink_to(private)
        at = app("dataset", data_dir=str(folder), runs_dir=str(private / "runs")).run()
        no_exceptions(at)
        said = texts(at)
        assert "outside the folders this app may read" in said and "cannot be used as a dataset" in said
        assert "Images:" not in said and not at.get("image")
        assert "Runs folder refused" in said and "20260101-000000-beef" not in everything(at)
    at = app("train", data_dir=str(private / "faces"), runs_dir=str(private / "runs")).run()
    at.number_input(key="f_epochs").set_value(1)
    next(b for b in at.button if b.label == "Start training").click().run()
    no_exceptions(at)
    assert "Could not start the run" in texts(at) and "outside the folders" in texts(at)
    assert not (private / "runs" / ".lock").exists() and not runs.list_runs(config.RUNS_DIR)
    at = app("dataset", data_dir=str(allowed / "faces"), runs_dir=str(allowed / "runs")).run()  # inside: read
    no_exceptions(at)
    assert "With mask: 2" in [f"{m.label}: {m.value}" for m in at.metric]
    assert "refused" not in texts(at)


def test_the_kaggle_download_writes_only_under_the_roots(roots, monkeypatch):
    from maskdet import kaggle

    allowed, private = roots
    asked = []
    monkeypatch.setattr(kaggle, "download", lambda dest, username, key, **how: asked.append(dest) or Path(dest))
    at = app("dataset", data_dir=str(allowed / "faces"), runs_dir=str(allowed / "runs")).run()
    at.text_input(key="kaggle_user").input("someone")
    at.text_input(key="kaggle_key").input("key")
    dest = next(t for t in at.text_input if t.label == "Download into")
    dest.input(str(private / "downloads"))
    next(b for b in at.button if b.label == "Download").click().run()
    no_exceptions(at)
    assert "Download folder refused" in texts(at) and asked == []
    next(t for t in at.text_input if t.label == "Download into").input(str(allowed / "downloads"))
    next(b for b in at.button if b.label == "Download").click().run()
    no_exceptions(at)
    assert asked == [str((allowed / "downloads").resolve())]


# ---------------------------------------------------------------- run ids

BAD_IDS = ["../victim", "..", "a/b", "a\\b", "/etc", ".lock", "x..y", "run id", "run;rm", "", "ü"]


def test_run_ids_that_are_not_plain_names_are_refused(tmp_path):
    runs_dir = tmp_path / "runs"
    good = fake_run(runs_dir, "20260101-000000-aaaa")
    victim = fake_run(tmp_path, "victim")  # a run-like folder outside the runs folder
    assert runs.find("20260101-000000-aaaa", runs_dir) == good
    for bad in BAD_IDS:
        with pytest.raises(runs.RunError, match="not a run id"):
            runs.find(bad, runs_dir)
    with pytest.raises(runs.RunError, match="not a run id"):
        runs.cancel(runs_dir / "..")
    with pytest.raises(runs.RunError, match="not a training run"):
        runs.cancel(tmp_path / "models")  # any folder: no CANCEL file dropped there
    with pytest.raises(models.PromotionError, match="not a run id"):
        models.promote(runs_dir / "..", tmp_path / "models" / "m.keras", tmp_path / "models" / "m.card.json")
    assert not (victim / "CANCEL").exists() and not (tmp_path / "models").exists()


@pytest.mark.slow
def test_the_command_line_refuses_run_ids_with_separators(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    victim = fake_run(tmp_path, "victim")
    for command in ("cancel", "promote"):
        proc = cli(command, "../victim", "--runs-dir", runs_dir, env={"MASKDET_MODELS": str(tmp_path / "models")})
        assert proc.returncode == 2 and "not a run id" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (victim / "CANCEL").exists() and not (tmp_path / "models").exists()


# ---------------------------------------------------------------- limits


def test_at_most_max_classifications_run_at_once():
    now, peak, lock = [0], [0], threading.Lock()

    def classify():
        with access.classification_slot():
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.05)
            with lock:
                now[0] -= 1

    threads = [threading.Thread(target=classify) for _ in range(4 * access.MAX_CLASSIFICATIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == access.MAX_CLASSIFICATIONS

    held = [access.classification_slot() for _ in range(access.MAX_CLASSIFICATIONS)]
    for h in held:
        h.__enter__()
    try:
        started = time.perf_counter()
        with pytest.raises(access.Busy, match="try again in a moment"):
            with access.classification_slot(wait=0.2):
                pass
        assert time.perf_counter() - started < 2
    finally:
        for h in held:
            h.__exit__(None, None, None)
    with access.classification_slot(wait=0):  # all given back
        pass


def test_a_session_has_a_bounded_number_of_uploads():
    seen = []
    assert access.admit_uploads(seen, ["a", "b"], limit=3) == (["a", "b"], [])
    assert access.admit_uploads(seen, ["a", "b", "c", "d", "e"], limit=3) == (["a", "b", "c"], ["d", "e"])
    assert access.admit_uploads(seen, ["a", "f"], limit=3) == (["a"], ["f"])  # seen ones stay, new ones wait
    assert seen == ["a", "b", "c"]


@pytest.mark.slow
def test_the_classify_page_holds_the_upload_limit_and_says_when_the_server_is_busy(tmp_path, models_dir, monkeypatch):
    shutil.copy(PROJECT / "models" / "maskdet.keras", models_dir / "maskdet.keras")  # the shipped model
    monkeypatch.setenv("MASKDET_MAX_UPLOADS", "2")
    monkeypatch.setattr(access, "SLOT_WAIT_S", 0.5)
    faces = []
    for i in range(3):
        path = tmp_path / f"face{i}.jpg"
        synthetic_face(i % 2 == 0, seed=50 + i, size=100).save(path)
        faces.append((path.name, path.read_bytes(), "image/jpeg"))
    at = app("classify", whole_image=True).run()
    no_exceptions(at)
    at.file_uploader(key="photos").set_value(faces).run()
    no_exceptions(at)
    said = texts(at)
    assert said.count("P(mask) = **") == 2
    assert "This session has had its 2 photos classified; not classified: face2.jpg" in said

    at = app("classify", whole_image=True).run()  # another session, while the server's slots are all taken
    held = [access.classification_slot() for _ in range(access.MAX_CLASSIFICATIONS)]
    for h in held:
        h.__enter__()
    try:
        other = tmp_path / "other.jpg"
        synthetic_face(True, seed=99, size=100).save(other)
        at.file_uploader(key="photos").set_value([(other.name, other.read_bytes(), "image/jpeg")]).run()
        no_exceptions(at)
        assert "other.jpg: The server is classifying 4 photos for others right now" in texts(at)
    finally:
        for h in held:
            h.__exit__(None, None, None)
    at.run()  # the busy answer was not cached: the photo is classified now
    no_exceptions(at)
    assert texts(at).count("P(mask) = **") == 1 and "for others right now" not in texts(at)


# ---------------------------------------------------------------- a real browser on a shared server


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser(CHROMIUM_FLAGS)


@pytest.mark.slow
def test_a_browser_on_the_network_needs_the_token_and_without_one_gets_classify_only(browser, tmp_path):
    data_dir = make_dataset(tmp_path / "private-faces", per_class=4)
    env = {
        "MASKDET_MODELS": str(tmp_path / "models"),
        "MASKDET_DATA": str(data_dir),
        "MASKDET_RUNS": str(tmp_path / "runs"),
    }
    host = (own_addresses() or ["127.0.0.1"])[0]  # this machine's own network address, as a visitor reaches it
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        with AppServer(env={**env, "MASKDET_TOKEN": TOKEN}, address="0.0.0.0", log=tmp_path / "token.log") as server:
            page.goto(f"http://{host}:{server.port}/dataset")
            page.get_by_text("asks for an access token").wait_for()
            page.wait_for_timeout(1500)  # let any further output arrive: there must be none
            body = page.locator("body").inner_text()
            assert str(data_dir) not in body and "Dataset folder" not in body and "Images" not in body
            assert page.locator("[data-testid=stSidebarNav]").count() == 0
            page.get_by_label("Access token").fill("guess")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("not the access token").wait_for()
            page.get_by_label("Access token").fill(TOKEN)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("h1:has-text('Dataset')")
            page.get_by_text("every visitor needs the access token").wait_for()
            assert page.locator("[data-testid=stSidebarNav] a").count() == 5  # every page, Video included
        with AppServer(env=env, address="0.0.0.0", log=tmp_path / "open.log") as server:
            page.goto(f"http://{host}:{server.port}/train")
            page.wait_for_selector("h1:has-text('Classify')")
            page.get_by_text("Classify only, read-only").wait_for()
            body = page.locator("body").inner_text()
            assert "Start training" not in body and str(data_dir) not in body and "Dataset folder" not in body
    finally:
        context.close()
