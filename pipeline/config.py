"""The one typed configuration of the pipeline: every option, its default, and how to override it.

A `PipelineConfig` is built from defaults, then a YAML file (`--config`), then `section.key=value`
overrides (`--set`) and the CLI's named flags. The same object, serialised to a dict, travels to
the Transform and Trainer code as `custom_config`, so the components see exactly what the run used.
"""

from __future__ import annotations

import dataclasses
import pathlib
import typing
from typing import Any, Mapping, Optional, Sequence

import yaml

from pipeline.encodings import encoding_problem


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


# Accepted values of `training.precision` and `training.strategy`.
PRECISIONS = ("fp32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
POOLINGS = ("auto", "cls", "mean")
# Who orchestrates a run on this machine: TFX's LocalDagRunner, or BeamDagRunner (the DAG itself
# runs as a Beam pipeline). Kubeflow runs are compiled and submitted instead (`textclf compile`).
ORCHESTRATORS = ("local", "beam")
# The token in a file pattern that ExampleGen replaces by a data span's number.
SPAN_TOKEN = "{SPAN}"
# Python's csv module (which TFX's CSV decoder uses) refuses longer fields by default.
CSV_FIELD_LIMIT = 131_072
# The most bytes JSON spends on one character: a character outside the Basic Multilingual
# Plane (an emoji) escaped as a surrogate pair: \ud83d\ude00.
_JSON_BYTES_PER_CHAR = 12
# What `notifications.events` may list.
NOTIFICATION_EVENTS = ("success", "failure", "not_blessed", "rollback", "promoted")
# Pipeline roots a Kubeflow run can write to: object stores, or a path on a volume every step mounts.
REMOTE_ROOT_SCHEMES = ("gs://", "s3://", "minio://")


@dataclasses.dataclass
class DataConfig:
    """Where the labelled text lives and which columns mean what."""

    # A CSV/TSV file, or a folder of them with one shared header.
    path: str = "data/reviews"
    delimiter: str = ","
    # The files' text encoding (any name Python's codecs know: latin-1, cp1252, utf-16...).
    # ExampleGen decodes with it, so the examples hold UTF-8 text; the files stay where they are.
    encoding: str = "utf-8"
    text_column: str = "text"
    # Second text column of sentence-pair tasks (MRPC, QNLI): rows become [CLS] a [SEP] b [SEP].
    text_pair_column: str = ""
    label_column: str = "label"
    # Metadata columns passed through Transform and used as Evaluator slices.
    slice_columns: list[str] = dataclasses.field(default_factory=lambda: ["source", "domain"])
    # Allowed label values in id order; empty means "the sorted values found in the data".
    label_values: list[str] = dataclasses.field(default_factory=list)
    # File patterns (relative to `path`) for given train/eval files, e.g. train.tsv / dev.tsv.
    # Leave both empty to let ExampleGen hash-split the files matching `file_pattern` by
    # `train_buckets:eval_buckets`. Any of the three may hold {SPAN} (e.g. span-{SPAN}/*.csv):
    # each run then reads the newest span, and `textclf retrain` runs only for a new one.
    train_pattern: str = ""
    eval_pattern: str = ""
    file_pattern: str = "*"
    train_buckets: int = 4
    eval_buckets: int = 1
    # A text longer than this many characters stops the run in the pre-flight check: such a
    # field is almost always rows merged by an unclosed quote, not a real text.
    max_text_chars: int = 100_000
    # Inputs up to this many bytes (all files together) are read row by row in the pre-flight
    # check. A larger input is not read twice: the pre-flight reads its headers and first
    # `preflight_sample_rows` rows of each file, and ExampleGen checks every row as it reads it
    # (on Beam), naming file and line the same way; labels outside that sample then need
    # data.label_values.
    preflight_max_bytes: int = 256 * 2**20
    preflight_sample_rows: int = 10_000
    # A reviewed schema (`textclf schema export` writes one to edit) that ImportSchemaGen loads
    # instead of inferring one from each run's data; empty infers (SchemaGen).
    schema_file: str = ""

    @property
    def text_columns(self) -> list[str]:
        """The one or two text columns, in the order the tokenizer joins them."""
        return [self.text_column] + ([self.text_pair_column] if self.text_pair_column else [])


@dataclasses.dataclass
class ModelConfig:
    """The encoder: a pretrained checkpoint to fine-tune, or a small BERT trained from scratch."""

    # A local checkpoint folder or a Hugging Face hub id (read from the local cache). Empty means
    # from scratch: a word-level TFT vocabulary and the encoder sizes below.
    pretrained: str = ""
    max_seq_length: int = 64
    # What the classification head reads: cls (the pooled [CLS] state, Hugging Face's
    # ...ForSequenceClassification), mean (the mean of the token states, as sentence-transformers
    # checkpoints were trained to embed), or auto (the pooling the checkpoint declares in
    # 1_Pooling/config.json, else cls).
    pooling: str = "auto"
    # Fine-tuning stops before training when fewer examples than this get exactly the token ids
    # the checkpoint's own tokenizer produces (the TokenizerParity component measures it).
    min_tokenizer_parity: float = 0.995
    # Eval examples the parity check compares; 0 means all of them.
    parity_sample_size: int = 0
    # From scratch only: words kept in the TFT vocabulary (besides [PAD], [UNK], [CLS], [SEP]); rarer words are [UNK].
    max_vocab_size: int = 20000
    # Words seen fewer times in the training split become [UNK], so [UNK] is trained too.
    min_word_frequency: int = 2
    num_layers: int = 2
    hidden_size: int = 128
    num_attention_heads: int = 2
    intermediate_size: int = 512
    dropout: float = 0.1


@dataclasses.dataclass
class TrainingConfig:
    """How the Trainer optimises."""

    batch_size: int = 32
    # Total optimiser steps (TFX TrainArgs), cut into `epochs` Keras epochs with validation after
    # each. Unset (null, or `auto` on the command line): 300 from scratch; when fine-tuning a
    # checkpoint, `epochs` passes over the training rows the Trainer counts.
    train_steps: Optional[int] = None
    epochs: int = 3
    # Eval batches for Keras validation; 0 means the whole eval split.
    eval_steps: int = 0
    # Peak learning rate, reached after the warm-up and decayed linearly to zero. Unset: 1e-3
    # from scratch, 5e-5 when fine-tuning a checkpoint (which wants far less).
    learning_rate: Optional[float] = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    # Gradients are clipped to this global norm (0 disables clipping).
    gradient_clip_norm: float = 1.0
    # The Trainer logs loss and examples/s, and writes TensorBoard step summaries, every this
    # many steps (0: only per epoch).
    log_every_steps: int = 100
    seed: int = 42
    # Stop when the eval loss has not improved for this many epochs, keeping the best weights
    # (0: never stop early).
    early_stopping_patience: int = 0
    # Split each batch into this many micro-batches and apply their summed gradients once: the
    # memory of a small batch, the optimisation of `batch_size` rows.
    gradient_accumulation_steps: int = 1
    # Compile the train step with XLA: faster per step, but each new sequence length recompiles.
    jit_compile: bool = False
    # fp32, or mixed_float16 (GPU; with loss scaling) / mixed_bfloat16 (TPU, recent GPUs and
    # CPUs). Logits, softmax and the exported outputs stay float32.
    precision: str = "fp32"
    # auto: TPU when `tpu_address` is set, Mirrored over all GPUs when there are several, else
    # one device. Or one of one_device, mirrored, multi_worker, tpu. `batch_size` is the global
    # batch, split across replicas.
    strategy: str = "auto"
    tpu_address: str = ""
    # multi_worker in a local run: the Trainer starts this many worker processes on 127.0.0.1.
    # On Kubeflow, the TFJob's TF_CONFIG decides instead.
    num_workers: int = 1
    # First port of the local workers (they take consecutive ports); 0 picks free ports.
    worker_base_port: int = 0
    # A collective op (gradient all-reduce) waiting longer than this for a peer fails the run.
    collective_timeout_seconds: int = 300
    # Crash-safe training: model, optimizer and step are saved every this many steps under the
    # pipeline root, and a Trainer run again with the same inputs resumes there (0: never).
    checkpoint_every_steps: int = 100
    keep_checkpoints: int = 3
    # Initialise from the last blessed model instead of `model.pretrained`, e.g. to retrain on
    # new data; the first run (no blessed model yet) starts as usual.
    warm_start: bool = False


@dataclasses.dataclass
class EvaluationConfig:
    """The Evaluator's gate: what a model must reach to be blessed and pushed."""

    # Absolute lower bound on overall accuracy.
    min_accuracy: float = 0.7
    # A candidate may lose at most this much accuracy against the last blessed model.
    max_accuracy_drop: float = 0.01


# What `tflite.variants` may list: weights and arithmetic of each TFLite model.
TFLITE_VARIANTS = ("float32", "float16", "dynamic_range", "int8", "int8_full")


@dataclasses.dataclass
class TFLiteConfig:
    """The TFLite export of every trained model: one `.tflite` per variant that takes raw strings
    (the tokenizer inside), each measured against the SavedModel on the eval split and shipped
    into the same store version (with a blessed model) only when it keeps the accuracy.
    """

    # float32; float16 (half the file); dynamic_range (int8 weights, activations quantized on the
    # fly); int8 (int8 weights and matrix products, calibrated on training texts,
    # LayerNorm/softmax/GELU/adds in float); int8_full (every op with an int8 kernel). Empty: no
    # TFLite export.
    variants: list[str] = dataclasses.field(
        default_factory=lambda: ["float16", "dynamic_range", "int8"])
    # A variant whose eval accuracy is more than this below the SavedModel's is not shipped...
    max_accuracy_drop: float = 0.01
    # ... nor one that loses more than this on any slice of at least `min_slice_examples`
    # examples (smaller slices are reported, not judged: one changed label moves them a lot)...
    max_slice_accuracy_drop: float = 0.05
    min_slice_examples: int = 50
    # ... nor one whose label differs from the SavedModel's on more than this share of the
    # examples: an app and the server should mostly agree, even where both are wrong.
    max_changed_labels: float = 0.05
    # Training texts the int8 variants are calibrated on.
    calibration_examples: int = 200
    # Eval examples the variants and the SavedModel are compared on (0: the whole split).
    eval_examples: int = 5000
    # Single-text predictions timed per model for the latency figures.
    latency_samples: int = 50
    # true: a model that cannot be exported (its tokenizer has no TFLite kernels, say) fails the
    # run; false: the run log and report say "no TFLite export: <reason>" and the model ships.
    required: bool = False


@dataclasses.dataclass
class DataChecksConfig:
    """Thresholds of the data gate, which stops the run before Transform when one is crossed.

    Rates are shares in [0, 1]; a threshold of 1 (or more, for the distances) turns its check
    off. The reference for drift is the last data that passed the gate (the previous span, or
    the previous version of the files when the data has no spans).
    """

    # ExampleValidator's anomalies against the schema stop the run (false: reported only).
    stop_on_anomalies: bool = True
    # Examples whose text (either column of a pair) is empty, blank or missing.
    max_empty_text_rate: float = 0.0
    # Examples longer than model.max_seq_length tokens, which truncation cuts.
    max_truncation_rate: float = 0.05
    # Tokens that are [UNK], in each split (from scratch: words rarer than
    # model.min_word_frequency in the training split).
    max_unk_rate: float = 0.10
    # Training examples whose text repeats another training example's.
    max_duplicate_rate: float = 0.05
    # Eval examples whose text also appears in the training split (texts compared lower-cased,
    # whitespace collapsed).
    max_leakage_rate: float = 0.01
    # Label distribution, L-infinity distance (TFDV's comparator): the training split against the
    # last accepted data's (drift), and against this data's eval split (skew).
    max_label_drift: float = 0.10
    max_label_skew: float = 0.10
    # Token-length distribution, Jensen-Shannon divergence (TFDV's comparator), likewise.
    max_length_drift: float = 0.10
    max_length_skew: float = 0.10


@dataclasses.dataclass
class NotificationsConfig:
    """A Slack-compatible webhook told of each run's outcome and of rollbacks."""

    # The incoming-webhook URL; TEXTCLF_WEBHOOK_URL overrides it, so the secret can stay out of
    # configuration files. Empty (and no variable): no notifications.
    webhook_url: str = ""
    timeout_seconds: float = 5.0
    # Which events are sent: success (a model was pushed), failure (the run or its input check
    # failed, a data gate included), not_blessed (the Evaluator refused the model), rollback
    # (by hand or by a rollout), promoted (a rollout's candidate took all traffic).
    events: list[str] = dataclasses.field(
        default_factory=lambda: ["success", "failure", "not_blessed", "rollback", "promoted"])


# JWT signature algorithms the server accepts: asymmetric ones (a public key or JWKS file) or
# HMAC ones (a shared secret), never both at once (algorithm confusion), never "none".
JWT_ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                             "ES384", "ES512", "EdDSA")
JWT_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


