"""The article schema's validators enforce meaning beyond types."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.article import Article
from schemas.generic import Generic

from .fakes import article


def signed(year, month, day, as_written="on that day"):
    data = article()
    data["agreement"]["signed_on"] = {"year": year, "month": month, "day": day, "as_written": as_written}
    return data


def test_sample_article_is_valid():
    assert Article.model_validate(article()).agreement is not None


@pytest.mark.parametrize("code", ["xx", "eng", "RU-ru", "PT", ""])
def test_source_language_must_be_iso_639_1(code):
    with pytest.raises(ValidationError, match="source_language"):
        Article.model_validate(article(source_language=code))


@pytest.mark.parametrize("year,month,day", [(2023, 2, 29), (2024, 2, 30), (2024, 4, 31), (None, 2, 30)])
def test_impossible_dates_are_rejected(year, month, day):
    with pytest.raises(ValidationError, match="not a real date"):
        Article.model_validate(signed(year, month, day))


@pytest.mark.parametrize("year,month,day", [(2024, 2, 29), (None, 2, 29), (None, 2, 25), (2022, None, None)])
def test_real_or_partial_dates_pass(year, month, day):
    assert Article.model_validate(signed(year, month, day)).agreement.signed_on.month == month


def test_day_without_month_is_rejected():
    with pytest.raises(ValidationError, match="no month"):
        Article.model_validate(signed(2024, None, 3))


def test_party_missing_from_organizations_is_rejected():
    data = article()
    data["agreement"]["parties"] = ["CATL", "Tesla"]
    with pytest.raises(ValidationError, match="Tesla"):
        Article.model_validate(data)


def test_duplicate_organizations_are_rejected():
    data = article()
    data["organizations"].append(dict(data["organizations"][0], name=" catl ", country="Hong Kong"))
    with pytest.raises(ValidationError, match="duplicate organization"):
        Article.model_validate(data)


def test_list_lengths_are_bounded():
    with pytest.raises(ValidationError, match="topics"):
        Article.model_validate(article(topics=[f"topic {i}" for i in range(9)]))


def test_string_lengths_are_bounded():
    with pytest.raises(ValidationError, match="title"):
        Article.model_validate(article(title="x" * 201))


@pytest.mark.parametrize("summary,ok", [
    ("CATL signed a deal. It covers batteries.", True),
    ("Contemporary Amperex Technology Co. Ltd. signed a deal with Zhaoqing. It covers batteries.", True),
    ("CATL signed a deal with the city of Zhaoqing today.", False),
    ("One. Two. Three. Four. Five. Six sentences are too many here.", False),
])
def test_summary_has_two_to_five_sentences(summary, ok):
    if ok:
        Article.model_validate(article(summary=summary))
    else:
        with pytest.raises(ValidationError, match="sentence"):
            Article.model_validate(article(summary=summary))


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="extra"):
        Article.model_validate(article(sentiment="positive"))


def test_generic_schema_rejects_duplicate_key_points():
    data = {"title": "T", "summary": "A summary that is long enough.", "source_language": "en",
            "key_points": ["Same point", "same point"], "entities": []}
    with pytest.raises(ValidationError, match="duplicate key point"):
        Generic.model_validate(data)


def test_exact_repeats_from_a_looping_model_are_dropped():
    data = article(topics=["batteries", "Batteries ", "new energy"])
    data["organizations"].append(dict(data["organizations"][0]))
    data["agreement"]["areas"] = ["storage", "storage"]
    result = Article.model_validate(data)
    assert [o.name for o in result.organizations] == ["CATL", "Zhaoqing Municipal Government"]
    assert result.topics == ["batteries", "new energy"]
    assert result.agreement.areas == ["storage"]
