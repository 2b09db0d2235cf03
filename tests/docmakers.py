"""Fixture documents made in memory: PDF (text, image-only, encrypted), DOCX, PPTX, EML."""

from __future__ import annotations

import io
import zipfile
import zlib
from email.message import EmailMessage
from xml.sax.saxutils import escape

# A Type0 font whose two-byte codes are Unicode code points, with a ToUnicode map saying so: text
# extraction needs no embedded font file, so any script (Cyrillic here) fits a hand-written PDF.
_TO_UNICODE = b"""/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def
/CMapType 2 def
1 begincodespacerange
<0000> <FFFF>
endcodespacerange
2 beginbfrange
<0000> <00FF> <0000>
<0400> <04FF> <0400>
endbfrange
endcmap
CMapName currentdict /CMap defineresource pop
end
end"""


def make_pdf(pages: list[str], *, image_only: bool = False) -> bytes:
    """A PDF with one page per string (lines split on newlines), or pages holding only an image."""
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(data: bytes, extra: bytes = b"") -> bytes:
        packed = zlib.compress(data)
        return b"<< /Length %d /Filter /FlateDecode %s>>\nstream\n" % (len(packed), extra) + packed + b"\nendstream"

    catalog = add(b"")  # filled in last
    pages_id = add(b"")
    to_unicode = add(stream(_TO_UNICODE))
    descriptor = add(b"<< /Type /FontDescriptor /FontName /Sans /Flags 32 /FontBBox [0 -200 1000 900] "
                     b"/ItalicAngle 0 /Ascent 900 /Descent -200 /CapHeight 700 /StemV 80 >>")
    cid_font = add(b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Sans /CIDToGIDMap /Identity "
                   b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
                   b"/FontDescriptor %d 0 R /DW 500 >>" % descriptor)
    font = add(b"<< /Type /Font /Subtype /Type0 /BaseFont /Sans /Encoding /Identity-H "
               b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (cid_font, to_unicode))
    image = add(stream(bytes(range(256)) * 48, b"/Type /XObject /Subtype /Image /Width 64 /Height 64 "
                       b"/ColorSpace /DeviceRGB /BitsPerComponent 8 "))
    kids = []
    for text in pages:
        if image_only:  # what a scanner makes: a picture of the page, no text operators at all
            content = b"q 500 0 0 700 50 50 cm /Im1 Do Q"
        else:
            ops = [b"BT /F1 12 Tf 14 TL 50 780 Td"]
            for line in text.split("\n"):
                ops.append(b"<%s> Tj T*" % line.encode("utf-16-be").hex().encode())
            ops.append(b"ET")
            content = b"\n".join(ops)
        contents = add(stream(content))
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                        b"/Resources << /Font << /F1 %d 0 R >> /XObject << /Im1 %d 0 R >> >> >>"
                        % (pages_id, contents, font, image)))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref))
    return out.getvalue()


def encrypt_pdf(data: bytes, user_password: str, owner_password: str = "owner") -> bytes:
    """The same PDF, encrypted (RC4-128: pypdf writes it without extra packages)."""
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/{part}" ContentType="{type}"/>
</Types>"""


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    """A DOCX written by python-docx: a heading, paragraphs, and an optional table after them."""
    import docx

    document = docx.Document()
    document.add_heading(paragraphs[0], level=1)
    for text in paragraphs[1:]:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, values in zip(grid.rows, table):
            for cell, value in zip(row.cells, values):
                cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_raw_docx(body_xml: str) -> bytes:
    """A minimal DOCX around hand-written WordprocessingML (for structures python-docx cannot write)."""
    return _package("word/document.xml",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
                    f'<?xml version="1.0" encoding="UTF-8"?><w:document {_W}><w:body>{body_xml}</w:body></w:document>')


_P = 'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
_A = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
_R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def make_pptx(slides: list[list[str]], order: list[int] | None = None) -> bytes:
    """A minimal PPTX: slide i holds one paragraph per string; `order` lists slide files in show order."""
    order = order or list(range(len(slides)))
    ids = "".join(f'<p:sldId id="{256 + n}" r:id="rId{i + 10}"/>' for n, i in enumerate(order))
    presentation = (f'<?xml version="1.0" encoding="UTF-8"?><p:presentation {_P} {_R}>'
                    f"<p:sldIdLst>{ids}</p:sldIdLst></p:presentation>")
    rels = "".join(f'<Relationship Id="rId{i + 10}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                   f'relationships/slide" Target="slides/slide{i + 1}.xml"/>' for i in range(len(slides)))
    parts = {"ppt/_rels/presentation.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships '
             f'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>'}
    for i, texts in enumerate(slides):
        paragraphs = "".join(f"<a:p><a:r><a:t>{escape(t)}</a:t></a:r></a:p>" for t in texts)
        parts[f"ppt/slides/slide{i + 1}.xml"] = (f'<?xml version="1.0" encoding="UTF-8"?><p:sld {_P} {_A}><p:cSld>'
                                                 f"<p:spTree><p:sp><p:txBody>{paragraphs}</p:txBody></p:sp>"
                                                 "</p:spTree></p:cSld></p:sld>")
    return _package("ppt/presentation.xml",
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
                    presentation, parts)


def _package(part: str, content_type: str, xml: str, extra: dict[str, str] | None = None) -> bytes:
    rels = ('<?xml version="1.0" encoding="UTF-8"?><Relationships '
            'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            f'relationships/officeDocument" Target="{part}"/></Relationships>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES.format(part=part, type=content_type))
        archive.writestr("_rels/.rels", rels)
        archive.writestr(part, xml)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return out.getvalue()


def w_paragraph(text: str) -> str:
    """One WordprocessingML paragraph holding `text`."""
    return f"<w:p><w:r><w:t xml:space=\"preserve\">{escape(text)}</w:t></w:r></w:p>"


def make_eml(subject: str, sender: str, body: str, *, html: str | None = None,
             attachments: dict[str, bytes] | None = None) -> bytes:
    """An e-mail as a mail client saves it (.eml): plain (and HTML) body, optional attachments."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = "Board <board@example.org>"
    message["Date"] = "Mon, 03 Mar 2025 09:30:00 +0300"
    message["Message-ID"] = "<fixture@example.org>"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, data in (attachments or {}).items():
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return bytes(message)