@dataclasses.dataclass
class JwtConfig:
    """JWT bearer tokens `textclf serve` accepts (PyJWT), on when `issuer` is set.

    The HMAC secret comes only from TEXTCLF_JWT_SECRET. A static TEXTCLF_SERVING_TOKEN, when
    set too, is still accepted and carries every scope.
    """

    # The `iss` and `aud` every token must carry.
    issuer: str = ""
    audience: str = ""
    algorithms: list[str] = dataclasses.field(default_factory=lambda: ["RS256", "ES256"])
    # PEM public key, or a JWKS document (keys chosen by `kid`), for the asymmetric algorithms.
    public_key_file: str = ""
    jwks_file: str = ""
    # Clock skew allowed on `exp`, `nbf` and `iat`.
    leeway_seconds: float = 30.0
    # Scopes (the `scope` claim, space-separated, or `scp`): predicting and reading status and
    # metadata, and the operator's paths (`/metrics`, rollout control).
    predict_scope: str = "predict"
    admin_scope: str = "admin"

    def problems(self) -> list[str]:
        """What stops `serve` before it binds, each naming the option."""
        if not self.issuer:
            return ["serving.jwt.audience needs serving.jwt.issuer"] if self.audience else []
        problems = []
        unknown = [name for name in self.algorithms
                   if name not in JWT_ASYMMETRIC_ALGORITHMS + JWT_HMAC_ALGORITHMS]
        if not self.algorithms or unknown:
            problems.append(f"serving.jwt.algorithms must name some of "
                            f"{', '.join(JWT_ASYMMETRIC_ALGORITHMS + JWT_HMAC_ALGORITHMS)}"
                            + (f"; {unknown[0]!r} is not one" if unknown else ""))
        hmac = [name for name in self.algorithms if name in JWT_HMAC_ALGORITHMS]
        if hmac and len(hmac) != len(self.algorithms):
            problems.append("serving.jwt.algorithms mixes HMAC and public-key algorithms, which "
                            "lets a public key be used as an HMAC secret: choose one kind")
        if not self.audience:
            problems.append("serving.jwt.audience must be set with serving.jwt.issuer")
        if not hmac and not (self.public_key_file or self.jwks_file):
            problems.append("serving.jwt.issuer is set but neither serving.jwt.public_key_file "
                            "nor serving.jwt.jwks_file is")
        if self.public_key_file and self.jwks_file:
            problems.append("set one of serving.jwt.public_key_file and serving.jwt.jwks_file")
        if self.leeway_seconds < 0:
            problems.append("serving.jwt.leeway_seconds must be >= 0")
        if not self.predict_scope or not self.admin_scope:
            problems.append("serving.jwt.predict_scope and serving.jwt.admin_scope must be set")
        return problems


