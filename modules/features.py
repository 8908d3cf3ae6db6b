"""Names shared by the Transform code, the Trainer code and the Evaluator configuration."""

# Transformed features the encoder reads.
INPUT_WORD_IDS = "input_word_ids"
INPUT_MASK = "input_mask"
SEGMENT_IDS = "segment_ids"
MODEL_INPUTS = (INPUT_WORD_IDS, INPUT_MASK, SEGMENT_IDS)

# Transformed label: the integer id of the label string in the label vocabulary.
LABEL_ID = "label_id"

# TFT vocabulary files (assets of the transform graph, so the served model carries them).
WORD_VOCABULARY = "word_vocabulary"
LABEL_VOCABULARY = "label_vocabulary"

# Reserved word-piece ids, in BERT's order; the analyzer puts them first in the vocabulary.
PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
RESERVED_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN)
PAD_ID, UNK_ID, CLS_ID, SEP_ID = range(len(RESERVED_TOKENS))

# Outputs of every prediction signature.
PROBABILITIES = "probabilities"
PREDICTED_LABEL = "label"
PREDICTED_CLASS_ID = "class_id"

# Argument names of the `predict_text` signature: the text, and the second text of a sentence
# pair.
TEXT_INPUT_NAMES = ("text", "text_pair")

# Exported signature names.
SERVING_SIGNATURE = "serving_default"
TEXT_SIGNATURE = "predict_text"
TRANSFORM_SIGNATURE = "transform_features"
IDS_SIGNATURE = "predict_ids"
