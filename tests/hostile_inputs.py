"""A corpus of hostile review files, built in code: each case is bytes plus what must happen.

Every case ends either in an :class:`~include.pipeline.ingestion.IngestionError` whose message
names the file and the place (row, line, column or byte offset), or in a result whose rows and
quarantine add up to the input's rows, with the quarantine reasons counted.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

SOURCE = "s3://in/hostile.csv"
PREPARED = "sentiment,review_body,product_category"
RAW = (
    ",Clothing ID,Age,Title,Review Text,Rating,Recommended IND,Positive Feedback Count,"
    "Division Name,Department Name,Class Name"
)


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    # An error: substrings its message must hold (the file's name is always checked).
    error: tuple[str, ...] = ()
    # A result: the input rows, the transformed rows and the quarantine reasons it counts.
    input_rows: int = 0
    rows: int = 0
    reasons: dict = field(default_factory=dict)
    encoding: str = "utf-8"


def prepared(rows: list[str], header: str = PREPARED, end: str = "\n") -> bytes:
    return (end.join([header, *rows]) + end).encode()


def good_prepared(n: int, start: int = 0) -> list[str]:
    return [f"{(i % 3) - 1},review number {i},Knits" for i in range(start, start + n)]


def raw(rows: list[str], header: str = RAW) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def good_raw(n: int, suffix: str = "") -> list[str]:
    return [
        f'{i},1,30,t,"raw review {i}, nice",{i % 5 + 1},1,0,General,Tops,Dresses{suffix}'
        for i in range(n)
    ]


def cases() -> list[Case]:
    base = good_prepared(20)
    utf8 = prepared(base).decode()
    return [
        # --- the reported cases ---------------------------------------------------------------
        Case(
            "trailing_comma_every_prepared_row",
            prepared([f"{r}," for r in base]),
            error=("every row has 4 fields but the header has 3", "trailing comma"),
        ),
        Case(
            "extra_field_in_first_data_row",
            prepared([f"{base[0]},surprise", *base[1:]]),
            error=("row 1 (line 2) has 4 fields", "field 4 has no column"),
        ),
        Case(
            "input_column_named_source_row",
            prepared([f"7,{r}" for r in base], header=f"source_row,{PREPARED}"),
            input_rows=20,
            rows=20,
        ),
        Case(
            "input_column_named_reason_kept_in_quarantine",
            prepared(
                [f"{r},mine" for r in base] + ["9,bad sentiment,Knits,mine"], f"{PREPARED},reason"
            ),
            input_rows=21,
            rows=20,
            reasons={"unknown_sentiment": 1},
        ),
        Case(
            "blank_header_name_is_kept",
            prepared(
                [f"{r},extra {i}" for i, r in enumerate(base)] + ["", "5,x,Knits,kept"],
                f"{PREPARED},",
            ),
            input_rows=21,
            rows=20,
            reasons={"unknown_sentiment": 1},
        ),
        Case(
            "duplicate_optional_header_keeps_both",
            prepared([f"{r},a,b" for r in base] + ["7,x,Knits,a,b"], f"{PREPARED},note,note"),
            input_rows=21,
            rows=20,
            reasons={"unknown_sentiment": 1},
        ),
        Case(
            "duplicate_required_header_is_rejected",
            prepared([f"{r},0" for r in base], f"{PREPARED},sentiment"),
            error=("columns 1 and 4 are both named 'sentiment'", "ambiguous"),
        ),
        Case(
            "stray_opening_quote_swallows_a_record",
            prepared([*base[:5], '1,"stray quote here,Knits', '0,next review",Knits', *base[5:]]),
            input_rows=21,  # the two records read as one, then quarantined
            rows=20,
            reasons={"text_spans_records": 1},
        ),
        Case(
            "review_with_line_breaks_and_commas_is_kept",
            prepared([*base, '1,"Great dress, love it.\nFits well, runs small",Knits']),
            input_rows=21,
            rows=21,
        ),
        Case(
            "trailing_comma_in_raw_shape",
            raw(good_raw(20, suffix=",")),
            error=("every row has 12 fields but the header has 11", "shift every field"),
        ),
        # --- more hostile inputs ---------------------------------------------------------------
        Case("empty_file", b"", error=("the file is empty",)),
        Case("only_a_bom", codecs.BOM_UTF8, error=("the file is empty",)),
        Case("blank_lines_only", b"\n\r\n\n", error=("the file is empty",)),
        Case("header_only", f"{PREPARED}\n".encode(), error=("header but no rows",)),
        Case("utf8_bom", codecs.BOM_UTF8 + prepared(base), input_rows=20, rows=20),
        Case("crlf_line_ends", prepared(base, end="\r\n"), input_rows=20, rows=20),
        Case("cr_line_ends", prepared(base, end="\r"), input_rows=20, rows=20),
        Case(
            "mixed_encodings_latin1_byte",
            prepared([*base, "1,caf\xe9 au lait,Knits"]).replace(b"\xc3\xa9", b"\xe9"),
            error=("is not valid utf-8", "line 22"),
        ),
        Case(
            "utf16_without_the_encoding_param",
            utf8.encode("utf-16"),
            error=("byte 0 (line 1)", "UTF-16 byte order mark"),
        ),
        Case(
            "utf16_with_the_encoding_param",
            utf8.encode("utf-16"),
            input_rows=20,
            rows=20,
            encoding="utf-16",
        ),
        Case(
            "nul_byte",
            prepared([*base[:3], "1,nul\x00here,Knits", *base[3:]]),
            error=("NUL byte", "line 5"),
        ),
        Case(
            "huge_field",
            prepared([*base, '1,"' + "x" * 200_000 + '",Knits']),
            error=("row 21 starting on line 22", "field larger than field limit"),
        ),
        Case(
            "unclosed_quote_at_the_end",
            prepared([*base, '1,"never closed,Knits']),
            error=("row 21 starting on line 22", "never closed"),
        ),
        Case(
            "text_after_closing_quote",
            prepared([*base[:2], '1,"quoted"tail,Knits', *base[2:]]),
            error=("row 3 starting on line 4", "not valid CSV"),
        ),
        Case(
            "formula_like_cells_are_text",
            prepared(
                [*base, '1,"=HYPERLINK(""http://x"",""y"")",Knits', "0,+cmd|' /C calc'!A0,Knits"]
            ),
            input_rows=22,
            rows=22,
        ),
        Case(
            "unicode_and_invisible_chars_in_headers",  # repaired (and reported), not rejected
            prepared(base, header="\u200bsentiment,review_body\u00a0,\ufeffproduct_category"),
            input_rows=20,
            rows=20,
        ),
        Case(
            "header_differs_in_case",
            prepared(base, header="Sentiment,review_body,product_category"),
            error=("missing required columns ['sentiment']", "differs from 'sentiment' in case"),
        ),
        Case(
            "semicolon_delimiter",
            prepared([r.replace(",", ";") for r in base], header=PREPARED.replace(",", ";")),
            error=("missing required columns", "is the delimiter ';'"),
        ),
        Case(
            "tab_delimiter",
            prepared([r.replace(",", "\t") for r in base], header=PREPARED.replace(",", "\t")),
            error=("missing required columns", "is the delimiter '\\t'"),
        ),
        Case(
            "short_row",
            prepared([*base[:4], "1,no category", *base[4:]]),
            error=("row 5 (line 6) has 2 fields", "no value for column 'product_category'"),
        ),
        Case(
            "header_with_trailing_comma_only",
            prepared(base, header=f"{PREPARED},"),
            error=("every row has 3", "header ends with an extra comma"),
        ),
        Case(
            "ratings_as_floats_words_and_spaces",
            raw(
                good_raw(40)
                + [
                    '90,1,30,t,"five point oh",5.0,1,0,General,Tops,Dresses',
                    '91,1,30,t,"padded", 4 ,1,0,General,Tops,Dresses',
                    '92,1,30,t,"stars",5 stars,1,0,General,Tops,Dresses',
                    '93,1,30,t,"half",4.5,1,0,General,Tops,Dresses',
                    '94,1,30,t,"nan",nan,1,0,General,Tops,Dresses',
                    '95,1,30,t,"inf",inf,1,0,General,Tops,Dresses',
                    '96,1,30,t,"neg",-1,1,0,General,Tops,Dresses',
                ]
            ),
            input_rows=47,
            rows=42,
            reasons={"rating_not_a_number": 3, "rating_out_of_range": 2},
        ),
        Case(
            "row_of_only_commas",
            prepared([*base, ",,"]),
            input_rows=21,
            rows=20,
            reasons={"empty_review_text": 1},
        ),
        Case(
            "quoted_blank_text_and_whitespace_category",
            prepared([*base, '1,"   ",Knits', "1,text,   "]),
            input_rows=22,
            rows=20,
            reasons={"empty_review_text": 1, "missing_product_category": 1},
        ),
    ]
