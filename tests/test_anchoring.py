"""Anchoring verbatim values to offsets in the source text: every expected offset is computed from
the fixture text (`text.index(evidence)`), never written down by hand."""

from __future__ import annotations

import itertools
import random
import unicodedata

import pytest

from summarizer import anchoring
from summarizer.anchoring import FUZZY_MIN, Anchor, anchor, anchor_fields, fold, highlight_spans
from summarizer.schemas.article import Article
from summarizer.traits import traits_of


def where(text: str, evidence: str) -> tuple[int, int]:
    """Offsets of the first occurrence of `evidence` in `text`."""
    start = text.index(evidence)
    return start, start + len(evidence)


def assert_anchored(found: Anchor | None, text: str, evidence: str, match: str) -> None:
    assert found is not None, f"no anchor, expected {evidence!r}"
    assert (found.start, found.end) == where(text, evidence)
    assert found.source == text[found.start:found.end] == evidence
    assert found.match == match


# --- exact -------------------------------------------------------------------------------------

SCRIPTS = [
    pytest.param("CATL", "On 12 May 2023 CATL signed an agreement with HKU.", id="latin"),
    pytest.param("宁德时代新能源科技股份有限公司", "2023年5月12日，宁德时代新能源科技股份有限公司与香港大学签署协议。", id="chinese"),
    pytest.param("トヨタ自動車株式会社", "昨日、トヨタ自動車株式会社は新しい電池工場を発表した。", id="japanese"),
    pytest.param("ສັນຍາ", "ທັງສອງຝ່າຍໄດ້ລົງນາມໃນສັນຍາສະບັບນີ້ແລ້ວ", id="lao"),
    pytest.param("สัญญา", "ทั้งสองฝ่ายได้ลงนามในสัญญาฉบับนี้แล้ว", id="thai"),
    pytest.param("وزارة الطاقة", "وقعت وزارة الطاقة والمعادن على الاتفاقية.", id="arabic"),
    pytest.param("Правительство провинции Хэнань", "Документ подписали: Правительство провинции Хэнань и CATL.",
                 id="cyrillic"),
    pytest.param("한국전력공사", "어제 한국전력공사는 새로운 계약을 체결했다.", id="korean"),
]


@pytest.mark.parametrize(("value", "text"), SCRIPTS)
def test_exact_in_every_script(value: str, text: str) -> None:
    found = anchor(value, text)
    assert_anchored(found, text, value, "exact")
    assert found is not None and found.score == 1.0 and found.count == 1


def test_first_occurrence_and_count() -> None:
    text = "CATL and HKU. Later CATL again, and ＣＡＴＬ in full width."
    found = anchor("CATL", text)
    assert found is not None and (found.start, found.end) == where(text, "CATL")
    assert found.count == text.count("CATL")
    folded = anchor("catl", text)  # only the normalized tier finds it: every form counts
    assert folded is not None and folded.start == text.index("CATL") and folded.count == 3


def test_surrounding_whitespace_of_the_value_is_not_evidence() -> None:
    text = "Signed by CATL."
    assert_anchored(anchor("  CATL\n", text), text, "CATL", "exact")


# --- normalized: offsets mapped back through NFKC, case folding and whitespace ------------------