AUDIT_FSYNC_POLICIES = ("always", "interval", "never")
AUDIT_FAILURE_POLICIES = ("fail_closed", "fail_open")


@dataclasses.dataclass
class AuditConfig:
    """The prediction audit log: one hash-chained JSON line per prediction request."""

    # The log file (rotated files beside it get .1, .2, ...); empty: no audit log.
    path: str = ""
    # Also record each input's raw text (by default only its SHA-256 and length).
    include_text: bool = False
    # Records waiting for the background writer; when full, a record is lost (fail_open) or
    # its request refused (fail_closed).
    queue_size: int = 10000
    # fsync after every batch of lines written, at most once a second, or never (the OS's).
    fsync: str = "always"
    # A file past this size is rotated.
    rotate_bytes: int = 100 << 20
    # When a record cannot be written (disk full, permission): refuse predictions with 503
    # (fail_closed), or serve and count the lost records (fail_open).
    on_failure: str = "fail_closed"

    def problems(self) -> list[str]:
        """What stops `serve` before it binds, each naming the option."""
        checks = [
            (self.fsync in AUDIT_FSYNC_POLICIES,
             f"serving.audit.fsync must be one of {', '.join(AUDIT_FSYNC_POLICIES)}"),
            (self.on_failure in AUDIT_FAILURE_POLICIES,
             f"serving.audit.on_failure must be one of {', '.join(AUDIT_FAILURE_POLICIES)}"),
            (self.queue_size >= 1, "serving.audit.queue_size must be >= 1"),
            (self.rotate_bytes >= 1 << 16, "serving.audit.rotate_bytes must be >= 65536"),
        ]
        return [message for passed, message in checks if not passed]


