"""Small drawing helpers the pages share: class colours and words, JPEG bytes, a picture grid, a pager,
Markdown that shows text as it is. Not a page itself."""

from __future__ import annotations

import re
from pathlib import Path

import altair as alt
import streamlit as st

from maskdet import config, gallery

MASK, NO_MASK = config.CLASS_NAMES
# Altair colour scale that matches gallery.COLOURS, so charts and pictures agree.
CLASS_SCALE = alt.Scale(domain=list(config.CLASS_NAMES), range=[gallery.COLOURS[c] for c in config.CLASS_NAMES])


# A PIL image as JPEG bytes (what st.image sends fastest).
def jpeg(img, quality: int = 88) -> bytes:
    import io

    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# Draw pictures with captions in a grid, `columns` a row.
def image_grid(images: list, captions: list[str], columns: int = 6, width: int | str = "stretch") -> None:
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, img, cap in zip(cols, images[start : start + columns], captions[start : start + columns]):
            col.image(img, caption=cap, width=width)


# A page picker for long lists; returns the slice of rows to show.
def pager(n: int, per_page: int, key: str) -> slice:
    pages = max(1, -(-n // per_page))
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = 1
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    page = left.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=key)
    first = (page - 1) * per_page
    right.caption(f"showing {first + 1 if n else 0}-{min(n, first + per_page)} of {n:,}")
    return slice(first, first + per_page)


# "with mask" in green or "without mask" in red, as Markdown.
def label_markdown(label: str | None) -> str:
    if label is None:
        return ":orange[**unknown**]"
    colour = {MASK: "green", NO_MASK: "red"}.get(label, "orange")
    return f":{colour}[**{config.LABEL_WORDS.get(label, label)}**]"


# Text shown as it is in Markdown (file names hold underscores, stars and brackets).
def literal(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>$:])", r"\\\1", text)


# Path -> a short file name for captions.
def short_name(path: str, limit: int = 22) -> str:
    name = Path(path).name
    return name if len(name) <= limit else name[: limit - 9] + "…" + name[-8:]
