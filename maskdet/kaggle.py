"""The Kaggle download through opendatasets, never prompting, with a reason for every failure."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from . import config
from .dataset import DatasetError, find_class_folders


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
            raise DatasetError(f"{path}: not a valid kaggle.json (needs \"username\" and \"key\")") from None
    raise DatasetError("Kaggle credentials missing: give a username and API key, set KAGGLE_USERNAME and "
                       "KAGGLE_KEY, or put kaggle.json in ~/.kaggle (Kaggle > Settings > Create New Token).")


def _check_kaggle(username: str, key: str, dataset: str, timeout: float = 15) -> None:
    """Ask Kaggle's API about the dataset with these credentials first, so that a failure says why:
    no network, credentials refused, no access, no such dataset (opendatasets only says "Abort")."""
    url = f"https://www.kaggle.com/api/v1/datasets/view/{dataset}"
    auth = base64.b64encode(f"{username}:{key}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}", "User-Agent": "maskdet"})
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        reason = {401: "Kaggle refused the credentials (401): check the username and the API key "
                       "(kaggle.json, from kaggle.com > Settings > API)",
                  403: "Kaggle refused access to the dataset (403): sign in on kaggle.com and accept its terms",
                  404: f"Kaggle has no dataset {dataset!r} (404)"}.get(exc.code, f"Kaggle answered HTTP {exc.code}")
        raise DatasetError(f"Kaggle download failed: {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise DatasetError(f"Kaggle download failed: could not reach www.kaggle.com ({why}); check the network "
                           "connection or proxy, or download the dataset by hand and give its folder") from None


def download(dest: str | Path, username: str | None = None, key: str | None = None,
             dataset: str = config.KAGGLE_DATASET) -> Path:
    """Download the Kaggle dataset into dest through opendatasets; returns the dataset folder.

    Never prompts: opendatasets asks on stdin when it finds no credentials, which would hang
    a server, so credentials are always handed to it through the environment and stdin is closed.
    A failed download leaves no partial folder that would look complete.
    """
    username, key = kaggle_credentials(username, key)
    dest = Path(dest).expanduser()
    slug = dataset.split("/")[-1]
    target = dest / slug
    if target.exists() and any(target.iterdir()):
        find_class_folders(target)  # an existing download must be a dataset, else say so
        return target
    _check_kaggle(username, key, dataset)
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / f".{slug}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    saved = {k: os.environ.get(k) for k in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"] = username, key
    old_stdin = sys.stdin
    sys.stdin = io.StringIO("")  # any prompt gets EOF at once instead of waiting forever
    try:
        import opendatasets

        with contextlib.redirect_stdout(io.StringIO()):
            opendatasets.download(f"https://www.kaggle.com/datasets/{dataset}", data_dir=str(partial))
        got = partial / slug
        if not got.exists() or not any(got.iterdir()):
            raise DatasetError("the Kaggle download finished without files; check the credentials")
        find_class_folders(got)
        os.replace(got, target)
        return target
    except DatasetError:
        raise
    except EOFError:
        raise DatasetError("Kaggle rejected the credentials (opendatasets asked for them again)") from None
    except Exception as exc:  # network errors, 401/403 from the Kaggle API
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"Kaggle download failed: {msg}. Check the network and the credentials.") from None
    finally:
        sys.stdin = old_stdin
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(partial, ignore_errors=True)
