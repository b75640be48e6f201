"""Raw-feature serving export: a SavedModel that takes raw field strings.

`export_saved_model(model, spec, path)` writes a SavedModel whose signatures
take RAW feature values (the same strings as in the Criteo TSV, "" = missing)
and return the click probability. Everything between the raw strings and the
model inputs happens inside the graph, following the `FeatureSpec` contract
(`ctr_zoo.feature_columns.spec`):

- vocabulary features: `tf.lookup.StaticHashTable` value -> NUM_RESERVED_IDS + i,
  unseen or rare values -> OOV_ID = 1, "" -> MISSING_ID = 0;
- hashed features: id = 2 + `tf.strings.to_hash_bucket_fast(value, buckets)`,
  "" -> 0;
- dense fields: the string is parsed as a base-10 integer (int64, then float64); "log1p" =
  log(1 + max(x, 0)), "standardize" = (x - mean) / std, "none" = x, each with
  missing -> 0, then cast to float32; "bucketize" = the token
  str(floor(ln(x)^2)) if x > 2 else str(int(x)), looked up like a categorical
  value (missing -> 0);
- sequences: tokens split on the feature's separator (empty tokens dropped),
  the LAST max_len kept, each looked up in the feature's (or the shared)
  vocabulary, right-padded with PAD_ID = 0.

Signatures (all return {"probability": float32 (B,), "logit": float32 (B,)}):

- `serving_default`: one tf.string tensor of shape (B,) per feature, keyword
  arguments named like the features (e.g. I1..I13, C1..C26 for Criteo).
- `serve_tsv`: `lines`, tf.string (B,): raw tab-separated lines, either with
  the label column first (as in Kaggle train.txt) or without it (as in
  test.txt); each line must have len(features) or len(features) + 1 fields.
- `preprocess`: the per-feature strings of `serving_default` -> the model's
  input dict (ids and floats), for checking the in-graph transform.

The SavedModel needs only TensorFlow to run: load it with plain
`tf.saved_model.load(path)` in a process that never imports ctr_zoo. The spec
is also written next to it as `assets/spec.json`.

Pruning of all-zero embedding rows (`prune_zero_rows=True`, for group-lasso
FTRL) is not implemented yet and raises NotImplementedError.
"""

from __future__ import annotations

import os

import tensorflow as tf

from ctr_zoo.feature_columns import spec as spec_lib

_SIGNATURE_OUTPUTS = ("probability", "logit")


def _lookup_table(vocabulary) -> tf.lookup.StaticHashTable:
  keys = tf.constant(list(vocabulary), dtype=tf.string)
  values = tf.range(spec_lib.NUM_RESERVED_IDS, spec_lib.NUM_RESERVED_IDS + len(vocabulary),
                    dtype=tf.int64)
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(keys, values), default_value=spec_lib.OOV_ID)