NORMALIZED = [
    # (value, text, the evidence in text, accents ignored)
    pytest.param("ministry of energy and  mines", "The Ministry of Energy\nand   Mines signed.",
                 "Ministry of Energy\nand   Mines", False, id="case-and-whitespace"),
    pytest.param("CATL", "合作方：ＣＡＴＬ与香港大学", "ＣＡＴＬ", False, id="full-width-latin"),
    pytest.param("catl", "İzmir ofisi ve CATL", "CATL", False, id="dotted-capital-i-before"),  # 'İ' folds to two
    pytest.param("\u0e01\u0e38\u0e48\u0e21", "\u0e01\u0e48\u0e38\u0e21\u0e1a\u0e23\u0e34\u0e29\u0e31\u0e17",
                 "\u0e01\u0e48\u0e38\u0e21", False, id="thai-marks-in-other-order"),
    pytest.param("ＣＡＴＬ", "Partner: CATL (China).", "CATL", False, id="full-width-value"),
    pytest.param("file", "the ﬁle was signed", "ﬁle", False, id="ligature-fi"),
    pytest.param("Office", "the oﬃce of the governor", "oﬃce", False, id="ligature-ffi"),
    pytest.param("café", "Le cafe\u0301 noir", "cafe\u0301", False, id="combining-in-text"),
    pytest.param("cafe\u0301", "Le café noir", "café", False, id="combining-in-value"),
    pytest.param("STRASSE 5", "Die Straße 5 in Berlin", "Straße 5", False, id="sharp-s"),
    pytest.param("grosse halle", "Die GROẞE HALLE", "GROẞE HALLE", False, id="capital-sharp-s"),
    pytest.param("第1条", "根据第①条规定", "第①条", False, id="circled-digit"),
    pytest.param("한국", "이것은 \u1112\u1161\u11ab\u1100\u116e\u11a8 입니다", "\u1112\u1161\u11ab\u1100\u116e\u11a8", False,
                 id="hangul-jamo"),
    pytest.param("ガス", "ｶﾞｽ会社と契約", "ｶﾞｽ", False, id="half-width-katakana"),
    pytest.param('ООО "Ромашка"', "договор с ООО «Ромашка» от мая", "ООО «Ромашка»", False, id="guillemets"),
    pytest.param("2020-2025", "the plan for 2020–2025 was", "2020–2025", False, id="en-dash"),
    pytest.param("2023", "تم التوقيع عام ٢٠٢٣ في الرياض", "٢٠٢٣", False, id="arabic-indic-digits"),
    pytest.param("الطاقة", "وزارة الطـــاقة", "الطـــاقة", False, id="tatweel"),
    pytest.param("CATL 与 香港大学", "2023年CATL与香港大学签署协议", "CATL与香港大学", False, id="spaces-dropped-cjk"),
    pytest.param("ສັນຍາ", "ໄດ້ເຊັນ ສັນ ຍາ ແລ້ວ", "ສັນ ຍາ", False, id="spaces-dropped-lao"),
    pytest.param("Ha Noi", "họp tại Hà Nội năm 2023", "Hà Nội", True, id="accents-ignored"),
    pytest.param("Ha Noi", "tại Ha\u0300 No\u0323\u0302i", "Ha\u0300 No\u0323\u0302i", True,
                 id="accents-ignored-combining"),
    pytest.param("وزارة الطاقة", "وقعت وَزارةُ الطاقة على", "وَزارةُ الطاقة", True, id="harakat-ignored"),
    pytest.param("وزارة", "وقعت وَزارةُ الطاقة", "وَزارةُ", True, id="harakat-after-the-last-letter"),
    pytest.param("Cafe", "un cafe\u0301 noir", "cafe\u0301", True, id="accent-after-the-last-letter"),
]


@pytest.mark.parametrize(("value", "text", "evidence", "accents_ignored"), NORMALIZED)
def test_normalized_maps_back_to_original_offsets(value: str, text: str, evidence: str, accents_ignored: bool) -> None:
    found = anchor(value, text)
    assert_anchored(found, text, evidence, "normalized")
    assert found is not None and found.score == 1.0 and found.accents_ignored is accents_ignored


def test_accent_sensitive_match_is_preferred() -> None:
    text = "Ha Noi (Hà Nội) is the capital."
    found = anchor("Hà Nội", text)
    assert_anchored(found, text, "Hà Nội", "exact")
    found = anchor("HÀ NỘI", text)
    assert_anchored(found, text, "Hà Nội", "normalized")
    assert found is not None and not found.accents_ignored


def test_evidence_never_splits_a_letter() -> None:
    # A Lao consonant alone is not its syllable with a vowel sign; half of 'ß' is not an 's'.
    assert anchor("ສ", "ສັນຍາ") is None
    assert anchor("Gros", "Die Große Straße") is None
    # An accentless letter is found only by the accent-ignoring tier, with its mark as evidence.
    text = "un cafe\u0301"
    found = anchor("e", text)
    assert found is not None and found.source == "e\u0301" and found.accents_ignored


# --- fuzzy -------------------------------------------------------------------------------------

