"""Shared fixtures: real servers on 127.0.0.1 (see servers.py) and the shared feed corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import FeedServer, SmtpServer, TlsCert, TlsUnavailable, WebhookReceiver, make_self_signed_cert

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = (PROJECT_ROOT.parent / "shared" / "corpus").resolve()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started FeedServer; routes are added by the test with ``feed_server.add(path, body, ...)``."""
    with FeedServer() as server:
        yield server
    assert not server.errors, f"the feed server's handlers raised: {server.errors!r}"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A started SmtpServer without AUTH or TLS; ``smtp_server.apprise_url()`` reaches it."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A started WebhookReceiver; ``webhook.apprise_url()`` is ``json://127.0.0.1:PORT/hook``."""
    with WebhookReceiver() as server:
        yield server
    assert not server.errors, f"the webhook receiver's handlers raised: {server.errors!r}"


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCert:
    """A self-signed certificate for 127.0.0.1, made once per session; skips when openssl is missing."""
    try:
        return make_self_signed_cert(tmp_path_factory.mktemp("tls"))
    except TlsUnavailable as e:
        pytest.skip(f"STARTTLS tests need a certificate: {e}")


@pytest.fixture
def corpus_dir() -> Path:
    """The shared feed corpus beside the checkout (../shared/corpus)."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS_DIR}: these tests need ../shared/corpus beside the checkout")
    return CORPUS_DIR
