"""Real documents in: PDF, DOCX, PPTX, e-mail, mailboxes and Markdown, with a clear status for
scans, passwords, damage and size (fixtures are made in memory by tests/docmakers.py)."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import pytest

from summarizer.documents import limits, load_document
from summarizer.errors import (ConverterMissing, CorruptDocument, EmptyDocument, EncryptedDocument, InputError,
                               NoTextLayer, NotTextDocument, TooLarge)
from summarizer.loopback import LoopbackServer
from summarizer.store import latest_manifest, read_manifest

from .docmakers import (encrypt_pdf, make_docx, make_eml, make_pdf, make_pptx, make_raw_docx, w_paragraph)

RU = "Компания CATL подписала соглашение о стратегическом сотрудничестве с городом Чжаоцин."
RU_2 = "Стороны построят завод по производству аккумуляторов; инвестиции превысят 12 млрд юаней."
EN = "The parties will build a battery plant; investment will exceed 12 billion yuan."


def _status(exc: pytest.ExceptionInfo[InputError]) -> str:
    return exc.value.status


# --- PDF ---------------------------------------------------------------------------------------

def test_pdf_text_layer_is_read_with_cyrillic_and_pages_apart() -> None:
    """Each page's lines come out in order, Cyrillic intact; pages are separated by a blank line."""
    document = load_document("report.pdf", make_pdf([f"{RU}\n{EN}", RU_2]))
    assert document.format == "pdf"
    assert document.encoding == "pdf"
    assert document.text == f"{RU}\n{EN}\n\n{RU_2}"


def test_pdf_running_headers_and_footers_are_dropped() -> None:
    """A header and a page-numbered footer repeated on every page go; body lines that merely
    repeat elsewhere, and the first page's own lines, stay."""
    pages = [f"ACME Corp - Confidential\n{text}\nPage {n} of 4" for n, text in enumerate([RU, RU_2, EN, RU], 1)]
    text = load_document("r.pdf", make_pdf(pages)).text
    assert text == f"{RU}\n\n{RU_2}\n\n{EN}\n\n{RU}"
    two = load_document("two.pdf", make_pdf([f"ACME\n{RU}", f"ACME\n{EN}"])).text
    assert two == f"ACME\n{RU}\n\nACME\n{EN}"  # too few pages to tell a running header from content


def test_pdf_word_hyphenated_across_lines_is_joined() -> None:
    """A word split by a hyphen at a line's end comes back whole (PDFium marks the split)."""
    text = load_document("h.pdf", make_pdf(["The strategic coopera-\ntion agreement was signed."])).text
    assert text == "The strategic cooperation agreement was signed."


def test_pdf_found_by_magic_bytes_whatever_its_name() -> None:
    """Magic bytes first: a PDF named .txt is a PDF; text named .pdf is text."""
    assert load_document("misnamed.txt", make_pdf([EN])).format == "pdf"
    document = load_document("notes.pdf", EN.encode())
    assert (document.format, document.text) == ("text", EN)


def test_scanned_pdf_without_text_layer_gets_no_text_layer() -> None:
    """Pages that are only pictures: status no_text_layer, and the message says to run OCR."""
    with pytest.raises(NoTextLayer, match="ocrmypdf") as exc:
        load_document("scan.pdf", make_pdf(["", "", ""], image_only=True))
    assert _status(exc) == "no_text_layer"
    assert "no text layer" in str(exc.value)


def test_pdf_with_page_numbers_only_counts_as_scanned() -> None:
    """A scan whose only text is a page number per page has no text layer worth summarizing."""
    with pytest.raises(NoTextLayer):
        load_document("scan.pdf", make_pdf(["1", "2", "3", "4"]))
    assert load_document("short.pdf", make_pdf(["Tiny"])).text == "Tiny"  # one short page is fine


def test_password_protected_pdf_is_encrypted() -> None:
    """A PDF that needs a password to open: status encrypted, with how to remove the password."""
    with pytest.raises(EncryptedDocument, match="password") as exc:
        load_document("locked.pdf", encrypt_pdf(make_pdf([RU]), "secret"))
    assert _status(exc) == "encrypted"
    assert "qpdf --decrypt" in str(exc.value)


