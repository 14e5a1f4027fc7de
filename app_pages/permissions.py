"""What this session may do, as maskdet.access decides it for this server: its mode, signing in with the
access token, the pages' own guard, and folders typed by a user confined to the allowed roots.
Not a page itself (streamlit_app.py lists the pages)."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from maskdet import access as access_rules

# Session-state key of a visitor who gave the right token (a fingerprint of the token, not the token).
SIGNED_IN = "_maskdet_signed_in"


# This server's mode: from where it listens (server.address) and the token in MASKDET_TOKEN or secrets.toml.
def access() -> access_rules.Access:
    secrets = st.secrets if st.secrets.load_if_toml_exists() else None  # no secrets.toml: no error drawn
    return access_rules.decide(st.get_option("server.address"), access_rules.token_from(secrets=secrets))


# Whether this session may see the pages (always, unless the server asks for a token it has not had).
def signed_in(acc: access_rules.Access | None = None) -> bool:
    return (acc or access()).signed_in(st.session_state.get(SIGNED_IN))


# Check a token typed by a visitor; a wrong one costs a second, so guessing is slow.
def sign_in(acc: access_rules.Access, given: str) -> bool:
    if acc.check_token(given):
        st.session_state[SIGNED_IN] = access_rules.fingerprint(acc.token)
        return True
    time.sleep(1)
    return False


# Stop the page with a message unless this server's mode allows the action (the pages' second line of
# defence: st.navigation lists only the pages the mode allows).
def require(action: str) -> None:
    acc = access()
    try:
        if not acc.signed_in(st.session_state.get(SIGNED_IN)):
            raise access_rules.AccessDenied("Sign in with the access token first.")
        acc.require(action)
    except access_rules.AccessDenied as exc:
        st.error(str(exc), icon=":material/lock:")
        st.stop()


# A folder typed by a user, resolved, if it lies under the allowed roots; else None and the reason shown.
def confined(folder: str, label: str) -> Path | None:
    try:
        return access_rules.confine(folder)
    except access_rules.PathRefused as exc:
        st.error(f"{label} refused: {exc}", icon=":material/block:")
        return None
