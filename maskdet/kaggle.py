"""The Kaggle download, in a process of its own that alone holds the credentials; never prompting, with
progress, cancellable, and a reason for every failure.

The server's own state is never touched: its environment keeps no key, its stdin stays its own. The
credentials go to the download process only, in its environment (KAGGLE_USERNAME / KAGGLE_KEY, what the
`kaggle` library reads), never on its command line, so processes the server starts meanwhile (a training)
cannot inherit them and other users cannot read them from the process list. The download process runs
the Kaggle API (the one opendatasets calls, without opendatasets' prompt: it asks on stdin unless a
kaggle.json lies in the working folder) and is killed when the caller stops waiting (a cancel, an error).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from . import config
from .dataset import DatasetError, find_class_folders

# The download process's environment variables that carry credentials: set for it alone.
CREDENTIAL_VARIABLES = ("KAGGLE_USERNAME", "KAGGLE_KEY")


def kaggle_credentials(username: str | None = None, key: str | None = None) -> tuple[str, str]:
    """Credentials from arguments, KAGGLE_USERNAME/KAGGLE_KEY, or ~/.kaggle/kaggle.json."""
    username = username or os.environ.get("KAGGLE_USERNAME")
    key = key or os.environ.get("KAGGLE_KEY")
    if username and key:
        return username, key
    path = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    if path.exists():
        try:
            creds = json.loads(path.read_text())
            return creds["username"], creds["key"]
        except (ValueError, KeyError, TypeError):
            raise DatasetError(f'{path}: not a valid kaggle.json (needs "username" and "key")') from None
    raise DatasetError(
        "Kaggle credentials missing: give a username and API key, set KAGGLE_USERNAME and "
        "KAGGLE_KEY, or put kaggle.json in ~/.kaggle (Kaggle > Settings > Create New Token)."
    )


def _http_reason(code: int, dataset: str) -> str:
    return {
        401: "Kaggle refused the credentials (401): check the username and the API key "
        "(kaggle.json, from kaggle.com > Settings > API)",
        403: "Kaggle refused access to the dataset (403): sign in on kaggle.com and accept its terms",
        404: f"Kaggle has no dataset {dataset!r} (404)",
    }.get(code, f"Kaggle answered HTTP {code}")


def _unreachable(why) -> str:
    return (
        f"could not reach www.kaggle.com ({why}); check the network connection or proxy, or download "
        "the dataset by hand and give its folder"
    )


def _check_kaggle(username: str, key: str, dataset: str, timeout: float = 15) -> dict:
    """Ask Kaggle's API about the dataset with these credentials first, so that a failure says why at once
    (no network, credentials refused, no access, no such dataset); returns what Kaggle says of it (its
    `totalBytes`: the size the download's progress is measured against). The credentials travel in this
    one request's header only."""
    url = f"https://www.kaggle.com/api/v1/datasets/view/{dataset}"
    auth = base64.b64encode(f"{username}:{key}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}", "User-Agent": "maskdet"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        raise DatasetError(f"Kaggle download failed: {_http_reason(exc.code, dataset)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DatasetError(f"Kaggle download failed: {_unreachable(getattr(exc, 'reason', exc))}") from None
    try:
        about = json.loads(body)
    except ValueError:
        about = None
    return about if isinstance(about, dict) else {}


def _folder_bytes(folder: Path) -> int:
    """Bytes written under a folder so far (the download's progress)."""
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:  # renamed or removed meanwhile
                pass
    return total


def _stop(proc: subprocess.Popen) -> None:
    """End the download process and whatever it started (its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _child_failure(stderr: str, dataset: str) -> str:
    """The reason a download process gave (its last line, JSON from _fetch), for a user."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    try:
        said = json.loads(lines[-1])
    except (IndexError, ValueError):
        return f"the download process ended without a reason ({(lines or ['no output'])[-1][:200]})"
    if said.get("status"):
        return _http_reason(int(said["status"]), dataset)
    if said.get("unreachable"):
        return _unreachable(said["message"])
    return said.get("message") or "unknown error"


def download(
    dest: str | Path,
    username: str | None = None,
    key: str | None = None,
    dataset: str = config.KAGGLE_DATASET,
    progress=None,
    poll_s: float = 0.5,
) -> Path:
    """Download the Kaggle dataset into dest; returns the dataset folder.

    The download runs in a child process with the credentials in its environment (nothing of this process
    changes). `progress(done, total, what)` is called every `poll_s` seconds: bytes downloaded of the
    dataset's size (total 0 when Kaggle did not say it), then files unpacked of all. Whatever stops the
    caller (an exception from `progress`, Ctrl-C, a page's rerun) kills the download process and removes
    what it wrote. A failed download leaves no partial folder that would look complete.
    """
    username, key = kaggle_credentials(username, key)
    dest = Path(dest).expanduser()
    slug = dataset.split("/")[-1]
    target = dest / slug
    if target.exists() and any(target.iterdir()):
        find_class_folders(target)  # an existing download must be a dataset, else say so
        return target
    about = _check_kaggle(username, key, dataset)
    total = int(about.get("totalBytes") or 0)
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / f".{slug}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    env.update(KAGGLE_USERNAME=username, KAGGLE_KEY=key)
    try:
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "maskdet.kaggle", dataset, str(partial.resolve())],
                env=env,
                cwd=config.PROJECT_DIR,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                while proc.poll() is None:
                    if progress:
                        progress(_folder_bytes(partial), total, "downloading")
                    time.sleep(poll_s)
            finally:
                _stop(proc)
            stderr.seek(0)
            said = stderr.read().decode(errors="replace")
        if proc.returncode != 0:
            raise DatasetError(f"Kaggle download failed: {_child_failure(said, dataset)}")
        got = _unpack(partial, slug, progress)
        find_class_folders(got)
        os.replace(got, target)
        return target
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def progress_words(done: int, total: int, what: str) -> str:
    """download()'s progress for people: "Downloading: 12.5 of 330.0 MB", "Unpacking: 500 of 12,000 files"."""
    if what == "downloading":
        return f"Downloading: {done / 1e6:,.1f}" + (f" of {total / 1e6:,.1f} MB" if total else " MB")
    return f"{what.capitalize()}: {done:,} of {total:,} files"


def _unpack(partial: Path, slug: str, progress=None) -> Path:
    """The downloaded archive unpacked into partial/slug (the archive removed), counting files."""
    archives = sorted(partial.glob("*.zip"))
    if not archives:
        raise DatasetError("Kaggle download failed: the download finished without an archive")
    got = partial / slug
    got.mkdir(exist_ok=True)
    try:
        with zipfile.ZipFile(archives[0]) as archive:
            members = archive.infolist()
            for n, member in enumerate(members, 1):
                archive.extract(member, got)  # zipfile drops absolute paths and '..' from member names
                if progress and (n % 500 == 0 or n == len(members)):
                    progress(n, len(members), "unpacking")
    except zipfile.BadZipFile:
        raise DatasetError("Kaggle download failed: the downloaded archive is damaged; try again") from None
    archives[0].unlink()
    if not any(got.iterdir()):
        raise DatasetError("Kaggle download failed: the archive holds no files")
    return got


def _fetch(dataset: str, into: str) -> int:
    """The download process (`python -m maskdet.kaggle DATASET FOLDER`): the Kaggle API fetches the dataset's
    archive into FOLDER with the credentials of this process's environment. A failure ends it with status 1
    and one JSON line on stderr saying why."""

    def fail(**why) -> int:
        print(json.dumps(why), file=sys.stderr)
        return 1

    try:
        import requests
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
        api.dataset_download_files(dataset, path=into, quiet=True, unzip=False)
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else None
        return fail(status=code, message=str(exc)[:300]) if code else fail(message=str(exc)[:300])
    except (requests.ConnectionError, requests.Timeout) as exc:
        return fail(unreachable=True, message=type(exc).__name__)
    except SystemExit:  # the kaggle library exits when it finds no credentials
        return fail(message="the Kaggle library found no credentials")
    except Exception as exc:
        return fail(message=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(_fetch(sys.argv[1], sys.argv[2]))