FUZZY = [
    pytest.param("Правительство провинции Хэнань", "Соглашение подписано правительством провинции Хэнань в 2023 году.",
                 "правительством провинции Хэнань", id="cyrillic-instrumental"),
    pytest.param("Государственная корпорация Росатом", "при участии Государственной корпорации Росатом.",
                 "Государственной корпорации Росатом", id="cyrillic-genitive"),
    pytest.param("宁德时代新能源科技有限公司", "2023年，宁德时代新能源科技股份有限公司与香港大学签署协议。",
                 "宁德时代新能源科技股份有限公司", id="chinese-two-characters-left-out"),
    pytest.param("ສັນຍາການຄ້າ", "ໄດ້ເຊັນສັ່ນຍາການຄ້າແລ້ວ", "ສັ່ນຍາການຄ້າ", id="lao-tone-mark-missing"),
    pytest.param("Uniwersytet Jagielloński w Kraków", "wykład na Uniwersytecie Jagiellońskim w Krakowie",
                 "Uniwersytecie Jagiellońskim w Krakowie", id="polish-locative"),
    pytest.param("Contemporary Amperex Technology Co. Limited",
                 "signed by Contemporary Amperex Technologies Co., Limited",
                 "Contemporary Amperex Technologies Co., Limited", id="latin-plural-and-comma"),
]


@pytest.mark.parametrize(("value", "text", "evidence"), FUZZY)
def test_fuzzy_anchors_inflected_names_with_a_score(value: str, text: str, evidence: str) -> None:
    found = anchor(value, text)
    assert_anchored(found, text, evidence, "fuzzy")
    assert found is not None and FUZZY_MIN <= found.score < 1.0


def test_a_stricter_threshold_refuses_the_same_fuzzy_match() -> None:
    value, text = "Государственная корпорация Хэнань", "с участием Государственной корпорации Хэнань."
    found = anchor(value, text)
    assert found is not None and found.match == "fuzzy"
    assert anchor(value, text, min_score=found.score + 0.01) is None
    assert anchor(value, text, min_score=found.score - 0.01) == found


SOURCE = ("On 12 May 2023 the Ministry of Energy and Mines of the Lao PDR and the Henan Provincial Government "
          "signed a memorandum with the Bank of China on 15,000 tonnes of lithium.\n"
          "2023年5月，宁德时代新能源科技股份有限公司与香港大学及广西省人民政府签署协议，湖南省人民政府办公厅出席。"
          "ທັງສອງຝ່າຍໄດ້ລົງນາມໃນສັນຍາ.")

NOT_SUPPORTED = [
    pytest.param("Ministry of Energy of Laos", id="shares-words-different-last-word"),
    pytest.param("Lao Ministry of Energy and Mines", id="extra-word"),
    pytest.param("Henan Provincial Development Bank", id="mixes-two-names"),
    pytest.param("Hunan Provincial Government", id="one-letter-inside-a-name"),
    pytest.param("Ministry of Energy and Mining", id="other-word-same-stem-too-short"),
    pytest.param("Ministry of Finance", id="same-shape-other-ministry"),
    pytest.param("Bank of Laos", id="short-name-one-word-changed"),
    pytest.param("16,000 tonnes", id="different-figure"),
    pytest.param("12 May 2024", id="different-year"),
    pytest.param("2024年5月", id="different-year-cjk"),
    pytest.param("香港中文大学", id="cjk-longer-name"),
    pytest.param("宁德时代新能源汽车", id="cjk-name-other-ending"),
    pytest.param("宁德时代新能源科技股份有限公司总部", id="cjk-name-with-added-characters"),
    pytest.param("ສັນຍາການຄ້າ", id="lao-compound"),
    pytest.param("广东省人民政府", id="cjk-one-character-replaced"),
    pytest.param("湖北省人民政府办公厅", id="cjk-one-character-replaced-long-name"),
    pytest.param("宁德时代新能源科技股分有限公司", id="cjk-homophone-typo"),
    pytest.param("香港大學", id="cjk-traditional-for-simplified"),
    pytest.param("Contemporary Amperex Technology", id="absent"),
]


