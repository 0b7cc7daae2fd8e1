"""`rotor guardrails dnc import` file reading: one per line or CSV, headers, invalid entries, chunks."""

from __future__ import annotations

import io

from rotor_lite.cli.client.guardrails import _chunks, read_dnc_entries


def test_one_per_line_with_comments_blanks_and_invalid_lines() -> None:
    text = "# unsubscribes\nAlice@Example.com\n\nbounced.io\nnot valid\nemail\n"
    assert list(read_dnc_entries(io.StringIO(text))) == [
        ("emails", "alice@example.com"), ("domains", "bounced.io"), ("domains", None),
    ]


def test_csv_uses_email_and_domain_columns() -> None:
    text = "name,Email,domain\nAnn,ann@x.io,annco.com\nBo,,boco.io\n"
    assert list(read_dnc_entries(io.StringIO(text))) == [
        ("emails", "ann@x.io"), ("domains", "annco.com"), ("domains", "boco.io"),
    ]


def test_csv_without_a_header_classifies_every_cell() -> None:
    assert list(read_dnc_entries(io.StringIO("a@x.io;b.io\nc@y.io;d.io\n"))) == [
        ("emails", "a@x.io"), ("domains", "b.io"), ("emails", "c@y.io"), ("domains", "d.io"),
    ]


def test_entries_stream_in_chunks() -> None:
    lines = io.StringIO("".join(f"u{i}@x.io\n" for i in range(25)) + "junk\n")
    chunks = list(_chunks(read_dnc_entries(lines), 10))
    assert [len(emails) for emails, _, _ in chunks] == [10, 10, 5] and chunks[-1][2] == 1