ROLLOUT_MODES = ("immediate", "canary", "shadow")


@dataclasses.dataclass
class RolloutConfig:
    """How a newer version reaches live traffic: at once, or a step at a time while watched.

    Each step's window compares the candidate with the stable version; crossing any threshold
    rolls the candidate back (through the store's rollback) as soon as the window holds
    `step_requests`; a step passes when it has lasted `step_seconds` and held them.
    """

    # immediate: a newer good version takes all traffic once loaded (TF Serving's way);
    # canary: it answers a growing share of requests; shadow: it is sent copies of a growing
    # share, and its answers are compared with the stable version's, never returned.
    mode: str = "immediate"
    # The candidate's share of requests (percent) at each step, rising; the last is 100, which
    # makes the candidate the stable version.
    steps: list[float] = dataclasses.field(default_factory=lambda: [1.0, 5.0, 25.0, 50.0, 100.0])
    step_seconds: float = 300.0
    # Requests the candidate answered (canary) or was sent (shadow) in the step's window: fewer
    # and the step waits. The label figures' sampling noise shrinks with it.
    step_requests: int = 200
    # Failed requests (5xx, a model failure) on the candidate minus on the stable version, as
    # shares of each one's requests.
    max_error_rate_increase: float = 0.01
    # The candidate's p99 latency over the stable version's; a ratio above it rolls back only
    # when the p99 also grew by more than `min_p99_increase_ms` (milliseconds of noise are not
    # a slower model).
    max_p99_ratio: float = 1.5
    min_p99_increase_ms: float = 20.0
    # canary: largest difference between the two versions' predicted-label shares (L-infinity);
    # shadow: share of copied requests whose label differs from the stable version's.
    max_label_shift: float = 0.15
    max_disagreement: float = 0.05
    # Several servers over one store: one (the holder of this lease, renewed at every poll)
    # decides; the others follow the state it writes. Must exceed serving.poll_seconds.
    leader_lease_seconds: float = 10.0

    def problems(self, poll_seconds: float) -> list[str]:
        """What stops `serve` before it binds, each naming the option."""
        steps = self.steps
        checks = [
            (self.mode in ROLLOUT_MODES,
             f"serving.rollout.mode must be one of {', '.join(ROLLOUT_MODES)}, got {self.mode!r}"),
            (bool(steps) and all(0 < step <= 100 for step in steps),
             f"serving.rollout.steps must be percentages in (0, 100], got {steps}"),
            (all(later > earlier for earlier, later in zip(steps, steps[1:])),
             f"serving.rollout.steps must rise step by step, got {steps}"),
            (bool(steps) and steps[-1] == 100,
             f"serving.rollout.steps must end at 100 (the candidate takes all traffic), got "
             f"{steps}"),
            (self.step_seconds >= 0, "serving.rollout.step_seconds must be >= 0"),
            (self.step_requests >= 1, "serving.rollout.step_requests must be >= 1"),
            (self.max_error_rate_increase >= 0,
             "serving.rollout.max_error_rate_increase must be >= 0"),
            (self.max_p99_ratio >= 1, "serving.rollout.max_p99_ratio must be >= 1"),
            (self.min_p99_increase_ms >= 0, "serving.rollout.min_p99_increase_ms must be >= 0"),
            (0 <= self.max_label_shift <= 1, "serving.rollout.max_label_shift must be in [0, 1]"),
            (0 <= self.max_disagreement <= 1,
             "serving.rollout.max_disagreement must be in [0, 1]"),
            (self.leader_lease_seconds > 2 * poll_seconds,
             "serving.rollout.leader_lease_seconds must exceed twice serving.poll_seconds"),
        ]
        return [message for passed, message in checks if not passed]


