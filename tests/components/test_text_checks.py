"""TextChecks' measurements on hand-counted splits, and its token counts against the tokenizers."""

import pytest

from components.text_checks import SplitRows, measure, report_checks
from components.text_figures import CountSettings, TokenCounter
from pipeline.checkpoint import resolve_checkpoint
from pipeline.config import DataChecksConfig


def _checks(report):
    return {(check.name, check.scope): check for check in report_checks(report)}


def _rows(texts, labels):
    return SplitRows(texts=[list(texts)], labels=list(labels))


def test_each_rate_counts_what_its_name_says():
    train = _rows(["good movie", "Good   movie", "bad film", None, "   ", "long " * 70, "fine",
                   "fine plot"], ["pos", "pos", "neg", "neg", "pos", "neg", "pos", "pos"])
    evaluation = _rows(["bad film", "zzz qqq", "good movie", "fine"], ["neg", "neg", "pos", "pos"])
    settings = CountSettings(None, max_vocab_size=100, min_word_frequency=2, max_seq_length=64)

    report, _ = measure({"train": train, "eval": evaluation}, settings,
                        thresholds=DataChecksConfig())
    checks = _checks(report)

    # A missing and a blank text.
    assert checks["empty_text_rate", "train"].value == pytest.approx(2 / 8)
    assert not checks["empty_text_rate", "train"].passed
    # 70 words + [CLS] + [SEP] > 64.
    assert checks["truncation_rate", "train"].value == pytest.approx(1 / 8)
    assert report["splits"]["train"]["token_length"]["max"] == 72
    # Vocabulary = words seen twice in train: good, movie, fine, long; eval has bad, film, zzz, qqq
    # outside it among its 7 words.
    assert checks["unk_rate", "eval"].value == pytest.approx(4 / 7)
    # "Good   movie" repeats "good movie" once whitespace and case are normalised; the two empty
    # texts repeat each other.
    assert checks["duplicate_rate", "train"].value == pytest.approx(2 / 8)
    assert "'good movie'" in checks["duplicate_rate", "train"].detail
    # Three of four eval texts are in train.
    assert checks["leakage_rate", "eval in train"].value == pytest.approx(3 / 4)
    assert report["splits"]["eval"]["label_counts"] == {"neg": 2, "pos": 2}
    assert not report["passed"]


def test_drift_needs_a_baseline_and_names_the_label_that_moved():
    balanced = _rows(["a b c"] * 50 + ["d e f"] * 50, ["pos"] * 50 + ["neg"] * 50)
    settings = CountSettings(None, 100, 1, 64)
    thresholds = DataChecksConfig(max_duplicate_rate=1.0, max_leakage_rate=1.0)
    first, statistics = measure({"train": balanced, "eval": balanced}, settings, thresholds)
    assert not any(name.endswith("drift") for name, _ in _checks(first))
    assert first["passed"]

    drifted = _rows(["a b c"] * 90 + ["d e f"] * 10, ["pos"] * 90 + ["neg"] * 10)
    second, _ = measure({"train": drifted, "eval": balanced}, settings, thresholds,
                        baseline=(statistics, first))
    checks = _checks(second)
    drift = checks["label_drift", "train vs last accepted data"]
    assert drift.value == pytest.approx(0.4) and not drift.passed
    assert drift.option == "data_checks.max_label_drift"
    # Both labels moved by 0.4; a tie names the first label in sorted order. At 100 examples a
    # side the threshold rises to what sampling alone reaches, and 0.4 is still beyond it.
    assert drift.detail == ("threshold raised from 0.1 to 0.212, what sampling alone reaches with "
                            "100 vs 100 examples; L_INFTY; 'neg': train 10.0%, last accepted 50.0%")
    # The eval split is still balanced: skew, train vs eval, crosses too.
    assert not checks["label_skew", "train vs eval"].passed

    same, _ = measure({"train": balanced, "eval": balanced}, settings, thresholds,
                      baseline=(statistics, first))
    assert _checks(same)["label_drift", "train vs last accepted data"].value == pytest.approx(0.0)
    assert same["passed"]


def test_the_vocabulary_from_scratch_keeps_frequent_words_up_to_its_size():
    train = _rows(["the the the cat cat dog"], ["pos"])
    settings = CountSettings(None, max_vocab_size=1, min_word_frequency=2, max_seq_length=64)
    report, _ = measure({"train": train, "eval": _rows(["the cat dog bird"], ["pos"])}, settings,
                        DataChecksConfig())
    # Only "the" fits a one-word vocabulary: cat (2x) is cut by size, dog and bird by frequency.
    evaluation = report["splits"]["eval"]
    assert evaluation["token_length"]["max"] == 6 and evaluation["text_tokens"] == 4
    assert evaluation["unk_tokens"] == 3
    assert report["tokenizer"] == "words against the training split's vocabulary (1 words)"


def test_wordpiece_counts_equal_the_checkpoint_tokenizer_before_truncation(offline_checkpoint):
    """The offline all-MiniLM-L6-v2 (installed by the `offline_checkpoint` fixture)."""
    from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

    checkpoint = resolve_checkpoint(str(offline_checkpoint), 64)
    sentences = ["Café crème, naïvely priced!", "unbelievably overpriced 🦜 parrots",
                 "word " * 80]
    tokens, unknown = TokenCounter(checkpoint).count([sentences])

    reference = AutoTokenizer.from_pretrained(str(offline_checkpoint))
    expected = [reference(sentence)["input_ids"] for sentence in sentences]
    assert tokens.tolist() == [len(ids) for ids in expected]
    assert unknown.tolist() == [ids.count(reference.unk_token_id) for ids in expected]
    assert unknown[1] >= 1  # the parrot emoji is not in BERT's uncased vocabulary


def test_small_samples_are_not_stopped_for_what_sampling_alone_produces():
    # 40 eval examples at 60/40 against 160 training ones at 50/50: an L-infinity of 0.1, well
    # inside what two samples of one distribution reach at these sizes (1.5 * sqrt(1/160 + 1/40)).
    train = _rows(["a b"] * 80 + ["c d"] * 80, ["pos"] * 80 + ["neg"] * 80)
    evaluation = _rows(["e f"] * 24 + ["g h"] * 16, ["pos"] * 24 + ["neg"] * 16)
    report, _ = measure({"train": train, "eval": evaluation}, CountSettings(None, 100, 1, 64),
                        DataChecksConfig(max_unk_rate=1.0, max_duplicate_rate=1.0))
    skew = _checks(report)["label_skew", "train vs eval"]

    assert skew.value == pytest.approx(0.1) and skew.passed
    assert skew.threshold == pytest.approx(1.5 * (1 / 160 + 1 / 40) ** 0.5)
    assert skew.detail.startswith("threshold raised from 0.1 to 0.265, what sampling alone "
                                  "reaches with 160 vs 40 examples")
