"""A log line stays one line whatever its message quotes: control characters a client chose
(CR, LF, ESC, the Unicode line breaks) are written as escapes."""

from __future__ import annotations

import logging

from workflow_engine.logs import TextFormatter, printable


def test_a_message_with_line_breaks_is_written_on_one_line_with_its_breaks_escaped() -> None:
    record = logging.LogRecord(
        "workflow_engine.api",
        logging.WARNING,
        __file__,
        1,
        "refused %s",
        ("mallory\r\nINFO forged\x1b[2J",),
        None,
    )
    line = TextFormatter().format(record)
    assert len(line.splitlines()) == 1
    assert line.endswith("refused mallory\\r\\nINFO forged\\x1b[2J")


def test_printable_escapes_only_control_characters() -> None:
    assert printable("plain text, accents é and 日本") == "plain text, accents é and 日本"
    assert printable("a\u2028b\x00c\x85d") == "a\\u2028b\\x00c\\x85d"