@dataclasses.dataclass
class ServingConfig:
    """The versioned model store the Pusher writes and `textclf serve` reads.

    The server's static bearer token comes only from TEXTCLF_SERVING_TOKEN, JWTs are checked
    when `jwt.issuer` is set (auth is off when neither is), and the Pusher's private key comes
    from `signing_key_file` or TEXTCLF_SIGNING_KEY.
    """

    # 127.0.0.1 serves this machine only; 0.0.0.0 inside a container.
    host: str = "127.0.0.1"
    port: int = 8080
    # How often the server looks for a newer (or rolled-back) version, as TF Serving's file
    # system source polls.
    poll_seconds: float = 2.0
    # Concurrent requests are grouped into one model call of at most this many texts, waiting at
    # most `max_batch_wait_ms` for company; 1 turns batching off (one model call per request).
    max_batch_size: int = 32
    max_batch_wait_ms: float = 5.0
    # Model calls running at once (TF Serving's num_batch_threads): a batch forms while another
    # runs, so the CPU does not idle while requests wait for company. About the core count.
    max_concurrent_batches: int = 2
    # Request limits, answered with 413 and the limit's name: texts in one request, characters
    # (code points) in one text, and bytes in one body, counted while it is read. 0 bytes means
    # the largest body that fits the other two: JSON escapes an emoji in 12 bytes.
    max_instances: int = 64
    max_text_chars: int = 10000
    max_body_bytes: int = 0
    # Good versions kept in the store after each push (0 keeps all); rejected ones stay.
    keep_versions: int = 5
    # Ed25519 private key (PEM) the Pusher signs each manifest with; empty: TEXTCLF_SIGNING_KEY,
    # else unsigned.
    signing_key_file: str = ""
    # Ed25519 public key (PEM): when set, the server loads only versions signed by its pair.
    verify_key_file: str = ""
    jwt: JwtConfig = dataclasses.field(default_factory=JwtConfig)
    audit: AuditConfig = dataclasses.field(default_factory=AuditConfig)
    rollout: RolloutConfig = dataclasses.field(default_factory=RolloutConfig)
    # PEM certificate (chain) and private key: when set, the server speaks HTTPS only.
    tls_cert_file: str = ""
    tls_key_file: str = ""

    def body_limit_bytes(self) -> int:
        """`max_body_bytes`, or what the largest request within the other limits needs: every
        text of a sentence pair at its limit, each character escaped in 12 bytes."""
        if self.max_body_bytes:
            return self.max_body_bytes
        per_text = self.max_text_chars * _JSON_BYTES_PER_CHAR + 64
        return self.max_instances * (2 * per_text + 64) + 65536


