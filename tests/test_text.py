import pytest

from seq2seq_edge import preprocessing as pp
from seq2seq_edge import text
from seq2seq_edge.errors import InputTextError


def test_char_and_space_tokenization_round_trip():
    assert text.tokenize("dix-sept", "char") == list("dix-sept")
    assert text.tokenize("  one  thousand, two ", "space") == ["one", "thousand,", "two"]
    assert text.detokenize(["one", "thousand,", "two"], "space") == "one thousand, two"
    assert text.detokenize(list("héllo"), "char") == "héllo"


def test_special_tokens_can_never_come_from_data():
    # char tokens are single characters; space tokens contain no whitespace: the reserved strings are neither.
    for special in text.SPECIAL_TOKENS:
        assert len(special) > 1 and any(ch.isspace() for ch in special)
    vocab = text.Vocabulary.build(["<s2s start> <s2s end>", "\t\n"], "space")
    assert vocab.tokens[:3] == text.SPECIAL_TOKENS
    assert vocab.tokens.count("<s2s") == 1 and len(set(vocab.tokens)) == len(vocab.tokens)


def test_vocabulary_reserves_ids_and_decodes_until_end():
    vocab = text.Vocabulary.build(["one", "two"], "char")
    assert vocab.tokens == text.SPECIAL_TOKENS + ("e", "n", "o", "t", "w")
    assert vocab.encode("two") == [6, 7, 5]
    assert vocab.decode([6, 7, 5, text.END_ID, 3]) == "two"
    assert vocab.decode([text.START_ID, 6, text.PAD_ID, 7]) == "tw"


def test_unknown_symbols_are_named_or_skipped():
    vocab = text.Vocabulary.build(["abc"], "char")
    with pytest.raises(InputTextError, match=r"2 symbol\(s\) the model never saw: 'x', U\+0000"):
        vocab.encode("axb\x00x")
    assert vocab.encode("axb", skip_unknown=True) == [3, 4]


def test_nfc_normalization_makes_decomposed_input_match():
    composed, decomposed = "\u00e9", "e\u0301"
    assert text.normalize(decomposed) == composed
    prep = pp.Preprocessing("NFC", "char", "char", text.SPECIAL_TOKENS + ("\u00e9",), text.SPECIAL_TOKENS + ("x",), 3, 3)
    assert prep.encode_input(decomposed) == prep.encode_input(composed) == [3]


def test_input_length_and_type_are_checked():
    prep = pp.Preprocessing("NFC", "char", "char", text.SPECIAL_TOKENS + ("1",), text.SPECIAL_TOKENS + ("x",), 4, 3)
    assert prep.encode_input("1111") == [3, 3, 3, 3]
    with pytest.raises(InputTextError, match="input is 5 tokens long; the model takes at most 4"):
        prep.encode_input("11111")
    with pytest.raises(InputTextError, match="1000000 characters long"):
        prep.encode_input("1" * 1_000_000)
    with pytest.raises(TypeError, match="input must be str, not bytes"):
        prep.encode_input(b"1")


def test_pad_batch_right_pads_with_zero():
    out = pp.pad_batch([[5, 6], [7]], 3)
    assert out.dtype.name == "int32" and out.tolist() == [[5, 6, 0], [7, 0, 0]]
    assert pp.pad_batch([[]]).tolist() == [[0]]


def test_preprocessing_dict_round_trip_and_validation_lists_every_problem():
    prep = pp.Preprocessing("NFC", "char", "space", text.SPECIAL_TOKENS + ("1",), text.SPECIAL_TOKENS + ("one",), 1, 1)
    assert pp.Preprocessing.from_dict(prep.to_dict()) == prep
    bad = prep.to_dict()
    bad["input"]["vocabulary"] = ["a", "a"]
    bad["target"]["max_tokens"] = 0
    problems = pp.validate_preprocessing_dict(bad)
    assert any("duplicate entries: 'a'" in p for p in problems)
    assert any("must start with the special tokens" in p for p in problems)
    assert any("target.max_tokens must be an integer from 1 to 4096, got 0" in p for p in problems)
