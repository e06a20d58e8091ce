import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cp as cpmod  # noqa: E402


def pytest_report_header(config):
    b = cpmod.binary_path()
    return "callplane binary: %s (%s)" % (b, "present" if os.access(b, os.X_OK) else "MISSING")


@pytest.fixture(scope="session")
def callplane_bin():
    b = cpmod.binary_path()
    if not os.access(b, os.X_OK):
        pytest.fail("callplane binary not found or not executable: %s (set CALLPLANE_BIN)" % b, pytrace=False)
    return b


@pytest.fixture
def cp(callplane_bin, tmp_path):
    """A fresh temp dir + database; server not started.  Teardown stops a running
    server with SIGTERM and asserts a graceful exit (code 0, no sanitizer report)."""
    c = cpmod.Callplane(tmp_path)
    yield c
    c.teardown()


@pytest.fixture
def srv(cp):
    """Tenant A with agent (+15550001111) and a tenant-scoped key, server running."""
    cp.setup_world()
    cp.start()
    return cp


@pytest.fixture
def peers():
    """sipp peers a test starts; each is stopped when the test ends."""
    out = []
    yield out
    for p in out:
        p.stop()


@pytest.fixture
def media(cp, tmp_path):
    """The media world (media_world.py): tenant / key (plus an agent without stream URL on
    another number); nothing started. Baresips and agents it starts stop with the test."""
    from media_world import MediaWorld
    cp.setup_world(number="+15550009999")
    w = MediaWorld(cp, tmp_path)
    yield w
    w.close()
