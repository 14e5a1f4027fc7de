"""maskdet workbench: look at the data, train, evaluate and use a face-mask classifier.

Run with `streamlit run streamlit_app.py`. The pages only draw; maskdet does the work.
Who may see what is maskdet.access's decision: a server on loopback (the default, .streamlit/config.toml)
serves its owner everything; a shared one asks for the access token first, or without one serves
Classify only.
"""

import streamlit as st

from app_pages import loaders, permissions, sidebar

# The pages, in the order a new user needs them, each with the action it needs (maskdet.access.ACTIONS).
# They live in app_pages/, not pages/: a folder named pages/ beside this script switches Streamlit to its
# old automatic multipage mode on a fresh server's first run (a deep link such as /train then skips this
# script and its sidebar) and in AppTest.
PAGES = [
    ("browse", dict(page="app_pages/dataset.py", title="Dataset", icon=":material/photo_library:", default=True)),
    ("train", dict(page="app_pages/train.py", title="Train", icon=":material/model_training:")),
    ("evaluate", dict(page="app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:")),
    ("classify", dict(page="app_pages/classify.py", title="Classify", icon=":material/face:")),
    ("classify", dict(page="app_pages/video.py", title="Video", icon=":material/videocam:")),
]
MODE_ICONS = {"local": ":material/computer:", "token": ":material/key:", "classify-only": ":material/public:"}


# Set up the app; on a shared server ask for the token first; then the sidebar and the chosen page.
def main():
    st.set_page_config(page_title="maskdet", page_icon=":material/masks:", layout="wide")
    acc = permissions.access()
    if not permissions.signed_in(acc):
        token_form(acc)  # nothing else is drawn or read: no navigation, no sidebar, no model
        return
    # only the pages this mode allows exist for this session: any other URL lands on the first of them
    page = st.navigation([st.Page(**spec) for action, spec in PAGES if acc.allows(action)])
    mode_note(acc)
    settings = sidebar.sidebar(acc)
    try:
        page.run()
    finally:  # the model loads in the background once the page is drawn: started before, TensorFlow's import
        # (it holds the GIL) slowed Evaluate's view after a restart from 5 s to 8 s on these 2 cores
        if settings.model_path and settings.model_path.exists():
            loaders.warm_up(str(settings.model_path), settings.model_path.stat().st_mtime)


# The token form, all a visitor of a shared server sees until they give the right token.
def token_form(acc):
    st.title("maskdet")
    st.markdown(
        "This workbench is shared on the network and asks for an **access token**: its owner "
        "set it with `MASKDET_TOKEN` (or in `.streamlit/secrets.toml`)."
    )
    with st.form("sign_in"):
        given = st.text_input("Access token", type="password", key="access_token_input")
        go = st.form_submit_button("Sign in", type="primary", icon=":material/key:")
    if go:
        if permissions.sign_in(acc, given):
            st.rerun()
        st.error("That is not the access token.", icon=":material/lock:")


# Which mode the server is in, at the top of the sidebar; a signed-in visitor can sign out.
def mode_note(acc):
    with st.sidebar:
        st.caption(f"{MODE_ICONS[acc.mode]} **Access:** {acc.describe()}")
        if acc.needs_token and st.button("Sign out", key="sign_out", icon=":material/logout:"):
            st.session_state.pop(permissions.SIGNED_IN, None)
            st.rerun()


main()
