"""A pretrained checkpoint's own tokenizer as TF ops: WordPiece, SentencePiece or byte-level BPE.

The Transform graph, TextChecks and the served model all tokenize through these, so the ids are
the ones the checkpoint's Hugging Face tokenizer makes (TokenizerParity measures that) and no
Python tokenizer exists at serving.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from pipeline.checkpoint import Checkpoint, reference_tokenizer

# As Hugging Face's `_clean_text`: control and format characters and U+FFFD are dropped...
_CONTROL_CHARACTERS = r"[^\P{C}\t\n\r]|\x{FFFD}"


class CheckpointTokenizer(tf.Module):
    """Maps each [batch] text column to ragged ids of its tokens (no special tokens)."""

    # The tokenizer's name in reports.
    display_name = ""

    def __init__(self, checkpoint: Checkpoint):
        super().__init__(name=f"{checkpoint.tokenizer}_tokenizer")
        self.checkpoint = checkpoint

    def ids(self, texts: Sequence[tf.Tensor]) -> list[tf.RaggedTensor]:
        return [self._text_ids(text) for text in texts]

    def _text_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        raise NotImplementedError


class WordPieceTokenizer(CheckpointTokenizer):
    """The checkpoint's WordPiece over its `vocab.txt` (an asset of the graph), after BERT's
    cleaning and the lower-casing and accent stripping its tokenizer config asks for
    (`Checkpoint.normalizer_steps`).
    """

    display_name = "WordPiece"

    def __init__(self, checkpoint: Checkpoint):
        super().__init__(checkpoint)
        self.wordpiece = tf_text.BertTokenizer(
            vocab_lookup_table=checkpoint.tokenizer_file, token_out_type=tf.int64,
            unknown_token=checkpoint.unk_token, lower_case=False)

    def _text_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        text = tf.strings.regex_replace(text, _CONTROL_CHARACTERS, "")
        # ... and every space separator (U+00A0, U+3000...) is a space.
        text = tf.strings.regex_replace(text, r"\p{Zs}", " ")
        text = _normalized(text, self.checkpoint.normalizer_steps)
        # [batch, words, word pieces] -> [batch, word pieces]
        return self.wordpiece.tokenize(text).merge_dims(-2, -1)


class SentencePieceTokenizer(CheckpointTokenizer):
    """The checkpoint's SentencePiece model, then its pieces mapped to the model's ids.

    The ids come from the Hugging Face vocabulary by piece, which carries each family's offsets
    (XLM-R's and CamemBERT's fairseq ids are SentencePiece's plus one, their special tokens
    first). The normalizer steps before the model's own character map follow the checkpoint's
    Hugging Face normalizer (`Checkpoint.normalizer_steps`); where that keeps a trailing space as
    a piece (ALBERT), the model's whitespace trimming and dummy prefix are switched off and done
    here as the Hugging Face normalizer and pre-tokenizer do them.
    """

    display_name = "SentencePiece"

    def __init__(self, checkpoint: Checkpoint):
        super().__init__(checkpoint)
        model = _model_proto(checkpoint)
        self.sentencepiece = tf_text.SentencepieceTokenizer(
            model=model.SerializeToString(), out_type=tf.int32)
        vocabulary = _hugging_face_vocabulary(checkpoint)
        self._model_ids = np.array(
            [vocabulary.get(piece.piece, checkpoint.unk_id) for piece in model.pieces],
            dtype=np.int64)
        unknown = [index for index, piece in enumerate(model.pieces)
                   if piece.type == piece.UNKNOWN]
        self._model_ids[unknown] = checkpoint.unk_id

    def _text_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        text = _normalized(text, self.checkpoint.normalizer_steps)
        if self.checkpoint.trailing_space_piece:
            # Hugging Face's Metaspace: one leading "▁" unless the text already opens with one.
            text = tf.strings.regex_replace(tf.strings.regex_replace(text, r"\s+", " "),
                                            "^([^ ])", r" \1")
        pieces = self.sentencepiece.tokenize(text)
        return tf.ragged.map_flat_values(
            lambda flat: tf.gather(tf.constant(self._model_ids), flat), pieces)


class ByteLevelBPETokenizer(CheckpointTokenizer):
    """The checkpoint's byte-level BPE (RoBERTa's): GPT-2's pre-tokenization, each word's UTF-8
    bytes as the vocabulary's byte symbols, then its merges, lowest rank first.

    Written here rather than taken from keras-nlp (0.5, the last release for this TF): its
    pre-tokenizer marks split points with the character "६" and so mis-splits any text holding
    one, and it caches words in a mutable table inside the graph. The merges are the ones of the
    checkpoint's Hugging Face tokenizer (tokenizer.json, else vocab.json and merges.txt), embedded
    in the graph as a hash table; the merge loop applies, per word, the leftmost pair of lowest
    rank until none is left, which is the order of the `tokenizers` library.
    """

    display_name = "byte-level BPE"

    def __init__(self, checkpoint: Checkpoint):
        super().__init__(checkpoint)
        vocabulary, merges = _bpe_model(checkpoint)
        self._vocabulary_size = max(vocabulary.values()) + 1
        # pylint: disable-next=import-outside-toplevel
        from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

        symbols = bytes_to_unicode()
        self._byte_ids = tf.constant([vocabulary[symbols[byte]] for byte in range(256)],
                                     dtype=tf.int64)
        keys, values = [], []
        for rank, (left, right) in enumerate(merges):
            keys.append(vocabulary[left] * self._vocabulary_size + vocabulary[right])
            # One lookup gives both: the rank orders the pairs, the low bits hold the merged id.
            values.append(rank << _ID_BITS | vocabulary[left + right])
        self._merges = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.int64), tf.constant(values, tf.int64)), default_value=-1)

    def _text_ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        words = _gpt2_words(_normalized(text, self.checkpoint.normalizer_steps))
        # Each distinct word of the batch is merged once (what the `tokenizers` cache saves).
        distinct, word_index = tf.unique(words.flat_values, out_idx=tf.int64)
        byte_values = tf.strings.unicode_decode(distinct, "ISO-8859-1")
        pieces = self._merged(tf.gather(self._byte_ids, byte_values.flat_values),
                              byte_values.value_rowids(), byte_values.nrows())
        return words.with_flat_values(tf.gather(pieces, word_index)).merge_dims(-2, -1)

    def _merged(self, ids: tf.Tensor, word_of_piece: tf.Tensor, words: tf.Tensor
                ) -> tf.RaggedTensor:
        """[words, pieces] ids after the merges of the pieces `ids` of each word.

        Each round merges, in every word still merging, its leftmost pair of lowest rank; a word
        with no pair left in the merges leaves the loop, so the long words of a batch do not keep
        the short ones in every round.
        """
        def merge_once(ids, word_of_piece, done_ids, done_word_of_piece):
            pair_word = word_of_piece[:-1]
            packed = self._merges.lookup(ids[:-1] * self._vocabulary_size + ids[1:])
            candidate = (packed >= 0) & (pair_word == word_of_piece[1:])
            packed = tf.where(candidate, packed, _NO_MERGE)
            best = tf.math.unsorted_segment_min(packed, pair_word, words)
            position = tf.range(tf.size(packed, out_type=tf.int64))
            leftmost = tf.math.unsorted_segment_min(
                tf.where(candidate & (packed == tf.gather(best, pair_word)), position, _NO_MERGE),
                pair_word, words)
            at = tf.boolean_mask(leftmost, leftmost != _NO_MERGE)[:, None]
            merged = tf.tensor_scatter_nd_update(
                ids, at, tf.bitwise.bitwise_and(tf.gather_nd(packed, at), (1 << _ID_BITS) - 1))
            keep = tf.tensor_scatter_nd_update(
                tf.ones_like(ids, dtype=tf.bool), at + 1, tf.zeros_like(at[:, 0], dtype=tf.bool))
            finished = tf.gather(best == _NO_MERGE, word_of_piece)
            stay = keep & ~finished
            return (tf.boolean_mask(merged, stay), tf.boolean_mask(word_of_piece, stay),
                    tf.concat([done_ids, tf.boolean_mask(ids, finished)], 0),
                    tf.concat([done_word_of_piece, tf.boolean_mask(word_of_piece, finished)], 0))

        empty = tf.zeros([0], tf.int64)
        _, _, ids, word_of_piece = tf.while_loop(
            lambda ids, *_: tf.size(ids) > 0, merge_once, (ids, word_of_piece, empty, empty),
            shape_invariants=(tf.TensorShape([None]),) * 4)
        # Finished words come out in the order they finished, each one's pieces in order.
        order = tf.argsort(word_of_piece, stable=True)
        return tf.RaggedTensor.from_value_rowids(
            tf.gather(ids, order), tf.gather(word_of_piece, order), nrows=words)


# Bits of a packed merge-table value that hold the merged id (vocabularies stay far below 2**24).
_ID_BITS = 24
_NO_MERGE = tf.int64.max
# Unicode's White_Space characters: what the `tokenizers` library's \s matches (RE2's \s is ASCII).
_WHITE_SPACE_CODEPOINTS = np.array(
    [*range(0x9, 0xE), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F,
     0x205F, 0x3000], dtype=np.int32)
_WHITE_SPACE = "".join(f"\\x{{{codepoint:X}}}" for codepoint in _WHITE_SPACE_CODEPOINTS)
# GPT-2's pattern without its lookahead `\s+(?!\S)`, which RE2 lacks: `_gpt2_words` first cuts
# each run of white space before its last character where a word follows, so a plain `\s+`
# then takes what the lookahead would have left.
_GPT2_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+"
                 rf"| ?[^{_WHITE_SPACE}\p{{L}}\p{{N}}]+|[{_WHITE_SPACE}]+")


def _gpt2_words(text: tf.Tensor) -> tf.RaggedTensor:
    """[batch] texts -> [batch, words]: the words of the ByteLevel pre-tokenizer's regex."""
    codepoints, starts = tf.strings.unicode_decode_with_offsets(text, "UTF-8")
    row = codepoints.value_rowids()
    space = tf.reduce_any(codepoints.flat_values[:, None] == _WHITE_SPACE_CODEPOINTS, axis=1)
    in_row = tf.range(tf.size(space, out_type=tf.int64)) - tf.gather(codepoints.row_starts(), row)
    row_length = tf.gather(codepoints.row_lengths(), row)
    space_before = tf.pad(space[:-1], [[1, 0]])
    space_after = tf.pad(space[1:], [[0, 1]])
    # A row's pieces start at its first character and before character i where i-1 and i are
    # white space and i+1 is not; each ends where the next starts or with the row.
    piece_start = (in_row == 0) | (
        space & space_before & ~space_after & (in_row > 0) & (in_row < row_length - 1))
    piece_row = tf.boolean_mask(row, piece_start)
    begin = tf.boolean_mask(starts.flat_values, piece_start)
    row_bytes = tf.strings.length(text)
    end = tf.where(tf.concat([piece_row[1:] == piece_row[:-1], [False]], 0),
                   tf.concat([begin[1:], [0]], 0),
                   tf.cast(tf.gather(row_bytes, piece_row), tf.int64))
    pieces = tf.strings.substr(tf.gather(text, piece_row), begin, end - begin)
    words = tf_text.regex_split(pieces, _GPT2_PATTERN, _GPT2_PATTERN)
    return tf.RaggedTensor.from_row_lengths(words.flat_values, tf.math.unsorted_segment_sum(
        words.row_lengths(), piece_row, tf.shape(text, out_type=tf.int64)[0]))