@pytest.mark.parametrize("value", NOT_SUPPORTED)
def test_invented_values_are_not_supported(value: str) -> None:
    assert anchor(value, SOURCE) is None


@pytest.mark.parametrize(("value", "text"), [
    pytest.param("", "some text", id="empty-value"),
    pytest.param(" \n\t", "some text", id="blank-value"),
    pytest.param("\u200b", "a\u200bb", id="only-invisible"),
    pytest.param("CATL", "", id="empty-text"),
    pytest.param("Ministry of Energy and Mines", "Ministry of Energy", id="value-longer-than-text"),
    pytest.param("宁德时代新能源科技股份有限公司", "宁德时代", id="cjk-value-longer-than-text"),
])
def test_nothing_to_anchor(value: str, text: str) -> None:
    assert anchor(value, text) is None


# --- property: random substrings of a mixed-script text -----------------------------------------

MIXED = ("Le cafe\u0301 de la Straße 5, the ﬁrst oﬃce of ＣＡＴＬ (宁德时代新能源科技股份有限公司).\n"
         "Соглашение подписано правительством провинции Хэнань  12 мая 2023 г.\n"
         "トヨタ自動車株式会社とｶﾞｽ会社。 한국전력공사 계약 ① ② ③\n"
         "ທັງສອງຝ່າຍໄດ້ລົງນາມໃນສັນຍາ ทั้งสองฝ่ายได้ลงนามในสัญญา\t"
         "وقعت وَزارةُ الطاقة عام ٢٠٢٣ — «Ромашка» Σοφία Hà Nội.")


def _letter_start(text: str, i: int) -> bool:
    # Not a mark (nor half-width 'ﾞ', a mark once NFKC-normalized), not a Hangul vowel or final jamo:
    # a substring may start or end before it.
    if i == len(text):
        return True
    compat = unicodedata.normalize("NFKC", text[i])[0]
    return not (unicodedata.category(compat)[0] == "M" or "\u1160" <= text[i] <= "\u11ff")


def _substrings(count: int) -> list[str]:
    rng = random.Random(20261122)
    found: list[str] = []
    while len(found) < count:
        a = rng.randrange(len(MIXED))
        b = a + rng.randint(1, 24)
        if b <= len(MIXED) and _letter_start(MIXED, a) and _letter_start(MIXED, b):
            sub = MIXED[a:b]
            if sub == sub.strip() and sub:
                found.append(sub)
    return found


def test_random_substrings_anchor_to_themselves() -> None:
    for sub in _substrings(300):
        found = anchor(sub, MIXED)
        assert found is not None and found.match == "exact", sub
        assert (found.start, found.end) == where(MIXED, sub), sub
        assert MIXED[found.start:found.end] == sub


def test_random_substrings_retyped_anchor_to_the_same_text() -> None:
    for sub in _substrings(300):
        first = MIXED.index(sub)
        for retyped in (sub.upper(), unicodedata.normalize("NFD", sub), unicodedata.normalize("NFKC", sub),
                        "  ".join(sub.split())):
            found = anchor(retyped, MIXED)
            assert found is not None and found.match in ("exact", "normalized"), (sub, retyped)
            assert MIXED[found.start:found.end] == found.source
            assert fold(found.source) == fold(sub), (sub, retyped)  # the evidence is the substring, however typed
            assert found.source == retyped if found.match == "exact" else found.start <= first
            assert not found.accents_ignored, (sub, retyped)


def test_any_text_and_value_give_a_sound_anchor_or_none() -> None:
    # Hostile mixes of marks, jamo, ligatures, dotted capitals and invisible characters: never an
    # exception, and an anchor always points at its own source without splitting a letter.
    pool = [*"aAéÉßẞﬁ ①ＣＡ\n\t,«»-–İı", "\u0301", "\u0323", "\u200b", "\u0640", "\u064e", "ب", "ສ", "\u0eb1", "\u0ec8",
            "ก", "\u0e48", "\u0e38", "宁", "ｶ", "ﾞ", "\u1112", "\u1161", "\u11ab", "٣", "Ω", "Å", "\u0345", "㈱",
            "\u0d4a"]
    rng = random.Random(7)
    for _ in range(400):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        if text and rng.random() < 0.6:
            a = rng.randrange(len(text))
            value = text[a:a + rng.randint(1, 10)]
            value = rng.choice([value.upper(), unicodedata.normalize("NFD", value), value.casefold()])
        else:
            value = "".join(rng.choice(pool) for _ in range(rng.randint(0, 8)))
        found = anchor(value, text)
        if found is not None:
            assert 0 <= found.start < found.end <= len(text) and text[found.start:found.end] == found.source
            assert found.end == len(text) or unicodedata.category(text[found.end])[0] != "M", (value, text)
            if found.match == "normalized" and not found.accents_ignored:
                assert fold(found.source).replace(" ", "") == fold(value).replace(" ", ""), (value, text)


