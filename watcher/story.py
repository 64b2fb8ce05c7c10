"""What makes two entries "the same story", for a rule's ``cooldown``.

The same news reaches watcher through several feeds: the publisher's own feed, a mirror of it, and Google News
searches that relay the wire copy as "Title - Outlet". The key is therefore the title, not the link (a Google News
link is a per-outlet redirect), normalised so that these variants agree:

* NFKC, case folding and collapsed spaces (the matcher's normalisation): "ＮＶＩＤＩＡ" and "NVIDIA" agree;
* a trailing " - Outlet" / " | Outlet" / " – Outlet" suffix is removed when it is short (at most 6 words and 60
  characters), as Google News and many sites append it: "Claude arrives in Foundry - Reuters" and "Claude
  arrives in Foundry" agree;
* punctuation and quotes are dropped: "Microsoft, NVIDIA, and Anthropic..." and "Microsoft NVIDIA and
  Anthropic..." agree.

An entry without a title falls back to its link, without scheme, "www.", query string, fragment or trailing
slash. Pure functions; the store keeps the key with each hit.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .rules.normalize import normalize

MAX_KEY = 300  # characters kept: a longer title is the same story as its first 300 characters

_SUFFIX = re.compile(r"\s+[-|–—]\s+(?P<outlet>[^-|–—]{1,60})$")
_PUNCT = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def story_key(title: str, link: str = "") -> str:
    """A key equal for entries that carry the same story; "" when there is nothing to key on."""
    text = normalize(title)
    m = _SUFFIX.search(text)
    if m is not None and len(m["outlet"].split()) <= 6 and m.start() > 0:
        text = text[: m.start()]
    text = _SPACES.sub(" ", _PUNCT.sub(" ", text)).strip()
    if text:
        return "t:" + text[:MAX_KEY]
    if link:
        parts = urlsplit(link.strip())
        host = parts.netloc.lower().removeprefix("www.")
        path = parts.path.rstrip("/")
        if host or path:
            return ("l:" + host + path)[:MAX_KEY]
    return ""
