"""maskdet workbench: look at the data, train, evaluate and use a face-mask classifier.

Run with `streamlit run streamlit_app.py`. The pages only draw; maskdet does the work.
"""
import streamlit as st

from app_pages import common

# The pages, in the order a new user needs them. They live in app_pages/, not pages/: a folder named
# pages/ beside this script switches Streamlit to its old automatic multipage mode on a fresh server's
# first run (a deep link such as /train then skips this script and its sidebar) and in AppTest.
PAGES = [
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/photo_library:", default=True),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("app_pages/classify.py", title="Classify", icon=":material/face:"),
]


# Set up the app, draw the shared sidebar, then the chosen page.
def main():
    st.set_page_config(page_title="maskdet", page_icon=":material/masks:", layout="wide")
    page = st.navigation(PAGES)
    settings = common.sidebar()
    if settings.model_path and settings.model_path.exists():
        common.warm_up(str(settings.model_path), settings.model_path.stat().st_mtime)
    page.run()


main()