def test_pdf_with_owner_password_only_is_read() -> None:
    """Encrypted with an empty user password (copy protection only): readers open it, so do we."""
    assert load_document("protected.pdf", encrypt_pdf(make_pdf([RU]), "")).text == RU


def test_damaged_pdf_is_not_text_with_a_clear_reason() -> None:
    """A truncated PDF or one without pages: not_text (CorruptDocument) naming the damage."""
    data = make_pdf([RU, RU_2])
    for damaged in (data[: len(data) // 3], b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"):
        with pytest.raises(CorruptDocument, match="PDF file that cannot be read") as exc:
            load_document("broken.pdf", damaged)
        assert _status(exc) == "not_text"


def test_pdf_over_the_page_limit_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """More pages than the limit: too_large before any page is read."""
    monkeypatch.setattr(limits, "MAX_PAGES", 3)
    with pytest.raises(TooLarge, match="4 pages") as exc:
        load_document("big.pdf", make_pdf([EN] * 4))
    assert _status(exc) == "too_large"
    assert load_document("ok.pdf", make_pdf([EN] * 3)).text.count(EN) == 3


def test_pdf_over_the_character_limit_is_too_large() -> None:
    """Text past the character limit stops extraction with too_large."""
    with pytest.raises(TooLarge, match="200 characters"):
        load_document("long.pdf", make_pdf([EN] * 5), max_chars=200)
    assert load_document("long.pdf", make_pdf([EN] * 5), max_chars=500).text.count(EN) == 5


def test_pdf_without_its_reader_installed_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken install (pypdfium2 missing): status converter_missing with the pip command, not a traceback."""
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # makes `import pypdfium2` raise ImportError
    with pytest.raises(ConverterMissing, match="pip install pypdfium2") as exc:
        load_document("report.pdf", make_pdf([EN]))
    assert _status(exc) == "converter_missing"


# --- DOCX and PPTX -----------------------------------------------------------------------------

def test_docx_written_by_python_docx_keeps_paragraphs_and_table() -> None:
    """Heading, Cyrillic paragraphs and table rows, in document order."""
    data = make_docx(["Соглашение CATL", RU, RU_2], table=[["Мощность", "10 ГВт·ч"], ["Сумма", "12 млрд"]])
    document = load_document("deal.docx", data)
    assert document.format == "docx"
    assert document.text == f"Соглашение CATL\n\n{RU}\n\n{RU_2}\n\nМощность 10 ГВт·ч\nСумма 12 млрд"


def test_docx_reads_what_paragraph_apis_miss_and_skips_what_readers_do_not_see() -> None:
    """Content controls, tracked insertions, tabs and breaks are read; deleted text, field codes
    and the fallback copy of a text box are not."""
    body = (
        w_paragraph("Intro.")
        + "<w:sdt><w:sdtContent>" + w_paragraph("Inside a content control.") + "</w:sdtContent></w:sdt>"
        + '<w:p><w:ins w:id="1" w:author="a"><w:r><w:t>Inserted.</w:t></w:r></w:ins>'
        '<w:del w:id="2" w:author="a"><w:r><w:delText>Deleted.</w:delText></w:r></w:del>'
        "<w:r><w:instrText> PAGE </w:instrText></w:r></w:p>"
        '<w:p><w:r><w:t>Left</w:t><w:tab/><w:t>right</w:t><w:br/><w:t>next line</w:t></w:r></w:p>'
        '<w:p><w:r><mc:AlternateContent xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
        "<mc:Choice Requires=\"wps\"><w:txbxContent>" + w_paragraph("Text box.") + "</w:txbxContent></mc:Choice>"
        "<mc:Fallback><w:txbxContent>" + w_paragraph("Text box.") + "</w:txbxContent></mc:Fallback>"
        "</mc:AlternateContent></w:r></w:p>"
    )
    text = load_document("d.docx", make_raw_docx(body)).text
    assert text == "Intro.\n\nInside a content control.\n\nInserted.\n\nLeft right\nnext line\n\nText box."


def test_docx_with_a_dtd_is_refused_before_any_entity_expands() -> None:
    """A billion-laughs DOCX (Office never writes a DTD) is corrupt, not a memory blow-up."""
    bomb = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            "<w:p><w:r><w:t>&b;</w:t></w:r></w:p></w:body></w:document>")
    data = make_raw_docx("")
    data = _replace_part(data, "word/document.xml", bomb)
    with pytest.raises(CorruptDocument, match="DTD"):
        load_document("bomb.docx", data)


def test_docx_decompressing_past_the_xml_limit_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """A zip bomb (a small file with huge XML inside) stops at the decompressed-size limit."""
    monkeypatch.setattr("summarizer.documents.ooxml.MAX_XML_BYTES", 100_000)
    data = make_raw_docx(w_paragraph("x") * 20_000)  # about 1 MB of XML, a few kB zipped
    assert len(data) < 20_000
    with pytest.raises(TooLarge, match="zip bomb"):
        load_document("bomb.docx", data)


def test_truncated_docx_and_plain_zip_are_not_text() -> None:
    """A cut DOCX cannot be opened; a ZIP that is no Office file is an archive: both not_text."""
    data = make_docx(["Title", RU])
    with pytest.raises(NotTextDocument, match="ZIP archive that cannot be opened"):
        load_document("cut.docx", data[: len(data) // 2])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes.txt", EN)
    with pytest.raises(NotTextDocument, match=r"\(ZIP archive\)"):
        load_document("bundle.zip", archive.getvalue())


def test_password_protected_zip_entries_are_encrypted() -> None:
    """A DOCX whose ZIP entries carry the encryption flag: status encrypted, not a crash."""
    data = bytearray(make_docx(["Title", RU]))
    position = data.find(b"PK\x01\x02")
    while position != -1:  # set "encrypted" in each central directory entry's flags
        data[position + 8] |= 0x01
        position = data.find(b"PK\x01\x02", position + 4)
    with pytest.raises(EncryptedDocument, match="password-protected ZIP"):
        load_document("locked.docx", bytes(data))


def test_encrypted_and_old_office_files() -> None:
    """A password-protected Office file (an OLE container with EncryptedPackage) is encrypted; an
    old binary .doc is not_text with how to convert it."""
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500)
    with pytest.raises(EncryptedDocument, match="password-protected Office file"):
        load_document("locked.docx", ole + "EncryptedPackage".encode("utf-16-le") + bytes(100))
    with pytest.raises(NotTextDocument, match="old Office document.*--convert-to docx"):
        load_document("old.doc", ole)


def test_pptx_slides_in_presentation_order() -> None:
    """Slides come in the order the presentation lists them, not by file name."""
    data = make_pptx([["Slide file one", RU], ["Slide file two"]], order=[1, 0])
    document = load_document("deck.pptx", data)
    assert document.format == "pptx"
    assert document.text == f"Slide file two\n\nSlide file one\n{RU}"


# --- E-mail ------------------------------------------------------------------------------------

def test_eml_gives_headers_plain_body_and_lists_attachments_without_inlining_them() -> None:
    """Subject/From/To/Date lines, the text/plain alternative, attachments named with type and size."""
    data = make_eml("Соглашение с CATL", "Иван Петров <ivan@example.ru>", f"{RU}\n\n{RU_2}\n",
                    html=f"<html><body><p>HTML copy: {RU}</p></body></html>",
                    attachments={"contract.pdf": b"%PDF-1.4 secret attachment bytes"})
    document = load_document("mail.eml", data)
    assert document.format == "eml"
    assert document.text == (
        "Subject: Соглашение с CATL\nFrom: Иван Петров <ivan@example.ru>\nTo: Board <board@example.org>\n"
        "Date: Mon, 03 Mar 2025 09:30:00 +0300\nAttachments: contract.pdf (application/octet-stream, 32 bytes)\n\n"
        f"{RU}\n\n{RU_2}")
    assert "HTML copy" not in document.text and "secret attachment" not in document.text


def test_eml_html_only_body_goes_through_the_html_extractor() -> None:
    """A message with only an HTML body: its article text, without scripts or styles."""
    message = make_eml("News", "a@example.org", "placeholder")
    html = f"<html><head><style>p {{}}</style></head><body><p>{RU}</p><script>x()</script></body></html>"
    data = message.replace(b"Content-Type: text/plain", b"Content-Type: text/html").replace(
        b"placeholder", html.encode("utf-8"))
    text = load_document("news.eml", data).text
    assert text.endswith(f"\n\n{RU}")
    assert "x()" not in text and "<p>" not in text


def test_eml_in_a_legacy_charset_is_decoded_by_its_declared_charset() -> None:
    """A KOI8-R message (8bit, as old mail clients send it) decodes to the right Cyrillic.

    It is named .txt: its header lines, not its name, make it an e-mail."""
    data = (b"From: ivan@example.ru\r\nSubject: =?koi8-r?b?" + base64.b64encode("Отчёт".encode("koi8-r"))
            + b"?=\r\nDate: Tue, 04 Mar 2025 10:00:00 +0300\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + RU.encode("koi8-r") + b"\r\n")
    document = load_document("message.txt", data)
    assert (document.format, document.encoding) == ("eml", "koi8-r")
    assert document.text == f"Subject: Отчёт\nFrom: ivan@example.ru\nDate: Tue, 04 Mar 2025 10:00:00 +0300\n\n{RU}"


def test_eml_raw_8bit_headers_and_forwarded_messages() -> None:
    """Unencoded cp1251 header bytes are detected like text; a forwarded message is listed by its subject."""
    data = ("From: Иван <ivan@example.ru>\nSubject: Отчёт о сотрудничестве\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=windows-1251\n\n"
            f"{RU}\n--b\nContent-Type: message/rfc822\n\nFrom: x@example.org\nSubject: Inner\n\nInner body.\n--b--\n"
            ).encode("cp1251")
    assert load_document("fw.eml", data).text == (
        "Subject: Отчёт о сотрудничестве\nFrom: Иван <ivan@example.ru>\n"
        f'Attachments: forwarded message "Inner" (message/rfc822)\n\n{RU}')


def test_mbox_gives_every_message_in_order() -> None:
    """A mailbox: each message with its headers, separated, the mboxrd '>From ' quoting undone."""
    first = make_eml("First", "a@example.org", f"{EN}\n>From the archive.\n")
    second = make_eml("Second", "b@example.org", RU)
    data = (b"From a@example.org Mon Mar  3 09:30:00 2025\n" + first
            + b"\nFrom b@example.org Tue Mar  4 10:00:00 2025\n" + second)
    document = load_document("inbox.mbox", data)
    assert document.format == "mbox"
    subjects = re.findall(r"^Subject: (.*)$", document.text, re.M)
    assert subjects == ["First", "Second"]
    assert "\nFrom the archive." in document.text and RU in document.text


# --- Markdown and text -------------------------------------------------------------------------

def test_markdown_keeps_text_drops_front_matter_links_targets_and_comments() -> None:
    """Front matter goes (its title stays), link and image targets go, headings and lists stay."""
    page = ("---\ntitle: \"CATL in Zhaoqing\"\ntags: [batteries]\n---\n# Соглашение\n\n"
            "<!-- draft note -->\nSee [the deal](https://example.org/deal \"x\") and ![Plant photo](img/plant.png).\n\n"
            "- first point\n- second point\n\n[ref]: https://example.org/ref\n")
    document = load_document("deal.md", page.encode())
    assert document.format == "markdown"
    assert document.text == ("CATL in Zhaoqing\n\n# Соглашение\n\nSee the deal and Plant photo.\n\n"
                             "- first point\n- second point")


def test_markdown_starting_with_a_rule_is_not_front_matter() -> None:
    """A leading horizontal rule is text structure, not metadata: nothing between rules is lost."""
    page = "---\nImportant paragraph.\n---\nMore.\n"
    assert load_document("n.md", page.encode()).text == "---\nImportant paragraph.\n---\nMore."


def test_every_format_stops_at_the_character_limit() -> None:
    """Text, DOCX, PPTX and mailboxes past max_chars: too_large, naming --max-doc-chars."""
    long_text = (EN + "\n") * 20
    samples = {
        "huge.txt": long_text.encode(),
        "huge-bytes.txt": b"x" * 5000,  # caught from the byte count alone, before decoding
        "huge.docx": make_raw_docx(w_paragraph(long_text)),
        "huge.pptx": make_pptx([[EN] * 20]),
        "huge.mbox": b"".join(b"From a@example.org Mon Mar  3 09:30:00 2025\n" + make_eml("S", "a@example.org", EN)
                              for _ in range(20)),
    }
    for name, data in samples.items():
        with pytest.raises(TooLarge, match="--max-doc-chars"):
            load_document(name, data, max_chars=1000)
        if name != "huge-bytes.txt":
            assert EN in load_document(name, data, max_chars=100_000).text


def test_png_stays_not_text_and_empty_docx_is_empty() -> None:
    """Images remain not_text; an Office file without any text is empty."""
    with pytest.raises(NotTextDocument, match="PNG image"):
        load_document("x.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(EmptyDocument):
        load_document("blank.docx", make_raw_docx("<w:p/>"))


def _replace_part(data: bytes, name: str, content: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            target.writestr(item.filename, content if item.filename == name else source.read(item))
    return out.getvalue()


# --- Through the CLI ---------------------------------------------------------------------------

def test_folder_of_every_format_through_the_cli(tmp_path: Path, cli, server: LoopbackServer) -> None:
    """PDF, DOCX, EML, HTML, Markdown and text each give an output with the right document.format,
    the model gets their text; the scanned and the encrypted PDF get their statuses in the manifest."""
    folder = tmp_path / "docs"
    folder.mkdir()
    files = {
        "report.pdf": (make_pdf([f"{RU}\n{EN}"]), "pdf", RU),
        "deal.docx": (make_docx(["Deal", RU_2]), "docx", RU_2),
        "mail.eml": (make_eml("Deal", "ivan@example.ru", EN), "eml", EN),
        "page.html": (f"<!doctype html><html><body><article><p>{RU}</p></article></body></html>".encode(), "html", RU),
        "notes.md": (f"# Notes\n\n[{EN}](https://example.org)\n".encode(), "markdown", EN),
        "plain.txt": (RU_2.encode("cp1251"), "text", RU_2),
    }
    for name, (data, _, _) in files.items():
        (folder / name).write_bytes(data)
    (folder / "scan.pdf").write_bytes(make_pdf(["", ""], image_only=True))
    (folder / "locked.pdf").write_bytes(encrypt_pdf(make_pdf([RU]), "secret"))
    out = tmp_path / "out"
    result = cli("summarize", folder, "--base-url", server.url, "--out", out, "--cache-dir", tmp_path / "cache",
                 "--tables", "never")
    assert result.code == 1, result.stderr  # two documents cannot be read
    sent = "\n".join(r.body["messages"][-1]["content"] for r in server.requests)
    assert len(server.requests) == len(files)
    for name, (_, fmt, text) in files.items():
        envelope = json.loads((out / Path(name).with_suffix(".json")).read_text("utf-8"))
        assert envelope["document"]["format"] == fmt, name
        assert text in sent, f"{name}: the model did not get its text"
    entries = {e["relative"]: e for e in read_manifest(latest_manifest(out))}
    assert entries["scan.pdf"]["status"] == "no_text_layer"
    assert "ocrmypdf" in entries["scan.pdf"]["error"]
    assert entries["locked.pdf"]["status"] == "encrypted"
    assert {entries[name]["status"] for name in files} <= {"ok", "cached"}
    assert "no_text_layer" in result.stderr and "encrypted" in result.stderr


def test_a_pdf_whose_header_is_not_at_byte_zero_gets_a_containers_size_limit(tmp_path):
    from summarizer.processor import document_from_bytes, file_cap, read_capped

    pdf = b"\n" + make_pdf(["CATL signed an agreement with Zhaoqing."])  # readers accept it; so do we
    limit = 40  # characters: far fewer than the PDF's bytes, more than its text
    assert len(pdf) > file_cap(limit)
    (tmp_path / "late.pdf").write_bytes(pdf)
    data = read_capped(str(tmp_path / "late.pdf"), file_cap(limit))
    assert data == pdf  # read whole, as a container
    assert "CATL signed" in document_from_bytes("late.pdf", data, limit).text