@dataclasses.dataclass
class KubeflowConfig:
    """Compiling for Kubeflow Pipelines v2 and operating runs there (`textclf compile/submit/schedule`).

    The endpoint and the bearer token come from KF_PIPELINES_ENDPOINT and KF_PIPELINES_TOKEN
    when set, so secrets stay out of configuration files.
    """

    # The image every step runs in (built from the repository's Dockerfile).
    image: str = "ghcr.io/textclf/textclf-pipeline:latest"
    # gs://, s3:// or minio:// bucket path, or an absolute path on a volume every step mounts.
    pipeline_root: str = ""
    # Where the Pusher writes <model_name>/<version>/; empty means <pipeline_root>/serving_models.
    serving_root: str = ""
    # Default of the `data_path` runtime parameter (the ExampleGen input folder); empty means
    # <pipeline_root>/data.
    data_path: str = ""
    # Beam for the data components inside each step: DirectRunner over all the pod's cores by
    # default; pass --runner=DataflowRunner/FlinkRunner/SparkRunner and its options instead.
    beam_pipeline_args: list[str] = dataclasses.field(default_factory=lambda: [
        "--direct_running_mode=multi_processing", "--direct_num_workers=0"])
    # Where `textclf compile` writes the pipeline spec.
    package_path: str = "outputs/kubeflow/textclf.yaml"
    endpoint: str = ""
    # The cluster's ML Metadata gRPC service, which `textclf retrain --kubeflow` asks for the last
    # trained span (e.g. 127.0.0.1 after `kubectl port-forward svc/metadata-grpc-service 8080`).
    metadata_host: str = ""
    metadata_port: int = 8080
    experiment: str = "textclf"
    namespace: str = ""
    service_account: str = ""
    # Each replica of the TFJob the Trainer submits for training.strategy=multi_worker with
    # num_workers > 1 (a chief and num_workers - 1 workers, in `namespace`).
    worker_cpu: str = "4"
    worker_memory: str = "16Gi"
    worker_gpus: int = 0
    tfjob_timeout_seconds: int = 24 * 3600


