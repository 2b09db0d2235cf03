"""The `generic` schema: title, summary, key points and entities of any document."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from summarizer.traits import English, Key, SourceLanguage, Summary, Title, Verbatim

from ._common import LANGUAGE_ENUM, check_language_code, reject_duplicates


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, English(), Key()] = Field(min_length=1, max_length=200, description="The entity's name in English.")
    name_original: Annotated[str, Verbatim()] = Field(min_length=1, max_length=200, description="The name exactly as written in the source.")
    type: Literal["person", "organization", "place", "product", "event", "other"] = Field(
        description="What kind of entity it is."
    )


class Generic(BaseModel):
    """English title, summary, key points and named entities of any document."""

    SCHEMA_ID: ClassVar[str] = "generic"
    SCHEMA_VERSION: ClassVar[str] = "2"

    model_config = ConfigDict(extra="forbid", title="Generic")

    title: Annotated[str, Title(), English()] = Field(min_length=1, max_length=200, description="A short title in English.")
    summary: Annotated[str, Summary(), English()] = Field(min_length=20, max_length=2000, description="A summary of 2 to 6 sentences in English.")
    source_language: Annotated[str, SourceLanguage()] = Field(
        pattern=r"^[a-z]{2}$", json_schema_extra=LANGUAGE_ENUM, description="ISO 639-1 code of the source text's language."
    )
    key_points: list[Annotated[str, English()]] = Field(min_length=1, max_length=10, description="The main points, in English, one sentence each.")
    entities: list[Entity] = Field(max_length=30, description="Named entities in the text, each listed once.")

    @field_validator("source_language")
    @classmethod
    def _iso_639_1(cls, value: str) -> str:
        return check_language_code(value)

    @model_validator(mode="after")
    def _no_duplicates(self) -> Generic:
        reject_duplicates(self.key_points, "key point")
        reject_duplicates((e.name for e in self.entities), "entity")
        return self
