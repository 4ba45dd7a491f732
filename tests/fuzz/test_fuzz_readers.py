"""Fuzzing the remaining user-file readers: series CSV (wide and long), .ts archives, long time-series CSV,
labelled texts (CSV and JSONL), CoNLL tags and seq2seq pairs (TSV). Each ends in a result or one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_harness import MAX_ALLOCATION, check_entry_point, fuzz_settings, mutated, write
from lstmkit.data.pairs import read_pairs_tsv
from lstmkit.data.text import read_conll, read_labelled_texts
from lstmkit.data.timeseries import read_series
from lstmkit.data.tsfile import read_long_csv, read_ts
from lstmkit.errors import LstmkitError

pytest.importorskip("pandas")

SEEDS = {
    "series.csv": b"month,north,south\n2020-01,1,10\n2020-02,2,20\n2020-03,3.5,1e3\n2020-04,-4,0\n",
    "long.csv": b"t,id,value\n1,a,1\n2,a,2\n1,b,3\n2,b,4\n",
    "in.ts": (b"@problemName x\n@timeStamps false\n@univariate true\n@classLabel true a b\n@data\n"
              b"1.0,2.0,3.0:a\n4.0,5.0,6.0:b\n"),
    "ts_long.csv": b"series,time,value,label\n0,0,1.0,a\n0,1,2.0,a\n1,0,3.0,b\n1,1,4.0,b\n",
    "texts.csv": b"text,label\ngood film,pos\nbad film,neg\n\"a, b\",pos\n",
    "texts.jsonl": b'{"text": "good film", "label": "pos"}\n{"text": "bad", "label": "neg"}\n',
    "tags.conll": b"The DT\ncat NN\n\nRuns VBZ\n",
    "pairs.tsv": b"abc\tcba\n12\t21\n",
}
READERS = {
    "series.csv": ("series_csv", read_series),
    "long.csv": ("series_csv", read_series),
    "in.ts": ("ts_file", read_ts),
    "ts_long.csv": ("ts_long_csv", read_long_csv),
    "texts.csv": ("labelled_texts", read_labelled_texts),
    "texts.jsonl": ("labelled_texts", read_labelled_texts),
    "tags.conll": ("conll", read_conll),
    "pairs.tsv": ("pairs_tsv", read_pairs_tsv),
}
NASTY = st.sampled_from([b"1e308", b"-1e308", b"nan", b"inf", b"9" * 400, b"\x00", b"\xff\xfe", b"\"", b"\t",
                         b"[" * 2000, b"{\"text\": " * 50, b"\r\n", b"@data\n", b",,,,", b"1..5"])


@st.composite
def damaged(draw: st.DrawFn, seed: bytes) -> bytes:
    data = draw(mutated(seed, max_ops=3))
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(NASTY) + data[pos:]
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SEEDS))
def test_reader_of_damaged_files(workdir: Path, name: str) -> None:
    entry, reader = READERS[name]

    @fuzz_settings()
    @given(content=st.one_of(damaged(SEEDS[name]), st.binary(max_size=64)))
    def run(content: bytes) -> None:
        path = write(workdir / name, content)
        check_entry_point(entry, lambda: reader(path), error=LstmkitError, mentions=[str(path), path.name],
                          max_allocation=MAX_ALLOCATION)

    run()
