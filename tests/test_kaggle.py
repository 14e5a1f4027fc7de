"""The Kaggle download: a process of its own holds the credentials, reports progress, can be stopped, and
says why it failed. Kaggle itself is played by tests/kaggle_server.py (no network here); the download
process, the `kaggle` library in it and the unpacking are the real ones."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_dataset
from kaggle_server import FakeKaggle, wait_for
from maskdet import config, dataset, kaggle

USER, KEY = "someone", "0123456789abcdef0123456789abcdef"  # a key no real account has
SLUG = config.KAGGLE_DATASET.split("/")[-1]


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    """A small dataset as Kaggle would serve it; no credentials anywhere in this process's environment, and
    Kaggle's first answer (the dataset's size, asked over HTTPS before the download) given here."""
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-json"))
    folder = make_dataset(tmp_path / "upstream" / "FaceMask Dataset", per_class=40)
    # beside the class folders, as real archives have: 3 MB, so that the kaggle library, which writes 1 MB
    # at a time, has written some of it when the server pauses half-way
    (folder.parent / "extras.bin").write_bytes(os.urandom(3_000_000))
    return folder.parent


def _answer_with_size(monkeypatch, fake: FakeKaggle):
    monkeypatch.setattr(kaggle, "_check_kaggle", lambda username, key, dataset: {"totalBytes": len(fake.archive)})


def _processes_with(text: str) -> list[int]:
    """Pids of this machine's processes whose command line holds `text`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if text.encode() in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_the_download_alone_holds_the_credentials_and_the_server_process_is_untouched(upstream, tmp_path, monkeypatch):
    stdin, seen = sys.stdin, []
    with FakeKaggle(upstream, monkeypatch, pause=True) as fake:
        _answer_with_size(monkeypatch, fake)

        def progress(done, total, what):
            seen.append((what, done, total))
            if fake.paused.is_set() and not fake._release.is_set():  # half-way: look around, then let it finish
                assert not {"KAGGLE_USERNAME", "KAGGLE_KEY"} & set(os.environ)
                assert sys.stdin is stdin
                # a process this server starts meanwhile (a training: runs.start passes its environment on)
                child = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import os; print(sorted(k for k in os.environ "
                        "if k.startswith('KAGGLE_U') or k.startswith('KAGGLE_K')))",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                assert child.stdout.strip() == "[]"
                downloaders = _processes_with("maskdet.kaggle")
                assert len(downloaders) == 1 and downloaders[0] != os.getpid()
                assert Path(f"/proc/{downloaders[0]}/environ").read_bytes().count(f"KAGGLE_KEY={KEY}".encode()) == 1
                assert not _processes_with(KEY)  # never on a command line, which every user can read
                fake.release()

        folder = kaggle.download(tmp_path / "data", USER, KEY, progress=progress)
    assert folder == tmp_path / "data" / SLUG
    assert fake._release.is_set(), "the download never paused half-way"
    assert [s["credentials"] for s in fake.seen] == [f"{USER}:{KEY}"]  # the credentials reached Kaggle
    assert dataset.list_files(folder)["label"].value_counts().to_dict() == {"with_mask": 40, "without_mask": 40}
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [SLUG]  # nothing partial left beside it
    downloading = [s for s in seen if s[0] == "downloading"]
    assert downloading and all(total == len(fake.archive) for _, _, total in downloading)
    assert 1 << 20 <= max(done for _, done, _ in downloading) <= len(fake.archive)
    assert ("unpacking", 81, 81) in seen
    assert "KAGGLE_KEY" not in os.environ and sys.stdin is stdin


def test_a_cancelled_download_stops_its_process_and_keeps_nothing(upstream, tmp_path, monkeypatch):
    class Cancelled(Exception):
        pass

    with FakeKaggle(upstream, monkeypatch, pause=True) as fake:
        _answer_with_size(monkeypatch, fake)
        downloaders = []

        def progress(done, total, what):
            if fake.paused.is_set():
                downloaders.extend(_processes_with("maskdet.kaggle"))
                raise Cancelled()  # what a page's rerun or Ctrl-C does in the middle of a download

        with pytest.raises(Cancelled):
            kaggle.download(tmp_path / "data", USER, KEY, progress=progress)
    assert len(downloaders) == 1
    wait_for(lambda: not Path(f"/proc/{downloaders[0]}").exists(), 10, "the download process to end")
    assert list((tmp_path / "data").iterdir()) == []


def test_a_refusal_from_kaggle_comes_back_with_its_reason(upstream, tmp_path, monkeypatch):
    with FakeKaggle(upstream, monkeypatch, status=403) as fake:
        _answer_with_size(monkeypatch, fake)
        with pytest.raises(dataset.DatasetError, match=r"refused access to the dataset \(403\)") as err:
            kaggle.download(tmp_path / "data", USER, KEY)
    assert "\n" not in str(err.value)
    assert list((tmp_path / "data").iterdir()) == []