# --- fields and highlighting -------------------------------------------------------------------

def test_anchor_fields_follows_the_schema_traits() -> None:
    text = "On 12 May 2023 ＣＡＴＬ signed with the Правительство провинции Хэнань; capacity 15 GWh."
    result = {
        "organizations": [
            {"name": "CATL", "name_original": "CATL"},
            {"name": "Henan Government", "name_original": "Правительство провинции Хэнань"},
            {"name": "Invented Bank", "name_original": "Bank of Henan"},
            {"name": "Missing", "name_original": None},
        ],
        "agreement": {"signed_on": {"as_written": "12 May 2023", "year": 2023}},
        "key_figures": [{"label": "capacity", "value": "15 GWh"}],
    }
    evidence = anchor_fields(result, traits_of(Article).verbatim, text)
    by_path = {item["path"]: item for item in evidence}
    assert by_path["organizations[0].name_original"]["anchor"]["source"] == "ＣＡＴＬ"
    assert by_path["organizations[0].name_original"]["anchor"]["match"] == "normalized"
    for path, shown in [("organizations[1].name_original", "Правительство провинции Хэнань"),
                        ("agreement.signed_on.as_written", "12 May 2023"), ("key_figures[0].value", "15 GWh")]:
        found = by_path[path]["anchor"]
        assert (found["start"], found["end"]) == where(text, shown) and found["source"] == shown
    assert by_path["organizations[2].name_original"] == {
        "path": "organizations[2].name_original", "value": "Bank of Henan", "anchor": None}
    assert "organizations[3].name_original" not in by_path  # null: nothing was claimed


def test_anchor_as_dict_is_json_ready() -> None:
    text = "signed by ＣＡＴＬ"
    found = anchor("CATL", text)
    assert found is not None
    assert found.as_dict() == {"start": text.index("ＣＡＴＬ"), "end": len(text), "match": "normalized", "score": 1.0,
                               "source": "ＣＡＴＬ", "count": 1, "accents_ignored": False}


def test_highlight_spans_merges_overlaps_and_covers_the_text() -> None:
    text = "Ministry of Energy and Mines signed with CATL in Vientiane."
    a, b, c = (anchor(v, text) for v in ("Ministry of Energy", "Energy and Mines", "CATL"))
    touching = {"start": text.index("Vientiane"), "end": len(text) - 1}
    stale = {"start": 0, "end": 4, "source": "Bank"}  # from another version of the document
    spans = highlight_spans(text, [c, a, None, b, touching, {"start": 5, "end": 999}, {"start": "x"}, stale])
    assert [s for s in spans if s[2]] == [(0, text.index(" signed"), True), where(text, "CATL") + (True,),
                                          where(text, "Vientiane") + (True,)]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(x[1] == y[0] for x, y in itertools.pairwise(spans))  # consecutive, no gap, no overlap
    assert "".join(text[s:e] for s, e, _ in spans) == text
    assert highlight_spans(text, []) == [(0, len(text), False)]
    assert highlight_spans(text, [stale]) == [(0, len(text), False)]
    assert highlight_spans("", [a]) == []


def test_composing_characters_match_the_unicode_data() -> None:
    # Every second half of a canonical pair composes with the character before it: the class must
    # know it, or a base letter and its mark could land in two different pieces.
    seconds = set()
    for cp in range(0x20000):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(chr(int(parts[1], 16)))
    assert {c for c in seconds if not anchoring._COMPOSES.match(c)} == set()
