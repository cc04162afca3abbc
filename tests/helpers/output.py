"""What a command printed on stderr, as a user reads it."""

from __future__ import annotations


def check_shown_once(err: str, warnings: list[str], before: dict[str, str] | None = None) -> None:
    """Each of `warnings` is one `warning:` line of `err`, never a `WARNING:` progress line, printed before the text
    `before` maps it to, if any (its stage's first epoch line): a user may stop the run there. Whitespace is compared as
    words, so a line folded on a narrow terminal still counts."""
    said = " ".join(err.split())
    assert "WARNING:" not in said, err
    for text in warnings:
        line = f"warning: {' '.join(text.split())}"
        assert said.count(line) == 1, (text, err)
        if before is not None:
            assert said.index(line) < said.index(before[text]), (text, err)
