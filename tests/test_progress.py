"""Progress bars for long commands: drawn on a terminal, silent anywhere else (pipes, logs, cron)."""

import io
import os

from storefront import progress


def test_a_bar_is_drawn_on_a_terminal():
    main, replica = os.openpty()
    try:
        with os.fdopen(replica, "w", closefd=False) as terminal:
            with progress.bar(4, "Importing rows", stream=terminal) as done:
                for _ in range(4):
                    done.update(1)
            terminal.flush()
        drawn = os.read(main, 65536).decode()
    finally:
        os.close(main)
        os.close(replica)
    assert "Importing rows" in drawn and "100%" in drawn


def test_a_bar_writes_nothing_when_not_on_a_terminal():
    stream = io.StringIO()
    with progress.bar(4, "Importing rows", stream=stream) as done:
        done.update(4)
    assert stream.getvalue() == ""