@dataclasses.dataclass
class PipelineConfig:
    """Everything a run needs; paths are resolved against the working directory."""

    pipeline_name: str = "textclf"
    # Name of the model in the serving store: <serving_dir>/<model_name>/<version>/.
    model_name: str = "textclf"
    # Pipeline root, MLMD database, logs and the serving store live below this folder.
    output_dir: str = "outputs"
    enable_cache: bool = True
    orchestrator: str = "local"
    beam_pipeline_args: list[str] = dataclasses.field(
        default_factory=lambda: ["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    tflite: TFLiteConfig = dataclasses.field(default_factory=TFLiteConfig)
    data_checks: DataChecksConfig = dataclasses.field(default_factory=DataChecksConfig)
    serving: ServingConfig = dataclasses.field(default_factory=ServingConfig)
    notifications: NotificationsConfig = dataclasses.field(default_factory=NotificationsConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

    @property
    def pipeline_root(self) -> str:
        return str(pathlib.Path(self.output_dir, "pipelines", self.pipeline_name).resolve())

    @property
    def metadata_path(self) -> str:
        return str(pathlib.Path(self.output_dir, "metadata", self.pipeline_name,
                                "metadata.db").resolve())

    @property
    def serving_dir(self) -> str:
        return str(pathlib.Path(self.output_dir, "serving_models").resolve())

    @property
    def cluster_serving_dir(self) -> str:
        """The store a Kubeflow run's Pusher writes: kubeflow.serving_root or under the root."""
        if not (self.kubeflow.serving_root or self.kubeflow.pipeline_root):
            raise ConfigError("kubeflow.serving_root and kubeflow.pipeline_root are both empty: "
                              "set them (e.g. --config kubeflow/pipeline.yaml)")
        root = self.kubeflow.pipeline_root.rstrip("/")
        return self.kubeflow.serving_root.rstrip("/") or f"{root}/serving_models"

    @property
    def log_dir(self) -> str:
        return str(pathlib.Path(self.output_dir, "logs").resolve())

    @property
    def report_dir(self) -> str:
        return str(pathlib.Path(self.output_dir, "reports").resolve())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PipelineConfig":
        return section_from_dict(cls, values)

    @classmethod
    def load(cls, path: str | None = None, overrides: Sequence[str] = ()) -> "PipelineConfig":
        """Defaults, then the YAML file at `path`, then `section.key=value` overrides."""
        values: dict[str, Any] = {}
        if path:
            try:
                loaded = yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as error:
                raise ConfigError(f"cannot read config file {path}: {error}") from error
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file {path} must hold a mapping of sections")
            values = loaded
        config = cls.from_dict(values)
        for override in overrides:
            config.set(override)
        config.validate()
        return config

    def set(self, override: str) -> None:
        """Applies one `section.key=value` override, parsing the value by the field's type.

        Call `validate()` after the last override: some checks span several keys.
        """
        key, separator, raw_value = override.partition("=")
        if not separator:
            raise ConfigError(f"override {override!r} must look like section.key=value")
        *sections, name = key.strip().split(".")
        target: Any = self
        for section in sections:
            if not dataclasses.is_dataclass(getattr(target, section, None)):
                raise ConfigError(f"unknown config section {section!r} in {override!r}")
            target = getattr(target, section)
        field_types = typing.get_type_hints(type(target))
        if name not in field_types or dataclasses.is_dataclass(field_types[name]):
            raise ConfigError(f"unknown config key {key!r}")
        setattr(target, name, _parse(field_types[name], raw_value, key))

    def validate(self) -> None:
        """Rejects values no run could use, before any component starts."""
        encoding_error = encoding_problem(self.data.encoding)
        checks = [
            (len(self.data.delimiter) == 1, "data.delimiter must be one character, e.g. ',' or '\\t'"),
            (encoding_error is None, encoding_error),
            (len({self.data.text_column, self.data.text_pair_column or self.data.text_column,
                  self.data.label_column}) == (3 if self.data.text_pair_column else 2),
             "data.text_column, data.text_pair_column and data.label_column must differ"),
            (bool(self.data.train_pattern) == bool(self.data.eval_pattern),
             "set both data.train_pattern and data.eval_pattern, or neither"),
            (self.data.train_buckets > 0 and self.data.eval_buckets > 0,
             "data.train_buckets and data.eval_buckets must be positive"),
            (bool(self.data.file_pattern), "data.file_pattern must not be empty ('*' reads all files)"),
            (self.orchestrator in ORCHESTRATORS,
             f"orchestrator must be one of {', '.join(ORCHESTRATORS)}, got {self.orchestrator!r}"),
            (self.model.max_seq_length >= 3, "model.max_seq_length must be at least 3"),
            (self.model.pooling in POOLINGS,
             f"model.pooling must be one of {', '.join(POOLINGS)}, got {self.model.pooling!r}"),
            (self.model.hidden_size % self.model.num_attention_heads == 0,
             "model.hidden_size must be a multiple of model.num_attention_heads"),
            (0.0 <= self.model.min_tokenizer_parity <= 1.0,
             "model.min_tokenizer_parity must be in [0, 1]"),
            (self.model.parity_sample_size >= 0, "model.parity_sample_size must be >= 0"),
            (self.training.batch_size > 0, "training.batch_size must be positive"),
            (0.0 <= self.training.warmup_ratio < 1.0, "training.warmup_ratio must be in [0, 1)"),
            (self.training.gradient_clip_norm >= 0.0, "training.gradient_clip_norm must be >= 0"),
            (self.training.epochs > 0 and (self.training.train_steps is None
                                           or self.training.train_steps >= self.training.epochs),
             "training.train_steps must be at least training.epochs (> 0)"),
            (self.training.learning_rate is None or self.training.learning_rate >= 0,
             "training.learning_rate must be >= 0"),
            (self.training.early_stopping_patience >= 0,
             "training.early_stopping_patience must be >= 0"),
            (self.training.gradient_accumulation_steps >= 1
             and self.training.batch_size % self.training.gradient_accumulation_steps == 0,
             "training.gradient_accumulation_steps must be >= 1 and divide training.batch_size"),
            (self.training.precision in PRECISIONS,
             f"training.precision must be one of {', '.join(PRECISIONS)}, "
             f"got {self.training.precision!r}"),
            (self.training.strategy in STRATEGIES,
             f"training.strategy must be one of {', '.join(STRATEGIES)}, "
             f"got {self.training.strategy!r}"),
            (self.training.num_workers >= 1, "training.num_workers must be >= 1"),
            (self.training.num_workers == 1 or self.training.strategy == "multi_worker",
             "training.num_workers > 1 needs training.strategy=multi_worker"),
            (0 <= self.training.worker_base_port <= 65535,
             "training.worker_base_port must be a port number (0 picks free ports)"),
            (self.training.collective_timeout_seconds > 0,
             "training.collective_timeout_seconds must be positive"),
            (self.training.checkpoint_every_steps >= 0,
             "training.checkpoint_every_steps must be >= 0 (0 disables checkpoints)"),
            (self.training.keep_checkpoints >= 1, "training.keep_checkpoints must be >= 1"),
            (0.0 <= self.evaluation.min_accuracy <= 1.0, "evaluation.min_accuracy must be in [0, 1]"),
            (self.evaluation.max_accuracy_drop >= 0.0, "evaluation.max_accuracy_drop must be >= 0"),
            (set(self.tflite.variants) <= set(TFLITE_VARIANTS)
             and len(set(self.tflite.variants)) == len(self.tflite.variants),
             f"tflite.variants must be among {', '.join(TFLITE_VARIANTS)}, each once, "
             f"got {self.tflite.variants}"),
            (min(self.tflite.max_accuracy_drop, self.tflite.max_slice_accuracy_drop,
                 self.tflite.max_changed_labels) >= 0,
             "tflite.max_accuracy_drop, max_slice_accuracy_drop and max_changed_labels must be "
             ">= 0"),
            (self.tflite.calibration_examples >= 1 and self.tflite.latency_samples >= 1
             and self.tflite.eval_examples >= 0 and self.tflite.min_slice_examples >= 1,
             "tflite.calibration_examples, latency_samples and min_slice_examples must be >= 1, "
             "tflite.eval_examples >= 0 (0: the whole split)"),
            (0 < self.serving.port <= 65535, "serving.port must be a port number"),
            (self.serving.poll_seconds > 0, "serving.poll_seconds must be positive"),
            (self.serving.max_batch_size >= 1,
             "serving.max_batch_size must be >= 1 (1 turns batching off)"),
            (self.serving.max_batch_wait_ms >= 0, "serving.max_batch_wait_ms must be >= 0"),
            (self.serving.max_concurrent_batches >= 1,
             "serving.max_concurrent_batches must be >= 1"),
            (self.serving.max_instances >= 1 and self.serving.max_text_chars >= 1,
             "serving.max_instances and serving.max_text_chars must be positive"),
            (self.serving.max_body_bytes >= 0,
             "serving.max_body_bytes must be >= 0 (0: what the other limits need)"),
            (self.serving.keep_versions >= 0, "serving.keep_versions must be >= 0 (0 keeps all)"),
            (bool(self.serving.tls_cert_file) == bool(self.serving.tls_key_file),
             "serving.tls_cert_file and serving.tls_key_file must be set together"),
            *[(False, problem) for problem in self.serving.jwt.problems()],
            *[(False, problem) for problem in self.serving.audit.problems()],
            *[(False, problem)
              for problem in self.serving.rollout.problems(self.serving.poll_seconds)],
            (1 <= self.data.max_text_chars <= CSV_FIELD_LIMIT,
             f"data.max_text_chars must be in [1, {CSV_FIELD_LIMIT}], the longest field "
             "ExampleGen's CSV decoder reads"),
            (self.data.preflight_max_bytes >= 0 and self.data.preflight_sample_rows >= 1,
             "data.preflight_max_bytes must be >= 0 and data.preflight_sample_rows >= 1"),
            (all(value >= 0 for name, value in dataclasses.asdict(self.data_checks).items()
                 if name.startswith("max_")), "data_checks thresholds must be >= 0"),
            (set(self.notifications.events) <= set(NOTIFICATION_EVENTS),
             f"notifications.events must be among {', '.join(NOTIFICATION_EVENTS)}, "
             f"got {self.notifications.events}"),
            (self.notifications.timeout_seconds > 0,
             "notifications.timeout_seconds must be positive"),
        ]
        for passed, message in checks:
            if not passed:
                raise ConfigError(message)


def section_from_dict(cls: type, values: Mapping[str, Any]) -> Any:
    """Builds the config dataclass `cls` (a whole config or one section) from plain values."""
    return _build(cls, values, prefix="")


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    field_types = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(field_types))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + key for key in unknown)}")
    kwargs = {}
    for name, value in values.items():
        field_type = field_types[name]
        if dataclasses.is_dataclass(field_type):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config section {prefix + name} must be a mapping")
            kwargs[name] = _build(field_type, value, prefix + name + ".")
        else:
            kwargs[name] = _coerce(field_type, value, prefix + name)
    instance = cls(**kwargs)
    if cls is PipelineConfig:
        instance.validate()
    return instance


