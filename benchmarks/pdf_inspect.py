"""Benchmark: the inspection of a submitted PDF (`esante.documents.pdf.inspect`).

Times, in wall-clock and processor time, a realistic report (N pages of laboratory results
written by WeasyPrint, plain and tagged PDF/UA, which has a structure element per cell) and two
hostile shapes: many small objects (the default limit refuses them as soon as the xref table is
read) and a xref table of a million entries (stopped by the time budget).

    python benchmarks/pdf_inspect.py
    python benchmarks/pdf_inspect.py --pages 200
"""

import argparse
import time

from weasyprint import HTML

from esante.documents import pdf


def report(pages: int, *, tagged: bool) -> bytes:
    rows = "".join(
        f"<tr><td>Analyse {i}</td><td>{i * 1.7:.1f}</td><td>mmol/L</td><td>3,5 – 5,1</td></tr>"
        for i in range(20)
    )
    page = (
        "<section style='page-break-after: always'><h1>Laboratoire – résultats</h1>"
        "<p>Prélèvement du 2 décembre 2026. <a href='https://labo.example.lu/r'>Résultats en ligne</a></p>"
        f"<table>{rows}</table></section>"
    )
    document = HTML(string=f"<html lang='fr'><body>{page * pages}</body></html>")
    return bytes(document.write_pdf(pdf_variant="pdf/ua-1" if tagged else None))


def many_objects(count: int) -> bytes:
    """The review's file: ``count`` arrays of ten references each, in a plain xref table."""
    bodies = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"]
    bodies.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>")
    bodies += [b"[" + b"1 0 R " * 10 + b"]"] * (count - 3)
    return _with_xref_table(bodies)


def huge_xref_table(entries: int) -> bytes:
    """Two objects and a xref table of ``entries`` entries, nearly all pointing at the second."""
    bodies = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    return _with_xref_table(bodies, entries=entries)


def _with_xref_table(bodies: list[bytes], entries: int | None = None) -> bytes:
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    offsets += [offsets[-1]] * ((entries or 0) - len(offsets) - 1)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref_at)
    return bytes(out)


def timed(label: str, content: bytes) -> None:
    wall, cpu = time.monotonic(), time.process_time()
    try:
        verdict = ", ".join(pdf.inspect(content).findings) or "accepted"
    except pdf.PdfRefused as refusal:
        verdict = str(refusal)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    print(f"{label:38s} {len(content) / 1e6:6.2f} MB  wall {wall:6.2f} s  cpu {cpu:6.2f} s  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    args = parser.parse_args()
    timed(f"report, {args.pages} pages", report(args.pages, tagged=False))
    timed(f"report, {args.pages} pages, tagged (PDF/UA)", report(args.pages, tagged=True))
    timed("150,000 small objects", many_objects(150_000))
    timed("99,000 small objects", many_objects(99_000))
    timed("xref table of 1,000,000 entries", huge_xref_table(1_000_000))


if __name__ == "__main__":
    main()
