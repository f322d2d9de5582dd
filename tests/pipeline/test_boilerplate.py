"""The paragraph filter (pipeline.boilerplate): rights lines, stamps and reporter e-mails, in the corpus languages."""

from __future__ import annotations

from pipeline.boilerplate import filter_paragraphs


def test_rights_lines_stamps_and_reporter_emails_go_in_any_language() -> None:
    first, last = "A long first paragraph that is clearly a sentence.", "The end of the story, with a full stop."
    dropped = [
        "Copyright © 한빛일보. 무단전재 및 재배포 금지",
        "版权所有 © 华南时报社 未经授权禁止转载",
        "© 2026 Вечерний вестник. Все права защищены.",
        "입력 2026.02.04 18:40　수정 2026.02.04 19:05",
        "Aktualisiert am 04.02.2026 um 19:05 Uhr",
        "박지훈 기자 jhpark@hanbit.example",
    ]
    kept = ["Die Rechte der Mieter wurden 2024 gestärkt, alle Rechte bleiben gewahrt, sagte sie am 04.02.2026."]
    assert filter_paragraphs([first, *dropped, *kept, last]) == [first, *kept, last]