def _optional_of(field_type: Any) -> Any:
    """X for a field declared Optional[X] (unset: a rule decides its value), else None."""
    arguments = typing.get_args(field_type)
    if typing.get_origin(field_type) is typing.Union and type(None) in arguments:
        return next(argument for argument in arguments if argument is not type(None))
    return None


def _coerce(field_type: Any, value: Any, key: str) -> Any:
    """Checks a value loaded from YAML/JSON against the field's declared type."""
    inner_type = _optional_of(field_type)
    if inner_type is not None:
        return None if value is None else _coerce(inner_type, value, key)
    if typing.get_origin(field_type) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list")
        item_type = typing.get_args(field_type)[0]
        if item_type is str:
            return [str(item) for item in value]
        return [_coerce(item_type, item, key) for item in value]
    if field_type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, field_type) or (field_type is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be of type {field_type.__name__}, got {value!r}")
    return value


def _parse(field_type: Any, raw_value: str, key: str) -> Any:
    """Parses a command-line string into the field's type (lists are comma-separated; `auto`
    unsets an optional field)."""
    inner_type = _optional_of(field_type)
    if inner_type is not None:
        return None if raw_value.strip().lower() in ("auto", "") \
            else _parse(inner_type, raw_value, key)
    if typing.get_origin(field_type) is list:
        items = [item.strip() for item in raw_value.split(",") if item.strip()]
        item_type = typing.get_args(field_type)[0]
        return items if item_type is str else [_parse(item_type, item, key) for item in items]
    if field_type is bool:
        if raw_value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{key} must be true or false, got {raw_value!r}")
        return raw_value.lower() in ("true", "1", "yes")
    if field_type is str:
        # A tab is awkward to type in a shell, so `\t` and `tab` both mean a tab character.
        return "\t" if raw_value in ("\\t", "tab") else raw_value
    try:
        return field_type(raw_value)
    except ValueError as error:
        raise ConfigError(f"{key} must be of type {field_type.__name__}, got {raw_value!r}") from error