def _bpe_model(checkpoint: Checkpoint) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary and merges (in rank order) of the checkpoint's Hugging Face tokenizer."""
    model = json.loads(reference_tokenizer(checkpoint.path).backend_tokenizer.to_str())["model"]
    # tokenizer.json writes a merge as "a b" or, since tokenizers 0.20, as ["a", "b"].
    return model["vocab"], [tuple(merge.split(" ", 1) if isinstance(merge, str) else merge)
                            for merge in model["merges"]]


def _normalized(text: tf.Tensor, steps: Sequence[str]) -> tf.Tensor:
    """`text` after the normalizer steps (`pipeline.checkpoint.NORMALIZER_STEPS`), in order."""
    for step in steps:
        if step == "quotes":
            text = tf.strings.regex_replace(text, "``|''", '"')
        elif step in ("nfd", "nfkd"):
            text = tf_text.normalize_utf8(text, step.upper())
        elif step == "strip_accents":
            text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        elif step == "lowercase":
            text = _lowercase(text)
        elif step == "prefix_space":
            text = tf.strings.regex_replace(text, "^([^ ])", r" \1")
    return text


def _lowercase(text: tf.Tensor) -> tf.Tensor:
    """Lower-cases each character on its own, as the `tokenizers` library does: ICU's lower-casing
    would turn a word-final capital sigma into final ς; Hugging Face keeps σ. (Case folding would
    also apply NFKC: ß -> ss, ﬁ -> fi, which Hugging Face does not.)"""
    return tf.strings.lower(tf.strings.regex_replace(text, "Σ", "σ"), encoding="utf-8")


