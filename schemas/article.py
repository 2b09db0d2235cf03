"""The `article` schema: news of agreements and partnerships, summarized in English."""

from __future__ import annotations

import calendar
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from summarizer.traits import English, Key, LinksTo, SourceLanguage, Summary, Title, Verbatim

from ._common import LANGUAGE_ENUM, check_language_code, count_sentences, drop_repeats_in, fold, reject_duplicates



class Organization(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, English(), Key()] = Field(min_length=1, max_length=120, description="The organization's name in English.")
    name_original: Annotated[str, Verbatim()] = Field(
        min_length=1,
        max_length=200,
        description="The name exactly as written in the source text, in the source's language and script.",
    )
    type: Literal["company", "government", "university", "research", "association", "other"] = Field(
        description="What kind of organization it is."
    )
    role: Literal["party", "mentioned"] = Field(
        description="'party' if it signed or entered the agreement, otherwise 'mentioned'."
    )
    country: Annotated[str | None, English()] = Field(max_length=100, description="Country in English, or null if unknown.")


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, English(), Key()] = Field(min_length=1, max_length=120, description="The person's name in English (Latin script).")
    name_original: Annotated[str, Verbatim()] = Field(
        min_length=1, max_length=200, description="The name exactly as written in the source text."
    )
    title: Annotated[str | None, English()] = Field(max_length=200, description="Job title or function in English, or null.")
    organization: Annotated[str | None, English()] = Field(
        max_length=200, description="English name of the organization the person speaks for, or null."
    )


class SignedOn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    year: int | None = Field(ge=1900, le=2100, description="Year the agreement was signed, or null if not stated.")
    month: int | None = Field(ge=1, le=12, description="Month (1-12), or null if not stated.")
    day: int | None = Field(ge=1, le=31, description="Day of the month, or null if not stated.")
    as_written: Annotated[str, Verbatim()] = Field(
        min_length=1, max_length=100, description="The date exactly as written in the source text."
    )

    @model_validator(mode="after")
    def _real_calendar_date(self) -> SignedOn:
        if self.day is not None and self.month is None:
            raise ValueError("signed_on has a day but no month; give the month or set day to null")
        if self.day is not None and self.month is not None:
            # Without a year, allow 29 February; with one, the real calendar decides.
            year = self.year if self.year is not None else 2000
            last = calendar.monthrange(year, self.month)[1]
            if self.day > last:
                raise ValueError(f"signed_on {year if self.year else '????'}-{self.month:02d}-{self.day:02d} "
                                 f"is not a real date (that month has {last} days)")
        return self


class Agreement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Annotated[str, English()] = Field(
        min_length=1, max_length=120,
        description="Kind of agreement in English, e.g. 'strategic cooperation agreement'.",
    )
    parties: list[Annotated[str, StringConstraints(min_length=1, max_length=120), LinksTo("organizations[].name")]] = Field(
        min_length=1, max_length=5,
        description="English names of the parties; each must be the 'name' of an entry in organizations.",
    )
    signed_on: SignedOn | None = Field(description="When it was signed, or null if the text does not say.")
    place: Annotated[str | None, English()] = Field(max_length=200, description="Where it was signed, in English, or null.")
    term_years: int | None = Field(ge=1, le=100, description="Duration in years if stated, else null.")
    areas: list[Annotated[str, StringConstraints(min_length=1, max_length=100), English()]] = Field(
        max_length=8, description="Areas of cooperation in English, short noun phrases."
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_repeats(cls, data: Any) -> Any:
        return drop_repeats_in(data, ("parties", "areas"))

    @model_validator(mode="after")
    def _no_duplicates(self) -> Agreement:
        reject_duplicates(self.parties, "party")
        reject_duplicates(self.areas, "area")
        return self


class KeyFigure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Annotated[str, Verbatim()] = Field(min_length=1, max_length=100, description="The number exactly as written in the source.")
    meaning: Annotated[str, English()] = Field(min_length=1, max_length=200, description="What the number measures, in English.")


class Article(BaseModel):
    """English summary and structured facts of a news article about agreements and partnerships."""

    SCHEMA_ID: ClassVar[str] = "article"
    SCHEMA_VERSION: ClassVar[str] = "3"

    model_config = ConfigDict(extra="forbid", title="Article")

    title: Annotated[str, Title(), English()] = Field(min_length=1, max_length=200, description="A short headline in English.")
    summary: Annotated[str, Summary(), English()] = Field(
        min_length=20, max_length=1000,
        description="2 to 5 sentences in English, even when the source is in another language.",
    )
    source_language: Annotated[str, SourceLanguage()] = Field(
        pattern=r"^[a-z]{2}$", json_schema_extra=LANGUAGE_ENUM,
        description="ISO 639-1 code of the source text's language, e.g. 'ru', 'de', 'pt'.",
    )
    organizations: list[Organization] = Field(
        max_length=12, description="Organizations named in the text, each listed once."
    )
    people: list[Person] = Field(max_length=12, description="People named in the text, each listed once.")
    agreement: Agreement | None = Field(description="The agreement the text reports, or null if there is none.")
    key_figures: list[KeyFigure] = Field(
        max_length=10, description="Important numbers (amounts, counts, capacities) as written in the text."
    )
    topics: list[Annotated[str, StringConstraints(min_length=1, max_length=60), English()]] = Field(
        max_length=6, description="A few English topic keywords."
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_repeats(cls, data: Any) -> Any:
        return drop_repeats_in(data, ("organizations", "people", "key_figures", "topics"))

    @classmethod
    def run_day_checks(cls, result: dict[str, Any], today: date) -> list[str]:
        """Checks that need the run's day (summarizer.checks calls them): no signing date after it."""
        agreement = result.get("agreement") or {}
        problem = _date_problem(agreement.get("signed_on") or {}, today)
        return [problem] if problem else []

    @field_validator("source_language")
    @classmethod
    def _iso_639_1(cls, value: str) -> str:
        return check_language_code(value)

    @field_validator("summary")
    @classmethod
    def _two_to_five_sentences(cls, value: str) -> str:
        n = count_sentences(value)
        if not 2 <= n <= 5:
            raise ValueError(f"summary has {n} sentence(s); write 2 to 5 sentences")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Article:
        reject_duplicates((o.name for o in self.organizations), "organization")
        reject_duplicates((p.name for p in self.people), "person")
        reject_duplicates(self.topics, "topic")
        reject_duplicates((f"{k.value} {k.meaning}" for k in self.key_figures), "key figure")
        if self.agreement is not None:
            known = {fold(o.name) for o in self.organizations} | {fold(o.name_original) for o in self.organizations}
            missing = [p for p in self.agreement.parties if fold(p) not in known]
            if missing:
                raise ValueError(
                    f"agreement parties {missing} are not among the organizations; "
                    "add them to organizations or use the organization's exact 'name'"
                )
        return self


def _date_problem(signed: dict[str, Any], today: date) -> str | None:
    year, month, day = signed.get("year"), signed.get("month"), signed.get("day")
    if not isinstance(year, int):
        return None  # without a year a date cannot be placed before or after today
    try:
        earliest = date(year, month or 1, day or 1)  # a partial date is in the future only if all of it is
    except (TypeError, ValueError):
        return f"agreement.signed_on {year}-{month}-{day} is not a real calendar date"
    if earliest > today:
        shown = "-".join(f"{v:02d}" for v in (year, month, day) if isinstance(v, int))
        return (f"agreement.signed_on {shown} is in the future of this run ({today.isoformat()}): "
                "use the date the text gives, or null")
    return None
