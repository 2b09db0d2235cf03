"""Hand-written article results for the five seeds, shared by the report, eval and browser tests."""

from __future__ import annotations

from typing import Any


def org(name: str, original: str, role: str = "party", kind: str = "company") -> dict[str, Any]:
    return {"name": name, "name_original": original, "type": kind, "role": role, "country": "China"}


def signed(year: int | None, month: int | None, day: int | None, as_written: str) -> dict[str, Any]:
    return {"year": year, "month": month, "day": day, "as_written": as_written}


def article(title: str, summary: str, language: str, organizations: list[dict[str, Any]], parties: list[str],
            signed_on: dict[str, Any] | None, areas: list[str], topics: list[str], **extra: Any) -> dict[str, Any]:
    return {"title": title, "summary": summary, "source_language": language, "organizations": organizations,
            "people": extra.get("people", []),
            "agreement": {"kind": extra.get("kind", "strategic cooperation agreement"), "parties": parties,
                          "signed_on": signed_on, "place": extra.get("place"), "term_years": None, "areas": areas},
            "key_figures": extra.get("key_figures", []), "topics": topics}


# What a careful model answers for each seed (true to the texts; every verbatim value is in them).
SEED_RESULTS: dict[str, dict[str, Any]] = {
    "000_f5657d2c5e6c31f2": article(
        "CECEP and CATL sign strategic cooperation agreement on energy storage",
        "China Energy Conservation and Environmental Protection Group (CECEP) and CATL signed a strategic "
        "cooperation agreement in Ningde, Fujian province, on 25 February. They will cooperate on new energy "
        "materials, energy storage technology, equipment procurement and project development. A week earlier CATL "
        "signed a similar agreement with Liaoning Fangda Group.",
        "ru",
        [org("China Energy Conservation and Environmental Protection Group",
             "Китайская группа по энергосбережению и охране окружающей среды"),
         org("CATL", "CATL"),
         org("Liaoning Fangda Group Industrial Co., Ltd.", "Liaoning Fangda Group Industrial Co., Ltd.", "mentioned")],
        ["China Energy Conservation and Environmental Protection Group", "CATL"],
        signed(None, 2, 25, "25 февраля"),
        ["new energy materials", "energy storage technology", "equipment procurement", "project development"],
        ["energy storage", "batteries", "state-owned enterprises"],
        place="Ningde, Fujian", key_figures=[{"value": "700", "meaning": "subsidiaries of CECEP"}],
    ),
    "001_1a11767ed79f635d": article(
        "CATL signs strategic framework agreement with Henan province and Luoyang",
        "On 22 June 2022 CATL signed a strategic cooperation framework agreement with the Henan provincial "
        "government and the Luoyang city administration. The partners plan a zero-carbon industrial hub and "
        "cooperation on R&D, battery production and new energy applications.",
        "de",
        [org("CATL", "Contemporary Amperex Technology Co., Limited"),
         org("Henan Provincial Government", "Provinzregierung von Henan", kind="government"),
         org("Luoyang Municipal Government", "Stadtverwaltung von Luoyang", kind="government")],
        ["CATL", "Henan Provincial Government", "Luoyang Municipal Government"],
        signed(2022, 6, 22, "22.06.2022"),
        ["R&D", "battery production", "new energy ecosystem", "energy storage technology"],
        ["batteries", "carbon neutrality", "regional development"],
        kind="strategic cooperation framework agreement",
        people=[{"name": "Lou Yangsheng", "name_original": "Lou Yangsheng",
                 "title": "Secretary of the Henan Provincial Committee of the Communist Party of China",
                 "organization": None},
                {"name": "Robin Zeng", "name_original": "Robin Zeng", "title": "Chairman", "organization": "CATL"}],
    ),
    "002_58b7a0a3b69e6006": article(
        "CATL and Zhaoqing city sign comprehensive cooperation agreement",
        "The municipal government of Zhaoqing city in Guangdong signed a comprehensive cooperation agreement with "
        "CATL. The partnership covers new energy applications, green energy development and manufacturing.",
        "en",
        [org("CATL", "Contemporary Amperex Technology Co. Limited"),
         org("Zhaoqing Municipal Government", "municipal government of Zhaoqing city", kind="government")],
        ["CATL", "Zhaoqing Municipal Government"],
        None,
        ["new energy applications", "green energy development", "manufacturing"],
        ["batteries", "new energy"],
        kind="comprehensive cooperation agreement",
    ),
    "003_912c44fa5303de8d": article(
        "CATL and Lanzhou sign strategic cooperation agreement on zero-carbon transition",
        "On 29 May CATL signed a strategic cooperation agreement with the Lanzhou Municipal Government. The "
        "partners will develop the battery aftermarket, electrify regional transport and build a zero-carbon "
        "urban ecosystem.",
        "pt",
        [org("CATL", "CATL"), org("Lanzhou Municipal Government", "Governo Municipal de Lanzhou", kind="government")],
        ["CATL", "Lanzhou Municipal Government"],
        signed(None, 5, 29, "29 de maio"),
        ["battery aftermarket", "transport electrification", "zero-carbon urban ecosystem"],
        ["batteries", "electric vehicles", "zero carbon"],
    ),
    "004_28a269a1abbfeef6": article(
        "CATL and the University of Hong Kong form zero-carbon partnership",
        "CATL signed a strategic cooperation agreement with the University of Hong Kong (HKU). The partners will "
        "work on global zero-carbon policy standards, technological innovation and the energy transition.",
        "pt",
        [org("CATL", "CATL"), org("The University of Hong Kong", "Universidade de Hong Kong", kind="university")],
        ["CATL", "The University of Hong Kong"],
        None,
        ["zero-carbon policy standards", "technological innovation", "energy transition"],
        ["zero carbon", "batteries", "research"],
    ),
}