def checkpoint_tokenizer(checkpoint: Checkpoint) -> CheckpointTokenizer:
    """The in-graph tokenizer for `checkpoint.tokenizer`."""
    return tokenizer_class(checkpoint)(checkpoint)


def tokenizer_class(checkpoint: Checkpoint) -> type[CheckpointTokenizer]:
    """The class of `checkpoint`'s in-graph tokenizer (its `display_name` without its tables)."""
    if checkpoint.tokenizer == "sentencepiece":
        return SentencePieceTokenizer
    if checkpoint.tokenizer == "bpe":
        return ByteLevelBPETokenizer
    return WordPieceTokenizer


def _model_proto(checkpoint: Checkpoint):
    # pylint: disable-next=import-outside-toplevel
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    with tf.io.gfile.GFile(checkpoint.tokenizer_file, "rb") as handle:
        model.ParseFromString(handle.read())
    if checkpoint.trailing_space_piece:
        # `SentencePieceTokenizer._text_ids` folds the white space and adds the prefix itself.
        model.normalizer_spec.remove_extra_whitespaces = False
        model.normalizer_spec.add_dummy_prefix = False
    return model


def _hugging_face_vocabulary(checkpoint: Checkpoint) -> dict[str, int]:
    return reference_tokenizer(checkpoint.path).get_vocab()
