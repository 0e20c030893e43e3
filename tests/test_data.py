import importlib.util

import pytest

from seq2seq_edge.evaluation import pairs
from seq2seq_edge.errors import DataFileError, TrainOptionError
from seq2seq_edge.train import data

#: The numbers task's words come from num2words, part of the [train] extra.
needs_num2words = pytest.mark.skipif(importlib.util.find_spec("num2words") is None,
                                     reason="needs num2words (pip install '.[train]')")

def test_digits_are_exactly_the_seed_pairs():
    assert [(p.source, p.target) for p in data.digits_pairs()] == [
        ("1", "one"), ("2", "two"), ("3", "three"), ("4", "four"), ("5", "five"),
        ("6", "six"), ("7", "seven"), ("8", "eight"), ("9", "nine")]


@needs_num2words
def test_numbers_in_several_languages():
    en = data.numbers_pairs("en", 1234)
    assert len(en) == 1235 and en[21].target == "twenty-one"
    assert en[1234].target == "one thousand, two hundred and thirty-four"
    assert data.numbers_pairs("de", 21)[21].target == "einundzwanzig"
    assert data.numbers_pairs("fr", 80)[80].target == "quatre-vingts"
    with pytest.raises(TrainOptionError, match="num2words has no language 'xx'"):
        data.numbers_pairs("xx")


@needs_num2words
def test_split_is_deterministic_disjoint_and_keeps_small_sets_whole():
    pairs = data.numbers_pairs("en", 999)
    a = data.split_pairs(pairs, seed=3)
    b = data.split_pairs(pairs, seed=3)
    assert a == b
    assert (len(a.train), len(a.validation), len(a.test)) == (800, 100, 100)
    sources = [set(p.source for p in part) for part in (a.train, a.validation, a.test)]
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2]) and not (sources[1] & sources[2])
    assert data.split_pairs(pairs, seed=4).test != a.test
    small = data.split_pairs(data.digits_pairs(), seed=0)
    assert small.train == small.validation == small.test == data.digits_pairs()


def test_tsv_layout_bom_crlf_blank_lines_extra_columns_and_duplicates(tmp_path):
    f = tmp_path / "fra.tsv"
    f.write_bytes("\ufeffGo.\tVa !\tCC-BY 2.0\r\n\r\nHi.\tSalut.\r\nHi.\tSalut.\r\nCafe\u0301\tcafé\n".encode())
    read = pairs.read_tsv(f)
    assert [(p.source, p.target) for p in read] == [("Go.", "Va !"), ("Hi.", "Salut."), ("Café", "café")]
    assert read[1].origin == f"{f}:3"


def test_tsv_header_is_skipped_only_when_asked(tmp_path):
    f = tmp_path / "h.tsv"
    f.write_text("input\ttarget\n1\tone\n", encoding="utf-8")
    assert [(p.source, p.target) for p in pairs.read_tsv(f)] == [("input", "target"), ("1", "one")]
    assert [(p.source, p.target) for p in pairs.read_tsv(f, skip_header=True)] == [("1", "one")]


@pytest.mark.parametrize("content, message", [
    (b"1\tone\n2 two\n", r":2: no TAB between input and target$"),
    (b"1\tone\n\ttwo\n", r":2: empty input$"),
    (b"1\tone\n2\t  \n", r":2: empty target$"),
    (b"1\tone\n\n3\tthr\xffee\n", r":3: not valid UTF-8 \(byte 0xff at column 6\)$"),
    (b"", r": no pairs found \(the file is empty\)$"),
    (b"\n \r\n", r": no pairs found \(only blank lines\)$"),
])
def test_tsv_errors_name_the_file_and_line(tmp_path, content, message):
    f = tmp_path / "bad.tsv"
    f.write_bytes(content)
    with pytest.raises(DataFileError, match=str(f).replace("\\", "\\\\") + message):
        pairs.read_tsv(f)


def test_missing_tsv(tmp_path):
    with pytest.raises(DataFileError, match=r"nope.tsv: no such file"):
        pairs.read_tsv(tmp_path / "nope.tsv")