class RawFeatureModule(tf.Module):
  """The raw-string -> ids/floats -> model graph, as a trackable module.

  Args:
    model: tf.keras.Model. Takes the spec's feature dict and returns the click
      probability (B, 1); a `logit` layer is used for the logit when present.
    spec: FeatureSpec. The fitted spec the model was trained with.
  """

  def __init__(self, model: tf.keras.Model, spec: spec_lib.FeatureSpec):
    super().__init__(name="raw_feature_serving")
    if not spec.is_fitted:
      raise spec_lib.SpecError("export needs a fitted FeatureSpec (vocabularies present)")
    self._spec = spec
    self.model = model
    try:
      self.logit_model = tf.keras.Model(model.inputs, model.get_layer("logit").output)
    except (ValueError, AttributeError, TypeError):
      self.logit_model = None
    self.tables = {}
    for f in spec.features:
      vocab_owner = f
      if isinstance(f, spec_lib.SequenceFeature) and f.shares_vocabulary_with:
        vocab_owner = spec[f.shares_vocabulary_with]
      if getattr(vocab_owner, "vocabulary", None) is not None and vocab_owner.name not in self.tables:
        self.tables[vocab_owner.name] = _lookup_table(vocab_owner.vocabulary)
    self.spec_json = tf.Variable(spec.to_json(indent=None), trainable=False, name="spec_json")

  # --- raw -> model inputs -----------------------------------------------------
  def _token_ids(self, feature, tokens: tf.Tensor) -> tf.Tensor:
    """Ids of string tokens (any shape) for an id feature; "" -> MISSING_ID."""
    owner = feature
    if isinstance(feature, spec_lib.SequenceFeature) and feature.shares_vocabulary_with:
      owner = self._spec[feature.shares_vocabulary_with]
    if owner.hash_buckets is not None:
      ids = tf.strings.to_hash_bucket_fast(tokens, owner.hash_buckets) + spec_lib.NUM_RESERVED_IDS
    else:
      ids = self.tables[owner.name].lookup(tokens)
    return tf.where(tf.equal(tokens, ""), tf.constant(spec_lib.MISSING_ID, tf.int64), ids)

  def _dense_value(self, feature, raw: tf.Tensor) -> tf.Tensor:
    missing = tf.equal(raw, "")
    # Base-10 integer strings, as in ctr_zoo.datasets.encoding; float64 math.
    x = tf.cast(tf.strings.to_number(tf.where(missing, "0", raw), out_type=tf.int64), tf.float64)
    if feature.transform == "bucketize":
      bucket = tf.where(x > 2, tf.floor(tf.square(tf.math.log(tf.maximum(x, 2.0)))), x)
      tokens = tf.strings.as_string(tf.cast(bucket, tf.int64))
      tokens = tf.where(missing, "", tokens)
      return self._token_ids(feature, tokens)
    if feature.transform == "log1p":
      y = tf.math.log1p(tf.maximum(x, 0.0))
    elif feature.transform == "standardize":
      y = (x - feature.mean) / feature.std
    else:  # "none"
      y = x
    return tf.cast(tf.where(missing, tf.zeros_like(y), y), tf.float32)

  def _sequence_ids(self, feature, raw: tf.Tensor) -> tf.Tensor:
    tokens = tf.strings.split(raw, sep=feature.separator)  # ragged (B, None)
    tokens = tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
    tokens = tokens[:, -feature.max_len:]  # keep the last max_len (most recent)
    ids = tf.ragged.map_flat_values(lambda t: self._token_ids(feature, t), tokens)
    return ids.to_tensor(default_value=spec_lib.PAD_ID, shape=[None, feature.max_len])  # (B, L)

  def features_from_raw(self, raw: dict) -> dict:
    """{name: tf.string (B,)} -> the model's input dict."""
    out = {}
    for f in self._spec.features:
      value = tf.reshape(raw[f.name], [-1])  # exact strings: no trimming
      if isinstance(f, spec_lib.SequenceFeature):
        ids = self._sequence_ids(f, value)
      elif isinstance(f, spec_lib.DenseFeature):
        ids = self._dense_value(f, value)
      else:
        ids = self._token_ids(f, value)
      out[f.name] = ids
    return out

  def predict_raw(self, raw: dict) -> dict:
    inputs = self.features_from_raw(raw)
    probability = tf.reshape(self.model(inputs, training=False), [-1])
    if self.logit_model is not None:
      logit = tf.reshape(self.logit_model(inputs, training=False), [-1])
    else:
      p = tf.clip_by_value(probability, 1e-7, 1 - 1e-7)
      logit = tf.math.log(p) - tf.math.log1p(-p)
    return {"probability": probability, "logit": logit}

  def split_tsv(self, lines: tf.Tensor) -> dict:
    """Raw TSV lines (B,) -> {name: tf.string (B,)}; the label column is optional."""
    n = len(self._spec.features)
    parts = tf.strings.split(tf.strings.regex_replace(lines, "[\r\n]+$", ""), sep="\t")  # (B, None)
    lengths = parts.row_lengths()
    tf.debugging.Assert(
        tf.reduce_all(tf.logical_or(tf.equal(lengths, n), tf.equal(lengths, n + 1))),
        ["serve_tsv: every line needs", n, "or", n + 1, "tab-separated fields; got counts", lengths],
        summarize=20)
    offset = lengths - n  # 1 when the label column is present
    starts = parts.row_starts() + offset
    return {f.name: tf.gather(parts.values, starts + j) for j, f in enumerate(self._spec.features)}


def export_saved_model(model: tf.keras.Model, spec: spec_lib.FeatureSpec, path: str,
                       prune_zero_rows: bool = False) -> dict:
  """Writes a raw-feature serving SavedModel of `model` to `path`.

  Args:
    model: tf.keras.Model. A ctr_zoo model (or any model with the spec's
      input dict and a (B, 1) probability output).
    spec: FeatureSpec. The fitted spec the model was trained with.
    path: str. Output directory.
    prune_zero_rows: bool. Drop all-zero embedding rows (group lasso). Not
      implemented yet: True raises NotImplementedError. Defaults to False.

  Returns:
    {"path": path, "signatures": sorted signature names}.
  """
  spec = spec if isinstance(spec, spec_lib.FeatureSpec) else spec_lib.FeatureSpec.from_json(spec)
  missing = sorted(set(spec.feature_names) - set(getattr(model, "input_names", spec.feature_names)))
  if missing:
    raise ValueError(f"model {model.name!r} has no inputs for spec features {missing}")
  if prune_zero_rows:
    raise NotImplementedError(
        "export_saved_model(prune_zero_rows=True) is not implemented yet: dropping all-zero "
        "rows needs the embedding layers to expose compactable tables; export without it")
  module = RawFeatureModule(model, spec)

  names = spec.feature_names
  field_specs = {n: tf.TensorSpec([None], tf.string, name=n) for n in names}

  @tf.function(input_signature=[field_specs])
  def _serve_dict(raw):
    return module.predict_raw(raw)

  # serving_default takes keyword arguments named like the features.
  serve_fields = _serve_dict.get_concrete_function()

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="lines")])
  def serve_tsv(lines):
    return module.predict_raw(module.split_tsv(lines))

  @tf.function(input_signature=[field_specs])
  def preprocess(raw):
    return module.features_from_raw(raw)

  module.serve_fields = _serve_dict
  module.serve_tsv = serve_tsv
  module.preprocess = preprocess
  signatures = {
      "serving_default": serve_fields,
      "serve_tsv": serve_tsv.get_concrete_function(),
      "preprocess": preprocess.get_concrete_function(),
  }
  os.makedirs(path, exist_ok=True)
  tf.saved_model.save(module, path, signatures=signatures)
  assets = os.path.join(path, "assets")
  os.makedirs(assets, exist_ok=True)
  spec.save(os.path.join(assets, "spec.json"))
  return {"path": path, "signatures": sorted(signatures)}
